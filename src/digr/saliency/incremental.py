"""Incremental inference for Gaussian-blur perturbation saliency on a :class:`~digr.models.PolicyNet`.

A perturbed state differs from the clean one only by ``M_ij * (blur(s) - s)`` (Greydanus et al.
eq. 1). With the window ``M_ij`` truncated (``truncate``, see
:func:`digr.saliency.perturbation.window_half_width`) that difference is zero outside a square
around ``(i, j)``, and each conv layer's output can change only inside a window that follows from
the layer geometry (kernel, stride, padding): the outputs whose receptive field meets the previous
layer's changed window (:func:`exact_intervals`). So instead of running the whole network on every
perturbed state, this module

1. runs the clean state once and keeps every conv layer's activations;
2. first conv layer, by linearity: its changed window is the clean pre-activation plus
   ``conv(M * (blur(s) - s))`` (no bias) on the slice of the input that window reads;
3. every later conv layer: recomputes only its changed window, from the slice of the previous
   layer's clean activations that the window reads, with the previous layer's recomputed window
   pasted in;
4. head: the flatten head is linear in the last conv activations, so
   ``pre = pre(s) + W[:, band] (a' - a)[band]`` over the band of last-layer rows the window
   covers (the whole input where a band would not save much, :data:`BAND_MAX_FRACTION`); the
   global max pool pastes the window into the clean activations and pools them all. Then ReLU and
   the policy layer.

Every number computed is the one a full forward of the perturbed state computes, up to float
summation order: outputs outside a window are exactly the clean ones, because nothing they read
changed. Only the arithmetic outside the windows is skipped.

Batching: a convolution needs one window size per batch, but windows shrink near the image borders.
So, layer by layer, the windows are bucketed by size: each axis' exact sizes are rounded up to a
few classes (:func:`size_classes`, merging while the padded arithmetic costs less than one more
conv call), windows of a bucket go through one conv call, and the layers are decoupled (a window
of layer ``l`` is pasted into layer ``l + 1``'s slices whatever bucket either falls in). A window
padded up to its class size is shifted back inside the layer if it sticks out (the extra positions
are recomputed clean values); positions of a pasted window that the next slice does not read go to
a scratch row and are dropped.

Only the plain Conv2d/ReLU stack of :class:`~digr.models.PolicyNet` qualifies
(:func:`conv_stack`); anything else -- other modules, hooks, dilated or grouped convs -- is
computed by the batched full forward in :mod:`digr.saliency.perturbation`.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Iterator

import torch
import torch.nn.functional as F
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


# --------------------------------------------------------------------------------------- plan
@dataclass
class LayerIndex:
    """Index tensors of one conv layer for one chunk of ``m`` rows (locations of one state)."""

    order: torch.Tensor
    """``(m,)`` chunk rows in bucket order (the layer's window buffer lists them in this order)."""
    buckets: list[tuple[int, int, int, int]]
    """``(i0, i1, h, w)``: ``order[i0:i1]`` have ``h x w`` windows."""
    gather: list[torch.Tensor]
    """Per bucket, the flat start position of every row segment to copy (a row of a window or
    slice is contiguous in a channels-last source): first layer ``(n * h,)`` window rows in its
    clean pre-activations; later layers ``(n * Rh,)`` slice rows in the zero-padded previous
    activations."""
    paste: list[torch.Tensor] | None
    """Later layers, per bucket of the previous layer: for every position of its windows, the row
    of this layer's slice buffer it goes to, or the buffer's last (scratch) row where the slice
    does not hold it."""
    first: list[tuple[torch.Tensor, torch.Tensor]] | None
    """First layer, per bucket: row-segment starts ``(n * Rh,)`` of its slices of the zero-padded
    input and the window ``M`` on them, repeated over channels, ``(n * Rh, Rw * C)``."""


@dataclass
class Chunk:
    """Everything index-like about rows (locations) ``[lo, hi)`` of one state."""

    layers: list[LayerIndex]
    head: list[tuple[int, int, tuple[int, int]]]
    """``(i0, i1, band)``: ``head_order[i0:i1]`` read the band ``(first row, rows)`` of the last
    conv output (the whole of it for the max pool or full-width head)."""
    head_order: torch.Tensor
    """``(m,)`` chunk rows in head order (the order of the logits returned)."""
    head_paste: list[torch.Tensor]
    """Per bucket of the last conv layer: for every position of its windows, its row in the head
    input buffer."""
    out_loc: torch.Tensor
    """``(m,)`` flat location index of each row, in head order."""


@dataclass
class Plan:
    """Everything about one ``(network geometry, H, W, grid, truncation)`` that does not depend on
    the weights or the states."""

    geoms: list[ConvGeom]
    """The geometry (``conv`` is None: a cached plan holds no layers)."""
    starts: torch.Tensor
    """``(L, n_layers, 2)``: each location's window start (row, column) per conv layer."""
    sizes: torch.Tensor
    """``(L, n_layers, 2)``: its window size."""
    mask_y: torch.Tensor
    """``(Ly, Hp)``: the window's row factors on the first layer's zero-padded input."""
    mask_x: torch.Tensor
    """``(Lx, Wp)``: the column factors."""
    bands: bool
    """Whether the head may work per band of last-layer rows (flatten head)."""
    max_pool: bool
    bounds: list[tuple[int, int]]
    """The chunks ``[lo, hi)`` of locations."""
    macs_incremental: float
    """Estimated multiply-adds per location, incremental (conv-call overheads included)."""
    macs_full: float
    """Multiply-adds per location of a full forward."""
    chunks: dict = field(default_factory=dict)
    """Cached :class:`Chunk` per ``(lo, hi)`` (up to :data:`INDEX_CACHE_ELEMENTS` over all plans)."""
    cached_elements: int = 0
    """Elements held in :attr:`chunks`."""

    @property
    def n_locations(self) -> int:
        return self.starts.shape[0]

    @property
    def gain(self) -> float:
        return self.macs_full / self.macs_incremental

    def chunk(self, lo: int, hi: int) -> Chunk:
        hit = self.chunks.get((lo, hi))
        if hit is not None:
            return hit
        chunk = self._chunk(lo, hi)
        size = sum(t.numel() for li in chunk.layers for t in li.gather + (li.paste or [])) \
            + sum(a.numel() + b.numel() for a, b in chunk.layers[0].first) \
            + sum(t.numel() for t in chunk.head_paste)
        if sum(p.cached_elements for p in _PLAN_CACHE.values()) + size <= INDEX_CACHE_ELEMENTS:
            self.chunks[(lo, hi)] = chunk
            self.cached_elements += size
        return chunk

    def _chunk(self, lo: int, hi: int) -> Chunk:
        dev = self.starts.device
        ar = lambda n: torch.arange(n, device=dev)  # noqa: E731
        m = hi - lo
        st, sz = self.starts[lo:hi], self.sizes[lo:hi]  # (m, L, 2)
        lx = self.mask_x.shape[0]
        layers: list[LayerIndex] = []
        prev_buckets = None  # [(rows, h, w)] of the previous layer, in its buffer order
        for l, g in enumerate(self.geoms):
            (kh, kw), (sh, sw), (ph, pw) = g.kernel, g.stride, g.padding
            key = sz[:, l, 0] * 65536 + sz[:, l, 1]
            order = torch.sort(key, stable=True).indices
            skey = key[order]
            cuts = [0] + (torch.nonzero(skey[1:] != skey[:-1]).flatten() + 1).tolist() + [m]
            buckets, gathers, first = [], [], []
            # per chunk row: where its slice starts in this layer's slice buffer, the slice shape
            base = torch.zeros(m, dtype=torch.long, device=dev)
            rh_row, rw_row = torch.zeros_like(base), torch.zeros_like(base)
            off = 0
            for i0, i1 in zip(cuts[:-1], cuts[1:]):
                rows = order[i0:i1]
                h, w = int(sz[rows[0], l, 0]), int(sz[rows[0], l, 1])
                buckets.append((i0, i1, h, w))
                sy, sx = st[rows, l, 0], st[rows, l, 1]
                rh, rw = (h - 1) * sh + kh, (w - 1) * sw + kw
                width = g.in_size[1] + 2 * pw  # of the zero-padded input
                slice_rows = (((sy * sh)[:, None] + ar(rh)) * width + (sx * sw)[:, None]).flatten()
                if l == 0:  # the window in the clean pre-activations; M on the input slice
                    gathers.append(((sy[:, None] + ar(h)) * g.out_size[1] + sx[:, None]).flatten())
                    loc = rows + lo
                    my = self.mask_y[(loc // lx)[:, None], (sy * sh)[:, None] + ar(rh)]
                    mx = self.mask_x[(loc % lx)[:, None], (sx * sw)[:, None] + ar(rw)]
                    mask = (my[:, :, None, None] * mx[:, None, :, None]).expand(-1, -1, -1, g.c_in)
                    first.append((slice_rows, mask.reshape(len(rows) * rh, rw * g.c_in)))
                    continue
                gathers.append(slice_rows)
                base[rows] = off + ar(i1 - i0) * (rh * rw)
                rh_row[rows], rw_row[rows] = rh, rw
                off += (i1 - i0) * rh * rw
            paste = None
            if l > 0:  # previous windows -> this layer's slices (scratch row: off)
                parts = []
                for rows, hp, wp in prev_buckets:
                    py = st[rows, l - 1, 0, None] + ph - st[rows, l, 0, None] * sh + ar(hp)
                    px = st[rows, l - 1, 1, None] + pw - st[rows, l, 1, None] * sw + ar(wp)
                    rh, rw = rh_row[rows, None, None], rw_row[rows, None, None]
                    ok = (((py >= 0)[:, :, None] & (py[:, :, None] < rh))
                          & ((px >= 0)[:, None, :] & (px[:, None, :] < rw)))
                    dest = base[rows, None, None] + py[:, :, None] * rw + px[:, None, :]
                    parts.append(torch.where(ok, dest, off).flatten())
                paste = parts
            layers.append(LayerIndex(order=order, buckets=buckets, gather=gathers, paste=paste,
                                     first=first if l == 0 else None))
            prev_buckets = [(order[i0:i1], h, w) for i0, i1, h, w in buckets]
        # head: rows by band of the last conv output
        oh, ow = self.geoms[-1].out_size
        a, hb = st[:, -1, 0], sz[:, -1, 0]
        narrow = hb <= BAND_MAX_FRACTION * oh if self.bands else torch.zeros_like(hb, dtype=torch.bool)
        a, hb = torch.where(narrow, a, 0), torch.where(narrow, hb, oh)
        key = a * 65536 + hb
        order = torch.sort(key, stable=True).indices
        skey = key[order]
        cuts = [0] + (torch.nonzero(skey[1:] != skey[:-1]).flatten() + 1).tolist() + [m]
        head, base, off = [], torch.zeros(m, dtype=torch.long, device=dev), 0
        for i0, i1 in zip(cuts[:-1], cuts[1:]):
            rows = order[i0:i1]
            band = (int(a[rows[0]]), int(hb[rows[0]]))
            head.append((i0, i1, band))
            base[rows] = off + ar(i1 - i0) * (band[1] * ow)
            off += (i1 - i0) * band[1] * ow
        parts = []
        for rows, hp, wp in prev_buckets:
            y = st[rows, -1, 0, None] - a[rows, None] + ar(hp)
            x = st[rows, -1, 1, None] + ar(wp)
            parts.append((base[rows, None, None] + y[:, :, None] * ow + x[:, None, :]).flatten())
        return Chunk(layers=layers, head=head, head_order=order, head_paste=parts,
                     out_loc=order + lo)


def _head_macs(policy: nn.Module, geoms: list[ConvGeom], band_rows: float | None) -> float:
    """Head multiply-adds per row: the flatten head reads only a band of ``band_rows`` rows."""
    lin = policy.trunk.linear.weight.numel()
    if band_rows is not None:
        lin = lin * band_rows / geoms[-1].out_size[0]
    return lin + policy.pi.weight.numel()


def build_plan(policy: nn.Module, geoms: list[ConvGeom], *, gy: torch.Tensor, gx: torch.Tensor,
               stride: int, half: int) -> Plan:
    """Windows, buckets and the cost estimate for one input size and perturbation grid.

    ``gy: (Ly, H)``, ``gx: (Lx, W)``: the (truncated) window factors, zero beyond ``half`` pixels
    from the centre (as :func:`digr.saliency.perturbation.mask_grid` builds them). States are
    processed one at a time, so nothing here depends on the batch size.
    """
    dev = gy.device
    h_in, w_in = geoms[0].in_size
    cy, cx = list(range(0, h_in, stride)), list(range(0, w_in, stride))
    ivs = (exact_intervals(cy, half, geoms, 0), exact_intervals(cx, half, geoms, 1))
    n_layers = len(geoms)
    # per layer, per axis: exact size -> bucket size; then each centre's window per layer
    starts_ax = [torch.zeros(len(c), n_layers, dtype=torch.long) for c in (cy, cx)]
    sizes_ax = [torch.zeros(len(c), n_layers, dtype=torch.long) for c in (cy, cx)]
    conv_macs = 0.0
    for l, g in enumerate(geoms):
        counts = []
        for axis in (0, 1):
            cnt: dict[int, int] = {}
            for iv in ivs[axis]:
                cnt[max(1, iv[l][1])] = cnt.get(max(1, iv[l][1]), 0) + 1
            counts.append(cnt)
        maps = size_classes(counts[0], counts[1], macs=g.macs, rows=1)
        for axis in (0, 1):
            for i, iv in enumerate(ivs[axis]):
                n = maps[axis][max(1, iv[l][1])]
                sizes_ax[axis][i, l] = n
                starts_ax[axis][i, l] = min(iv[l][0], g.used[axis] - n)  # shifted back inside
        sum_y, sum_x = (float(sizes_ax[a][:, l].sum()) for a in (0, 1))
        conv_macs += g.macs * sum_y * sum_x \
            + BUCKET_OVERHEAD_MACS * len(set(maps[0].values())) * len(set(maps[1].values()))
    ny, nx = len(cy), len(cx)

    def grid2d(per_axis: list[torch.Tensor]) -> torch.Tensor:  # (ny, L) and (nx, L) -> (ny*nx, L, 2)
        both = (per_axis[0][:, None].expand(ny, nx, -1), per_axis[1][None].expand(ny, nx, -1))
        return torch.stack(both, -1).reshape(ny * nx, n_layers, 2).contiguous()

    starts, sizes = grid2d(starts_ax), grid2d(sizes_ax)
    n_loc = ny * nx
    pool = policy.trunk.config.pool
    oh = geoms[-1].out_size[0]
    bands = pool == "flatten"
    last_rows = sizes_ax[0][:, -1].float()
    if bands:
        last_rows = torch.where(last_rows <= BAND_MAX_FRACTION * oh, last_rows, float(oh))
    total = conv_macs / n_loc + _head_macs(policy, geoms, float(last_rows.mean()) if bands else None)
    full = sum(g.macs * g.out_size[0] * g.out_size[1] for g in geoms) + _head_macs(policy, geoms, None)
    # chunks of locations: the largest per-layer buffer (slices, windows or head inputs) of a chunk
    # stays under CHUNK_FLOATS
    per_loc = torch.zeros(n_loc)
    sz = sizes.float()
    for l, g in enumerate(geoms):
        rh = (sz[:, l, 0] - 1) * g.stride[0] + g.kernel[0]
        rw = (sz[:, l, 1] - 1) * g.stride[1] + g.kernel[1]
        per_loc = torch.maximum(per_loc, rh * rw * g.c_in)
        per_loc = torch.maximum(per_loc, sz[:, l, 0] * sz[:, l, 1] * g.c_out)
    per_loc = per_loc.clamp_min(float(oh * geoms[-1].out_size[1] * geoms[-1].c_out))
    bounds, lo, acc = [], 0, 0.0
    for i, f in enumerate(per_loc.tolist()):
        if acc + f > CHUNK_FLOATS and i > lo:
            bounds.append((lo, i))
            lo, acc = i, 0.0
        acc += f
    bounds.append((lo, n_loc))
    p0 = (geoms[0].padding[0],) * 2, (geoms[0].padding[1],) * 2
    return Plan(geoms=[replace(g, conv=None) for g in geoms], starts=starts.to(dev), sizes=sizes.to(dev),
                mask_y=F.pad(gy, p0[0]), mask_x=F.pad(gx, p0[1]), bands=bands, max_pool=pool == "max",
                bounds=bounds, macs_incremental=total, macs_full=float(full))


_PLAN_CACHE: "OrderedDict[tuple, Plan]" = OrderedDict()
_PLAN_CACHE_SIZE = 8


def plan_for(policy: nn.Module, geoms: list[ConvGeom], *, gy: torch.Tensor, gx: torch.Tensor, radius: float,
             stride: int, half: int) -> Plan:
    """:func:`build_plan`, cached (small LRU) per geometry, grid and truncation."""
    key = (tuple((g.kernel, g.stride, g.padding, g.in_size, g.c_in, g.c_out) for g in geoms),
           policy.trunk.config.pool, tuple(policy.trunk.linear.weight.shape), tuple(policy.pi.weight.shape),
           float(radius), int(stride), int(half), str(gy.device), gy.dtype)
    hit = _PLAN_CACHE.get(key)
    if hit is not None:
        _PLAN_CACHE.move_to_end(key)
        return hit
    plan = build_plan(policy, geoms, gy=gy, gx=gx, stride=stride, half=half)
    _PLAN_CACHE[key] = plan
    while len(_PLAN_CACHE) > _PLAN_CACHE_SIZE:
        _PLAN_CACHE.popitem(last=False)
    return plan


# ---------------------------------------------------------------------------------- inference
_HEAD_W_CACHE: "OrderedDict[int, tuple[weakref.ref, int, torch.Tensor]]" = OrderedDict()


def _head_weight(weight: torch.Tensor, channels: int, positions: int) -> torch.Tensor:
    """The flatten head's weight ``(hid, C*h*w)`` reordered from ``(c, y, x)`` to ``(y, x, c)`` order
    (the last activations are kept channels-last, and a band of rows is then a column slice).

    Cached per weight tensor while it lives and is not modified in place (its ``_version``): the
    copy is 1.6-4.7 M floats, a few ms per call on one core.
    """
    hit = _HEAD_W_CACHE.get(id(weight))
    if hit is not None and hit[0]() is weight and hit[1] == weight._version:
        return hit[2]
    out = weight.detach().view(weight.shape[0], channels, positions).transpose(1, 2) \
        .reshape(weight.shape[0], -1).clone()
    _HEAD_W_CACHE[id(weight)] = (weakref.ref(weight), weight._version, out)
    while len(_HEAD_W_CACHE) > 2:
        _HEAD_W_CACHE.popitem(last=False)
    return out


def _row_segments(src: torch.Tensor, width: int) -> torch.Tensor:
    """``(P, C)`` contiguous -> overlapping view ``(P - width + 1, width * C)``: row ``i`` is the
    ``width`` positions from ``i`` on. ``index_select`` on it copies whole window rows at once
    (3-4x faster than one position per index on one core)."""
    c = src.shape[-1]
    return src.as_strided((src.shape[0] - width + 1, width * c), (c, 1))


def _channels_last(x: torch.Tensor, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """``(B, C, H, W)`` -> zero-padded, channels-last ``(B, Hp * Wp, C)``."""
    if pad != (0, 0):
        x = F.pad(x, (pad[1], pad[1], pad[0], pad[0]))
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1]).contiguous()


class Incremental:
    """Clean activations of a batch of states and the perturbed logits of every location.

    ``policy``: a qualifying :class:`~digr.models.PolicyNet` (:func:`conv_stack` gave ``geoms``);
    ``obs, delta: (B, C, H, W)``: the states and ``blur(s) - s``. Use inside ``inference_mode``.
    """

    def __init__(self, policy: nn.Module, geoms: list[ConvGeom], obs: torch.Tensor, delta: torch.Tensor
                 ) -> None:
        self.policy, self.geoms = policy, geoms
        self.b = obs.shape[0]
        ph, pw = geoms[0].padding
        d = F.pad(delta, (pw, pw, ph, ph)) if (ph or pw) else delta
        # channels-last, so that the first conv's output comes out channels-last too
        self.delta = _channels_last(d)  # (B, Hp*Wp, C)
        # slice sources: the first layer's clean pre-activations (B, h*w, C), then each later
        # layer's zero-padded clean input (B, Hp*Wp, C)
        self.sources: list[torch.Tensor] = []
        x = obs
        for i, g in enumerate(geoms):
            x = g.conv(x)
            if i == 0:
                self.sources.append(_channels_last(x))
            x = torch.relu(x)
            if i + 1 < len(geoms):
                self.sources.append(_channels_last(x, geoms[i + 1].padding))
        self.out_w = geoms[-1].out_size[1]
        self.last = _channels_last(x).view(self.b, -1)  # (B, h*w*C) in (y, x, c) order
        self.channels = x.shape[1]
        lin = policy.trunk.linear
        self.max_pool = policy.trunk.config.pool == "max"
        if self.max_pool:
            pre = F.linear(x.amax((2, 3)), lin.weight, lin.bias)
        else:
            self.head_w = _head_weight(lin.weight, self.channels, x.shape[2] * x.shape[3])
            pre = F.linear(self.last, self.head_w, lin.bias)
        self.pre = pre  # (B, hid) clean pre-activations of the hidden layer
        self.clean = policy.pi(torch.relu(pre))  # (B, A) clean logits
        self._band_const: dict[tuple[int, int], torch.Tensor] = {}

    def _band(self, band: tuple[int, int]) -> tuple[slice, torch.Tensor]:
        """Columns of the band ``(first row, rows)`` in ``(y, x, c)`` order and
        ``pre - W[:, band] @ clean[band]`` ``(B, hid)`` (what the rest of the input contributes)."""
        a, rows = band
        cols = slice(a * self.out_w * self.channels, (a + rows) * self.out_w * self.channels)
        const = self._band_const.get(band)
        if const is None:
            const = self._band_const[band] = self.pre - self.last[:, cols] @ self.head_w[:, cols].T
        return cols, const

    def chunk_logits(self, chunk: Chunk, b: int) -> torch.Tensor:
        """Perturbed logits ``(m, A)`` of state ``b`` at the chunk's locations (in head order)."""
        windows = self._first_layer(chunk.layers[0], b)
        for l in range(1, len(self.geoms)):
            windows = self._later_layer(l, chunk.layers[l], b, windows)
        return self._head(chunk, b, windows)

    def _first_layer(self, li: LayerIndex, b: int) -> list[torch.Tensor]:
        """Windows ``(n * h * w, C)`` per bucket: ``relu(pre(s) + conv(M * (blur(s) - s)))``, the
        conv without bias (it is linear); the input slices are cut from ``blur(s) - s`` only."""
        g = self.geoms[0]
        (kh, kw), (sh, sw) = g.kernel, g.stride
        pre, delta = self.sources[0][b], self.delta[b]
        out = []
        for (i0, i1, h, w), rows, (slice_rows, mask) in zip(li.buckets, li.gather, li.first):
            n, rh, rw = i1 - i0, (h - 1) * sh + kh, (w - 1) * sw + kw
            win = torch.index_select(_row_segments(pre, w), 0, rows).view(n, h, w, -1)
            x = torch.index_select(_row_segments(delta, rw), 0, slice_rows).mul_(mask)
            y = F.conv2d(x.view(n, rh, rw, -1).permute(0, 3, 1, 2), g.conv.weight, None, stride=g.stride)
            out.append(torch.relu_(win.add_(y.permute(0, 2, 3, 1))).view(n * h * w, -1))
        return out

    def _later_layer(self, l: int, li: LayerIndex, b: int, prev: list[torch.Tensor]) -> list[torch.Tensor]:
        """Windows per bucket of conv layer ``l``: the clean slices they read, with the previous
        layer's windows pasted in, through the conv and ReLU."""
        g = self.geoms[l]
        (kh, kw), (sh, sw) = g.kernel, g.stride
        src = self.sources[l][b]
        shapes = [(i1 - i0, h, w, (h - 1) * sh + kh, (w - 1) * sw + kw) for i0, i1, h, w in li.buckets]
        buf = src.new_empty(sum(n * rh * rw for n, _, _, rh, rw in shapes) + 1, src.shape[1])  # + scratch
        off = 0
        for (n, _, _, rh, rw), rows in zip(shapes, li.gather):
            part = buf[off:off + n * rh * rw].view(n * rh, -1)
            torch.index_select(_row_segments(src, rw), 0, rows, out=part)
            off += n * rh * rw
        for where, window in zip(li.paste, prev):
            buf.index_copy_(0, where, window)
        out, off = [], 0
        for n, h, w, rh, rw in shapes:
            x = buf[off:off + n * rh * rw].view(n, rh, rw, -1).permute(0, 3, 1, 2)
            y = torch.relu_(F.conv2d(x, g.conv.weight, g.conv.bias, stride=g.stride))
            out.append(y.permute(0, 2, 3, 1).reshape(n * h * w, -1))  # a view: y is channels-last
            off += n * rh * rw
        return out

    def _head(self, chunk: Chunk, b: int, prev: list[torch.Tensor]) -> torch.Tensor:
        """Logits from the last windows pasted into the clean last activations (per band)."""
        c, ow = self.channels, self.out_w
        feat = self.last.new_empty(sum((i1 - i0) * rows for i0, i1, (_, rows) in chunk.head) * ow, c)
        parts, off = [], 0
        for i0, i1, (a, rows) in chunk.head:
            n, width = i1 - i0, rows * ow * c
            part = feat[off:off + n * rows * ow].view(n, width)
            part.copy_(self.last[b, a * ow * c:a * ow * c + width].expand(n, -1))
            parts.append(part)
            off += n * rows * ow
        for where, window in zip(chunk.head_paste, prev):
            feat.index_copy_(0, where, window)
        lin, pres = self.policy.trunk.linear, []
        for (i0, i1, band), x in zip(chunk.head, parts):
            if self.max_pool:
                pres.append(F.linear(x.view(i1 - i0, -1, c).amax(1), lin.weight, lin.bias))
            else:  # pre = pre(s) + W[:, band] (a' - a)[band] = const + W[:, band] a'[band]
                cols, const = self._band(band)
                pres.append(torch.addmm(const[b:b + 1], x, self.head_w[:, cols].T))
        pre = pres[0] if len(pres) == 1 else torch.cat(pres)
        return self.policy.pi(torch.relu_(pre))

    def batches(self, plan: Plan) -> Iterator[tuple[torch.Tensor, int, torch.Tensor]]:
        """``(flat location indices (m,), state index, perturbed logits (m, A))`` per chunk."""
        for b in range(self.b):
            for lo, hi in plan.bounds:
                chunk = plan.chunk(lo, hi)
                yield chunk.out_loc, b, self.chunk_logits(chunk, b)


__all__ = ["ConvGeom", "conv_stack", "exact_intervals", "size_classes", "LayerIndex", "Chunk", "Plan",
           "build_plan", "plan_for", "Incremental", "BUCKET_OVERHEAD_MACS", "BAND_MAX_FRACTION", "MIN_GAIN",
           "CHUNK_FLOATS"]
