"""The plan of one incremental perturbation map: windows bucketed by size into batched conv calls,
with the index tensors that gather each layer's slices, chunked to bound memory (cached per
policy, input size and window settings)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from digr.saliency.incremental.geometry import (
    BAND_MAX_FRACTION,
    BUCKET_OVERHEAD_MACS,
    CHUNK_FLOATS,
    INDEX_CACHE_ELEMENTS,
    ConvGeom,
    exact_intervals,
    size_classes,
)


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
