"""Execution of an incremental perturbation plan: clean activations once, then every window's
perturbed logits, layer by layer (the method is described in :mod:`digr.saliency.incremental`)."""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from digr.saliency.incremental.geometry import ConvGeom
from digr.saliency.incremental.plan import Chunk, LayerIndex, Plan

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


__all__ = ["Incremental"]
