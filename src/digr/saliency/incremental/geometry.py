"""Where a perturbation window can change each conv layer: the qualifying conv stack, the exact
window of every layer per axis, and the size classes windows are bucketed into.

Tuning constants of the whole engine live here too, each with the measurement behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

BUCKET_OVERHEAD_MACS = 2_500_000
"""Cost of one more conv call (one more window size in a layer), in multiply-adds: ~60-75 us of
fixed cost per call, at the 40-47 GMAC/s one core of the project's 2-core VM reaches on these
convolutions. Used only to decide which window sizes to round up (:func:`size_classes`); A/B runs
with 1e6 .. 5e6 were within noise of each other, 1e7 slower, 0 (every size its own call) much
slower."""

BAND_MAX_FRACTION = 0.75
"""The flatten head reads only the band of last-layer rows a window covers when the band has at
most this fraction of the rows; larger windows share one batch over the whole input (fewer, larger
matmuls)."""

MIN_GAIN = 1.3
"""``engine="auto"`` uses incremental inference only if it is estimated to need at most
``1 / MIN_GAIN`` of the batched full forward's multiply-adds (overheads included). Below that the
copying of slices eats the saving: Red-Fetch-Green at radius 4 (its 7x7 layers spread every
change over the whole 8x8 grid) is estimated at 1.08 and ran at 0.7-0.8x the batched speed; the
Breakout network, estimated 1.40, runs 1.3x faster."""

CHUNK_FLOATS = 6 << 20
"""Rows of one state are processed in chunks whose largest buffer (slices of one layer, or head
inputs) holds at most this many floats (24 MiB). Fewer chunks mean fewer, larger conv calls
(1 M floats was slower on the 128x128 network), but buffers of 32 MiB and more come fresh from
the OS on every call (glibc maps them): filling a fresh 33 MB buffer took 7x longer than a reused
one."""

INDEX_CACHE_ELEMENTS = 1 << 23
"""The index tensors (and first-layer window masks) of the cached plans' chunks are kept up to
this many elements in all (64 MiB of int64; stride 4 on the 84x84 / 128x128 networks needs 3.2 M /
2.3 M); beyond, chunks are rebuilt on every call (e.g. stride 1 on 128x128)."""


# ------------------------------------------------------------------------------ qualification
@dataclass(frozen=True)
class ConvGeom:
    """One conv layer of the stack, along both axes (``(h, w)`` pairs)."""

    conv: nn.Conv2d | None
    """The layer (None in a cached :class:`Plan`, which keeps only the geometry)."""
    c_in: int
    c_out: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    in_size: tuple[int, int]
    """Spatial size of the layer's (unpadded) input."""
    out_size: tuple[int, int]
    used: tuple[int, int]
    """Leading output rows/columns that anything downstream reads (the next conv may skip the
    last ones; the head reads all)."""

    @property
    def macs(self) -> int:
        """Multiply-adds per output position."""
        return self.c_out * self.c_in * self.kernel[0] * self.kernel[1]


def _hooked(module: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def conv_stack(policy: nn.Module, obs_hw: tuple[int, int]) -> list[ConvGeom] | None:
    """The conv layers of ``policy`` if incremental inference reproduces its forward, else None.

    Qualifies: exactly :class:`~digr.models.PolicyNet` with its :class:`~digr.models.CNNTrunk`
    (forward methods not overridden), convs alternating ``Conv2d`` (zero padding, no dilation or
    groups) and ``ReLU``, a ``flatten`` or ``max`` pool, no attention module (an FLS map couples
    every position through its own convs), no input blur, and no forward hooks anywhere (a hook would be skipped
    on the windows).
    """
    from digr.models.cnn import CNNTrunk, PolicyNet

    if type(policy) is not PolicyNet or type(getattr(policy, "trunk", None)) is not CNNTrunk:
        return None
    if _hooked(policy) or nn.modules.module._global_forward_hooks \
            or nn.modules.module._global_forward_pre_hooks:
        return None
    trunk = policy.trunk
    if trunk.config.pool not in ("flatten", "max") or getattr(trunk.config, "attention", None) is not None:
        return None
    if getattr(trunk.config, "input_blur", 0) > 0:  # the blur spreads a local change over the frame
        return None
    mods = list(trunk.convs)
    if not mods or len(mods) % 2:
        return None
    geoms: list[ConvGeom] = []
    size = tuple(obs_hw)
    for conv, act in zip(mods[0::2], mods[1::2]):
        if type(conv) is not nn.Conv2d or type(act) is not nn.ReLU:
            return None
        if conv.groups != 1 or tuple(conv.dilation) != (1, 1) or conv.padding_mode != "zeros" \
                or isinstance(conv.padding, str):
            return None
        k, s, p = tuple(conv.kernel_size), tuple(conv.stride), tuple(conv.padding)
        out = tuple((size[a] + 2 * p[a] - k[a]) // s[a] + 1 for a in range(2))
        if min(out) < 1:
            return None
        geoms.append(ConvGeom(conv=conv, c_in=conv.in_channels, c_out=conv.out_channels, kernel=k, stride=s,
                              padding=p, in_size=size, out_size=out, used=out))
        size = out
    # the rows/columns of each layer's output that the next conv reads at all
    for i in range(len(geoms) - 1):
        nxt = geoms[i + 1]
        used = tuple(min(geoms[i].out_size[a], (nxt.out_size[a] - 1) * nxt.stride[a] - nxt.padding[a]
                         + nxt.kernel[a]) for a in range(2))
        geoms[i] = replace(geoms[i], used=used)
    return geoms


# --------------------------------------------------------------------------------- axis plans
def exact_intervals(centres: list[int], half: int, geoms: list[ConvGeom], axis: int
                    ) -> list[list[tuple[int, int]]]:
    """Per centre, per conv layer: ``(start, size)`` of the output positions that can change.

    Input positions ``[c - half, c + half]`` (clipped to the image and to what the first conv
    reads) carry the perturbation; an output changes if its receptive field meets the previous
    layer's changed interval. ``size == 0``: nothing changes (the window lies where no conv reads).
    """
    out = []
    read_in = min(geoms[0].in_size[axis], (geoms[0].out_size[axis] - 1) * geoms[0].stride[axis]
                  - geoms[0].padding[axis] + geoms[0].kernel[axis])
    for c in centres:
        lo, hi = max(0, c - half), min(read_in - 1, c + half)
        ivs = []
        for g in geoms:
            k, s, p = g.kernel[axis], g.stride[axis], g.padding[axis]
            if lo <= hi:
                # outputs o read [o*s - p, o*s - p + k - 1]; they meet [lo, hi] for o in [a, b]
                lo, hi = max(0, -(-(lo + p - k + 1) // s)), min(g.used[axis] - 1, (hi + p) // s)
            ivs.append((lo, hi - lo + 1) if lo <= hi else (0, 0))
        out.append(ivs)
    return out


def size_classes(counts_y: dict[int, int], counts_x: dict[int, int], *, macs: int, rows: int,
                 overhead: float | None = None) -> tuple[dict[int, int], dict[int, int]]:
    """For one conv layer: each axis' exact window size -> the size its bucket computes.

    ``counts_*``: how many window centres along the axis have each exact size; ``macs``: the
    layer's multiply-adds per output position; ``rows``: states per call. Start with one class per
    size; greedily round the smaller of two neighbouring classes up to the larger while the
    arithmetic added, ``rows * macs * (other axis' summed sizes) * count * (size difference)``
    (a window is the product of its two axis intervals), is below the ``overhead`` of the conv
    calls saved (one per class of the other axis).
    """
    overhead = BUCKET_OVERHEAD_MACS if overhead is None else overhead
    cls = [[[size, counts[size], [size]] for size in sorted(counts)] for counts in (counts_y, counts_x)]
    while True:
        best = None
        for axis in (0, 1):
            mine = cls[axis]
            other = sum(size * count for size, count, _ in cls[1 - axis])
            for i in range(len(mine) - 1):
                (sa, ca, _), (sb, _, _) = mine[i], mine[i + 1]
                gain = overhead * len(cls[1 - axis]) - rows * macs * other * ca * (sb - sa)
                if gain > 0 and (best is None or gain > best[0]):
                    best = (gain, axis, i)
        if best is None:
            return tuple({s: size for size, _, members in c for s in members} for c in cls)
        _, axis, i = best
        (_, ca, ma), (sb, cb, mb) = cls[axis][i], cls[axis][i + 1]
        cls[axis][i:i + 2] = [[sb, ca + cb, ma + mb]]
