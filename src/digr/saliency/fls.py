"""Free-Lunch Saliency (Nikulin et al. 2019): the policy's own FLS attention map, un-pooled.

An FLS policy (:mod:`digr.models.fls`) multiplies its last conv features ``(C, h, w)`` by an
attention map ``A: (1, h, w)``; ``A`` is the saliency. It is read from one pass through the
conv stack and the attention module (less than one forward pass: the linear head is skipped),
with no gradient, and brought to the input's ``(H, W)`` by un-pooling. Cell ``(i, j)`` reads
the input window ``[i * S - P, i * S - P + R)`` (rows; columns alike), with ``R`` the receptive
field, ``S`` the total stride and ``P`` the accumulated padding of the conv stack
(:func:`digr.models.fls.conv_geometry`). Two un-poolings:

``"receptive_field"`` (default, as the FLS paper)
    a transposed convolution of ``A`` with an all-ones ``R x R`` kernel at stride ``S``: every
    pixel gets the sum of the attention of all cells whose window contains it. Output index
    ``t`` is input pixel ``t - P``; the result is cropped (or zero-padded) to ``(H, W)``.
    Computed in the equivalent separable form :func:`unpool_attention` describes.
``"stride"``
    each cell fills only its own ``S x S`` patch, centred on its window (an all-ones ``S x S``
    kernel at stride ``S``, offset ``P - (R - S) // 2``). On Red-Fetch-Green the last conv's
    window is 88 px (wider than the 64 px image), so the paper's un-pooling smears the map over
    the room; with ``"stride"`` each 8x8 tile shows its own cell. For a dense (stride-1) FLS
    network, ``"stride"`` is the attention map itself.

The map does not depend on the action, so ``target`` is accepted and ignored (like eq. 2's
vanilla gradient). It is not differentiable (read without a graph). Maps are divided by their max
like every method; attention is softplus-positive, so no map is all zero.
"""

from __future__ import annotations

import functools

import torch

from digr.errors import DigrError
from digr.saliency.base import SaliencyMethod

UNPOOLS = ("receptive_field", "stride")


def unpool_matrix(length: int, cells: int, convs, *, unpool: str = "receptive_field",
                  dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(length, cells)`` 0/1 matrix: entry ``[y, i]`` is 1 where input pixel ``y`` lies in the
    un-pooling window of cell ``i`` along one axis (module docstring)."""
    from digr.models.fls import conv_geometry

    if unpool not in UNPOOLS:
        raise DigrError(f"unknown FLS unpool {unpool!r}; choose one of: {', '.join(UNPOOLS)}")
    geo = conv_geometry(convs)
    if unpool == "receptive_field":
        k, start = geo.receptive_field, -geo.padding
    else:  # centre each S-pixel patch on its cell's window
        k, start = geo.stride, -geo.padding + (geo.receptive_field - geo.stride) // 2
    y = torch.arange(length, device=device)[:, None]
    first = start + geo.stride * torch.arange(cells, device=device)[None, :]
    return ((y >= first) & (y < first + k)).to(dtype)


def unpool_attention(attention: torch.Tensor, convs, size: tuple[int, int], *,
                     unpool: str = "receptive_field") -> torch.Tensor:
    """Un-pool attention maps ``(B, 1, h, w)`` of the conv stack ``convs`` to ``(B, H, W)``.

    ``convs``: the ``(out, kernel, stride, pad)`` tuples of ``PolicyConfig.convs``; ``size``:
    the input's ``(H, W)``. Not normalised (see the module docstring for the two modes).

    The transposed convolution with an all-ones ``k x k`` kernel at stride ``S``, cropped to
    ``(H, W)``, is the linear map ``A -> R_H A R_W^T`` with the 0/1 window matrices of
    :func:`unpool_matrix` (the kernel is the outer product of two all-ones vectors). We compute
    it in that form: two small matmuls instead of ``h w k^2`` multiply-adds per map, which on CPU
    made the paper's 88x88 Red-Fetch-Green kernel cost more than the network's forward pass.
    """
    rows, cols = _matrices(tuple(tuple(int(v) for v in c) for c in convs), tuple(attention.shape[-2:]),
                           tuple(size), unpool, attention.dtype, attention.device)
    return rows @ attention[:, 0] @ cols


@functools.lru_cache(maxsize=64)
def _matrices(convs, cells, size, unpool, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``R_H (H, h)`` and ``R_W^T (w, W)``, built once per geometry (they are tiny and read-only)."""
    kw = dict(unpool=unpool, dtype=dtype, device=device)
    rows = unpool_matrix(size[0], cells[0], convs, **kw)
    return rows, unpool_matrix(size[1], cells[1], convs, **kw).T.contiguous()


class FLS(SaliencyMethod):
    """The FLS attention map of an FLS policy, un-pooled to ``(H, W)`` (module docstring).

    ``unpool``: ``"receptive_field"`` (the paper) or ``"stride"``. A policy without an FLS
    module raises :class:`DigrError` here, at construction.
    """

    name = "fls"
    uses_target = False

    def __init__(self, policy: torch.nn.Module, *, unpool: str = "receptive_field") -> None:
        if not self.supports(policy):
            raise DigrError("saliency method 'fls' needs a policy with an FLS attention module "
                            "(trained with 'digr train --fls ...'); this one has none")
        if unpool not in UNPOOLS:
            raise DigrError(f"unknown FLS unpool {unpool!r}; choose one of: {', '.join(UNPOOLS)}")
        super().__init__(policy, unpool=unpool)
        self.unpool = unpool

    @staticmethod
    def supports(policy: torch.nn.Module) -> bool:
        """Whether ``policy`` has an FLS attention module (the others cannot give this map)."""
        trunk = getattr(policy, "trunk", None)
        return getattr(getattr(policy, "config", None), "attention", None) == "fls" and \
            getattr(trunk, "attention", None) is not None

    def _attribute(self, obs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            attention = self.policy.trunk.attention_map(obs)  # conv stack + FLS only (B, 1, h, w)
            return unpool_attention(attention, self.policy.config.convs, tuple(obs.shape[-2:]),
                                    unpool=self.unpool)


__all__ = ["FLS", "UNPOOLS", "unpool_attention", "unpool_matrix"]
