"""DIGR's two objectives (paper eq. 4 and 5), each returning ``(loss, metrics)``.

The metrics records are frozen dataclasses; ``as_dict()`` gives them their stable
``namespace/metric`` names for logs and progress bars.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from digr.distill.config import NORMALIZERS
from digr.errors import DigrError, check_int
from digr.models.cnn import PolicyNet


@dataclass(frozen=True)
class DistillMetrics:
    """Policy distillation on one batch."""

    kl: float
    """``KL(teacher || student)`` in nats, summed over actions, averaged over the batch."""
    agreement: float
    """Fraction of states where the student's most likely action is the teacher's."""

    def as_dict(self) -> dict[str, float]:
        return {"distill/kl": self.kl, "distill/agreement": self.agreement}


@dataclass(frozen=True)
class IGRMetrics:
    """Selective input-gradient regularisation on one batch."""

    igr: float
    """The loss of eq. 4: mean over pixels of ``1[M_p <= lambda] * M_g``, averaged over the batch."""
    penalised_frac: float
    """Fraction of pixels with ``M_p <= lambda`` (the ones whose gradient saliency is penalised)."""
    saliency_penalised: float
    """Mean student saliency ``M_g`` on penalised pixels (NaN if there are none)."""
    saliency_kept: float
    """Mean student saliency ``M_g`` on the other pixels (NaN if there are none)."""

    def as_dict(self) -> dict[str, float]:
        return {"distill/igr": self.igr, "distill/penalised_frac": self.penalised_frac,
                "distill/saliency_penalised": self.saliency_penalised, "distill/saliency_kept": self.saliency_kept}


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor
                      ) -> tuple[torch.Tensor, DistillMetrics]:
    """``KL(pi_t(s) || pi_theta(s))`` (the policy-distillation term of eq. 5).

    ``student_logits: (B, A)`` (differentiable), ``teacher_probs: (B, A)`` rows summing to 1 (the
    targets; no gradient flows into them). Returns the batch-mean KL as a scalar tensor.
    """
    if student_logits.shape != teacher_probs.shape or student_logits.ndim != 2:
        raise DigrError(f"student logits {tuple(student_logits.shape)} and teacher probabilities "
                        f"{tuple(teacher_probs.shape)} must both be (B, A)")
    p = teacher_probs.detach()
    log_q = torch.log_softmax(student_logits, dim=-1)
    # xlogy keeps 0 * log 0 = 0 for actions the teacher never takes.
    kl = (torch.xlogy(p, p) - p * log_q).sum(-1).mean()
    with torch.no_grad():
        agree = (student_logits.argmax(-1) == p.argmax(-1)).float().mean()
    return kl, DistillMetrics(kl=float(kl.detach()), agreement=float(agree))




def selective_penalty(raw_maps: torch.Tensor, teacher_maps: torch.Tensor, *, threshold: float,
                      normalizer: str = "max", topk: int = 64) -> torch.Tensor:
    """Eq. 4 on raw gradient maps: mean over pixels of ``1[M_p <= threshold] * raw / Z``.

    ``raw_maps: (B, H, W)`` non-negative student gradient maps ``g(s, i, pi)`` (eq. 2, before
    normalisation); ``teacher_maps: (B, H, W)`` in ``[0, 1]``. ``Z`` per map:

    * ``"max"`` (default, eq. 2 and 4 literally): the max over all pixels, differentiated.
      Growing the largest gradient then
      lowers the loss, and the student can grow the gradient of a pixel that never changes (the
      grid-line corners of Red-Fetch-Green) without changing its actions: one such spike makes
      every other normalised value small. We observed exactly this (isolated dots on empty floor,
      saliency-benchmark AUC 0.81).
    * ``"mean"``: the mean over all pixels, differentiated. The loss is then the share of the
      map's gradient mass that lies on penalised pixels: scale-invariant like ``"max"`` (no
      collapse towards a uniform policy), but growing one pixel's gradient no longer shrinks every
      other normalised value, so nothing rewards a single spike over a map spread across the
      task-relevant region. Its scale differs (~0.05-0.5 instead of ~1e-3), so alpha must grow
      (10). The default recipe's normaliser (:func:`digr.distill.config.recipe_settings`); the
      ``detached_max`` and ``kept_max`` normalisers tried before it are in the Red-Fetch-Green
      results README.
    * ``"topk"``: the mean of the ``topk`` largest values of the map, differentiated (``topk=1``
      is ``"max"``). Scale-invariant like ``"max"``, but a spike on one pixel raises ``Z`` by
      only ``1/topk`` of its height: for a given gradient mass ``M``, ``Z <= M / topk`` with
      equality for *any* map whose mass lies on at most ``topk`` pixels, so gathering the kept
      mass into one pixel no longer lowers the loss (with ``"max"`` it lowers it up to
      ``topk``-fold), and the backward pass pushes the ``topk`` largest values up equally
      (``dZ/dg_i = 1/topk``) instead of only the largest.
    * ``"pearson"``: the map is standardised (mean 0, std 1 over its pixels) and the term is
      ``1 - r``, with ``r`` its Pearson correlation with the teacher's map *cut at the threshold*
      (``M_p * 1[M_p > threshold]``): still selective (gradient mass on a penalised pixel, where
      the target is 0, lowers ``r``), but it also asks the mass inside the kept region to follow
      the teacher's map, and a spike correlates poorly with a blob. Scale-invariant like the
      others; its range (0..2) is that of ``"mean"``'s share (0..1), so the same alpha serves.
    * ``"mean+pearson"``: the sum of the two terms above: the share of mass on penalised pixels
      and the shape inside the kept region.
    """
    if normalizer not in NORMALIZERS:
        raise DigrError(f"unknown IGR normalizer {normalizer!r}; choose one of: {', '.join(NORMALIZERS)}")
    penalise = (teacher_maps <= threshold).to(raw_maps.dtype)
    tiny = torch.finfo(raw_maps.dtype).tiny
    if normalizer == "mean+pearson":
        return (selective_penalty(raw_maps, teacher_maps, threshold=threshold, normalizer="mean")
                + selective_penalty(raw_maps, teacher_maps, threshold=threshold, normalizer="pearson"))
    if normalizer == "pearson":
        g = raw_maps.flatten(1)
        t = (teacher_maps * (1 - penalise)).flatten(1).to(g.dtype)
        g = g - g.mean(1, keepdim=True)
        t = t - t.mean(1, keepdim=True)
        # eps under the square roots: a constant map (or target) has r = 0, not NaN
        r = (g * t).sum(1) / ((g.square().sum(1) + 1e-12).sqrt() * (t.square().sum(1) + 1e-12).sqrt())
        return (1 - r).mean()
    peak = raw_maps.flatten(1).amax(1)
    if normalizer == "mean":
        peak = raw_maps.flatten(1).mean(1)
    elif normalizer == "topk":
        topk = check_int("topk (pixels per map)", topk, maximum=raw_maps[0].numel())
        peak = raw_maps.flatten(1).topk(topk, dim=1).values.mean(1)
    m_g = raw_maps / peak.clamp_min(tiny)[:, None, None]
    # 1_[0, inf)(lambda - M_p): penalise where the teacher's saliency is at or below lambda.
    return (penalise * m_g).mean()


def igr_loss(student: PolicyNet, obs: torch.Tensor, teacher_maps: torch.Tensor, *, threshold: float,
             normalizer: str = "max", topk: int = 64) -> tuple[torch.Tensor, IGRMetrics]:
    """Selective input-gradient regularisation, paper eq. 4.

    ``obs: (B, C, H, W) float32 in [0, 1]``; ``teacher_maps: (B, H, W) float32 in [0, 1]`` the
    teacher's perturbation saliency ``M_p`` (eq. 3). The student's map ``M_g`` is its normalised
    vanilla gradient (eq. 2), built with ``create_graph=True`` so the loss can be differentiated
    with respect to the student's parameters (double backpropagation). Returns the batch mean of
    ``(1/N) sum_i 1[M_p_i <= threshold] * M_g_i``; see :func:`selective_penalty` for
    ``normalizer`` and ``topk``. The metrics use eq. 2's plain max-normalised map.
    """
    from digr.saliency.base import FastInputConv, check_obs, reduce_channels
    from digr.saliency.vanilla import eq2_objective

    if obs.ndim != 4 or teacher_maps.shape != (obs.shape[0], *obs.shape[2:]):
        raise DigrError(f"observations {tuple(obs.shape)} and teacher maps {tuple(teacher_maps.shape)} "
                        "must be (B, C, H, W) and (B, H, W)")
    obs = check_obs(student, obs)
    with torch.enable_grad():
        x = obs.detach().requires_grad_(True)
        with FastInputConv(x):
            logits = student(x)
        (g_eq2,) = torch.autograd.grad(eq2_objective(logits), x, create_graph=True)
    raw = reduce_channels(g_eq2).float()
    loss = selective_penalty(raw, teacher_maps, threshold=threshold, normalizer=normalizer, topk=topk)
    with torch.no_grad():
        m_g = raw / raw.flatten(1).amax(1).clamp_min(torch.finfo(raw.dtype).tiny)[:, None, None]
        penalise = (teacher_maps <= threshold).to(m_g.dtype)
        n_pen = penalise.sum()
        n_keep = penalise.numel() - n_pen
        sal_pen = (penalise * m_g).sum() / n_pen if n_pen > 0 else torch.tensor(float("nan"))
        sal_keep = ((1 - penalise) * m_g).sum() / n_keep if n_keep > 0 else torch.tensor(float("nan"))
    return loss, IGRMetrics(igr=float(loss.detach()), penalised_frac=float(n_pen / penalise.numel()),
                            saliency_penalised=float(sal_pen), saliency_kept=float(sal_keep))


__all__ = ["DistillMetrics", "IGRMetrics", "distillation_loss", "igr_loss", "selective_penalty", "NORMALIZERS"]
