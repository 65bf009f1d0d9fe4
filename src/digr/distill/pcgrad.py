"""PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning") for DIGR's two objectives.

DIGR optimises the input-gradient regularisation and the distillation term together (eq. 5). When
their gradients point against each other, following the plain sum lets one objective undo the
other; PCGrad removes from each gradient its component along the other one before summing.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch


def pcgrad(g1: torch.Tensor, g2: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Combine two flat gradients ``(P,)`` with PCGrad; returns ``(combined (P,), conflicted)``.

    If ``g1 . g2 < 0`` (the objectives conflict), each gradient is projected onto the normal plane
    of the *original* other one, ``g1' = g1 - (g1.g2 / |g2|^2) g2`` and
    ``g2' = g2 - (g1.g2 / |g1|^2) g1``, and ``g1' + g2'`` is returned; otherwise ``g1 + g2``.
    With two tasks the random projection order of the paper's algorithm makes no difference.
    """
    if g1.shape != g2.shape or g1.ndim != 1:
        raise ValueError(f"pcgrad needs two flat gradients of one shape, got {tuple(g1.shape)} "
                         f"and {tuple(g2.shape)}")
    p1, conflict = project_conflict(g1, g2)
    p2, _ = project_conflict(g2, g1)  # the dot product is symmetric: both conflict or neither
    return p1 + p2, conflict


def project_conflict(g: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``g (P,)`` less its component along ``ref (P,)`` if the two conflict (``g . ref < 0``);
    returns ``(projected (P,), conflicted)``. One half of :func:`pcgrad`: ``ref`` is kept as it is,
    so adding the result to ``ref`` never lowers the first-order progress on ``ref``'s objective."""
    if g.shape != ref.shape or g.ndim != 1:
        raise ValueError(f"project_conflict needs two flat gradients of one shape, got {tuple(g.shape)} "
                         f"and {tuple(ref.shape)}")
    dot = torch.dot(g, ref)
    if dot >= 0:
        return g, False
    # dot < 0 implies |ref| > 0, so the division is safe.
    return g - (dot / torch.dot(ref, ref)) * ref, True


def flat_grad(loss: torch.Tensor, params: Sequence[torch.Tensor], *, retain_graph: bool = False
              ) -> torch.Tensor:
    """``d loss / d params`` as one flat vector ``(P,)`` (zeros for parameters the loss ignores)."""
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for g, p in zip(grads, params)])


def assign_flat_grad(params: Iterable[torch.Tensor], flat: torch.Tensor) -> None:
    """Write the flat vector ``flat (P,)`` into ``p.grad`` of each parameter, in order."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p)  # views of `flat`: no copy
        offset += n
    if offset != flat.numel():
        raise ValueError(f"flat gradient has {flat.numel()} entries, parameters need {offset}")


__all__ = ["pcgrad", "project_conflict", "flat_grad", "assign_flat_grad"]
