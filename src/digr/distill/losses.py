"""DIGR's two objectives (paper eq. 4 and 5), each returning ``(loss, metrics)``.

The metrics records are frozen dataclasses; ``as_dict()`` gives them their stable
``namespace/metric`` names for logs and progress bars.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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
    match: float = float("nan")
    """The optional kept-region match term (:func:`kept_match_penalty`; NaN when it is off)."""
    margin_l1: float = float("nan")
    """The optional margin-gradient term (:func:`margin_gradient_l1`, before its weight; NaN when
    it is off)."""

    def as_dict(self) -> dict[str, float]:
        d = {"distill/igr": self.igr, "distill/penalised_frac": self.penalised_frac,
             "distill/saliency_penalised": self.saliency_penalised, "distill/saliency_kept": self.saliency_kept}
        if self.match == self.match:  # logged only when the term is on
            d["distill/match"] = self.match
        if self.margin_l1 == self.margin_l1:
            d["distill/margin_l1"] = self.margin_l1
        return d


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


NORMALIZERS = ("max", "kept_max", "detached_max", "mean", "topk")
"""How :func:`selective_penalty` normalises the student's gradient map inside eq. 4."""


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
    * ``"detached_max"``: the same max as a constant in the backward pass. Then shrinking all
      input gradients lowers the loss, and eq. 2's gradient vanishes for a uniform policy: the
      student collapsed towards uniform actions (KL stuck at 1.0) in our runs.
    * ``"kept_max"``: the max over the pixels that are *not* penalised
      (``M_p > threshold``; never empty, as ``M_p`` peaks at 1), differentiated. The loss is still
      scale-invariant (no collapse), a spike on a penalised pixel is itself penalised instead of
      shrinking the rest, and the only way down is to make task-relevant gradients large relative
      to the others, the stated aim of eq. 4. In our Red-Fetch-Green runs, however, the student
      did not learn the teacher's actions with it (KL stuck near 1.0 after 1,350 updates, as with
      ``detached_max``), so it is not the default.
    * ``"mean"``: the mean over all pixels, differentiated. The loss is then the share of the
      map's gradient mass that lies on penalised pixels: scale-invariant like ``"max"`` (no
      collapse towards a uniform policy), but growing one pixel's gradient no longer shrinks every
      other normalised value, so nothing rewards a single spike over a map spread across the
      task-relevant region. Its scale differs (~0.05-0.5 instead of ~1e-3), so alpha must grow:
      on Red-Fetch-Green alpha 10 learned the teacher's actions (0.995 success) with maps 8x less
      spiky (Table 1 important 15.9 vs 1.9), but the student's input gradient was 16x larger and
      PGD at 1/255 broke it (success 0.14), so ``"max"`` stays the default.
    * ``"topk"``: the mean of the ``topk`` largest values of the map, differentiated (``topk=1``
      is ``"max"``). Scale-invariant like ``"max"``, but a spike on one pixel raises ``Z`` by
      only ``1/topk`` of its height: for a given gradient mass ``M``, ``Z <= M / topk`` with
      equality for *any* map whose mass lies on at most ``topk`` pixels, so gathering the kept
      mass into one pixel no longer lowers the loss (with ``"max"`` it lowers it up to
      ``topk``-fold), and the backward pass pushes the ``topk`` largest values up equally
      (``dZ/dg_i = 1/topk``) instead of only the largest.
    """
    if normalizer not in NORMALIZERS:
        raise DigrError(f"unknown IGR normalizer {normalizer!r}; choose one of: {', '.join(NORMALIZERS)}")
    penalise = (teacher_maps <= threshold).to(raw_maps.dtype)
    tiny = torch.finfo(raw_maps.dtype).tiny
    peak = raw_maps.flatten(1).amax(1)
    if normalizer == "kept_max":
        kept = (1 - penalise).flatten(1)
        # A map with no kept pixel (only possible for hand-made teacher maps) falls back to eq. 2.
        peak = torch.where(kept.any(1), (raw_maps.flatten(1) * kept).amax(1), peak)
    elif normalizer == "detached_max":
        peak = peak.detach()
    elif normalizer == "mean":
        peak = raw_maps.flatten(1).mean(1)
    elif normalizer == "topk":
        topk = check_int("topk (pixels per map)", topk, maximum=raw_maps[0].numel())
        peak = raw_maps.flatten(1).topk(topk, dim=1).values.mean(1)
    m_g = raw_maps / peak.clamp_min(tiny)[:, None, None]
    # 1_[0, inf)(lambda - M_p): penalise where the teacher's saliency is at or below lambda.
    return (penalise * m_g).mean()


def kept_match_penalty(raw_maps: torch.Tensor, teacher_maps: torch.Tensor, *, threshold: float
                       ) -> torch.Tensor:
    """An extension beyond the paper: ``mean over pixels with M_p > threshold of max(0, M_p - M_g)``.

    ``raw_maps: (B, H, W)`` non-negative student gradient maps, ``teacher_maps: (B, H, W)`` in
    ``[0, 1]``; ``threshold`` is eq. 4's lambda (every pixel eq. 4 keeps) or higher (only the
    teacher's strongest region; the trainer's ``match_threshold``), and ``M_g`` is eq. 2's
    max-normalised map (max differentiated). Eq. 4 only says where the student's
    saliency must *not* be, so a map with one bright pixel inside the teacher's region satisfies
    it; this term asks the student's saliency to be at least the teacher's wherever the teacher
    finds the pixel salient. Returns 0 for a batch without kept pixels.
    """
    kept = (teacher_maps > threshold).to(raw_maps.dtype)
    n_kept = kept.sum()
    if n_kept == 0:
        return raw_maps.sum() * 0.0
    m_g = raw_maps / raw_maps.flatten(1).amax(1).clamp_min(torch.finfo(raw_maps.dtype).tiny)[:, None, None]
    return (kept * torch.relu(teacher_maps - m_g)).sum() / n_kept


def action_margin(logits: torch.Tensor) -> torch.Tensor:
    """``(B,)`` margin of each row's most likely action: ``z_a* - logsumexp_{b != a*} z_b``.

    ``logits: (B, A)`` with ``A >= 2``; ``a*`` is the argmax (a constant: no gradient flows through
    the choice). The action changes exactly when the margin crosses 0, and
    ``log pi(a*) = -softplus(-margin)``.
    """
    top = logits.argmax(-1, keepdim=True)
    others = logits.scatter(-1, top, float("-inf"))
    return logits.gather(-1, top).squeeze(-1) - others.logsumexp(-1)


def margin_gradient_l1(margin_grads: torch.Tensor) -> torch.Tensor:
    """An extension beyond the paper: batch mean of ``|| d margin(s) / ds ||_1``.

    ``margin_grads: (B, C, H, W)`` input gradients of :func:`action_margin`. To first order an
    L-inf perturbation of size eps moves the margin by at most ``eps * ||d margin / ds||_1``, so a
    smaller norm at an unchanged margin (the distillation term holds the margins near the
    teacher's) means a larger perturbation is needed to change the action. Unlike a penalty on
    eq. 2's map, which is a gradient of *probabilities* and can be shrunk by saturating the
    softmax without making the action any harder to flip, the margin's gradient cannot be
    hidden that way.
    """
    return margin_grads.abs().flatten(1).sum(1).mean()


def igr_loss(student: PolicyNet, obs: torch.Tensor, teacher_maps: torch.Tensor, *, threshold: float,
             normalizer: str = "max", topk: int = 64, match_weight: float = 0.0,
             match_threshold: float | None = None, margin_l1_weight: float = 0.0
             ) -> tuple[torch.Tensor, IGRMetrics]:
    """Selective input-gradient regularisation, paper eq. 4.

    ``obs: (B, C, H, W) float32 in [0, 1]``; ``teacher_maps: (B, H, W) float32 in [0, 1]`` the
    teacher's perturbation saliency ``M_p`` (eq. 3). The student's map ``M_g`` is its normalised
    vanilla gradient (eq. 2), built with ``create_graph=True`` so the loss can be differentiated
    with respect to the student's parameters (double backpropagation). Returns the batch mean of
    ``(1/N) sum_i 1[M_p_i <= threshold] * M_g_i``; see :func:`selective_penalty` for
    ``normalizer`` and ``topk``. With ``match_weight > 0`` the loss adds ``match_weight`` times
    :func:`kept_match_penalty` over the pixels with ``M_p > match_threshold`` (default: the
    pixels eq. 4 keeps) -- an extension; 0 is the paper. With ``margin_l1_weight > 0`` it adds that
    weight times :func:`margin_gradient_l1` (another extension, for robustness; both gradients come
    from one forward pass). The metrics
    use eq. 2's plain max-normalised map.
    """
    from digr.saliency.base import FastInputConv, check_obs, reduce_channels
    from digr.saliency.vanilla import eq2_objective

    if obs.ndim != 4 or teacher_maps.shape != (obs.shape[0], *obs.shape[2:]):
        raise DigrError(f"observations {tuple(obs.shape)} and teacher maps {tuple(teacher_maps.shape)} "
                        "must be (B, C, H, W) and (B, H, W)")
    obs = check_obs(student, obs)
    with_margin = margin_l1_weight > 0
    with torch.enable_grad():  # one forward serves eq. 2's gradient and, if asked, the margin's
        x = obs.detach().requires_grad_(True)
        with FastInputConv(x):
            logits = student(x)
        (g_eq2,) = torch.autograd.grad(eq2_objective(logits), x, create_graph=True)
        if with_margin:
            (g_margin,) = torch.autograd.grad(action_margin(logits).sum(), x, create_graph=True)
    raw = reduce_channels(g_eq2).float()
    loss = selective_penalty(raw, teacher_maps, threshold=threshold, normalizer=normalizer, topk=topk)
    match = float("nan")
    if match_weight > 0:
        match_t = kept_match_penalty(raw, teacher_maps,
                                     threshold=threshold if match_threshold is None else match_threshold)
        loss = loss + match_weight * match_t
        match = float(match_t.detach())
    margin_l1 = float("nan")
    if with_margin:
        margin_t = margin_gradient_l1(g_margin)
        loss = loss + margin_l1_weight * margin_t
        margin_l1 = float(margin_t.detach())
    with torch.no_grad():
        m_g = raw / raw.flatten(1).amax(1).clamp_min(torch.finfo(raw.dtype).tiny)[:, None, None]
        penalise = (teacher_maps <= threshold).to(m_g.dtype)
        n_pen = penalise.sum()
        n_keep = penalise.numel() - n_pen
        sal_pen = (penalise * m_g).sum() / n_pen if n_pen > 0 else torch.tensor(float("nan"))
        sal_keep = ((1 - penalise) * m_g).sum() / n_keep if n_keep > 0 else torch.tensor(float("nan"))
    return loss, IGRMetrics(igr=float(loss.detach()), penalised_frac=float(n_pen / penalise.numel()),
                            saliency_penalised=float(sal_pen), saliency_kept=float(sal_keep), match=match,
                            margin_l1=margin_l1)


__all__ = ["DistillMetrics", "IGRMetrics", "distillation_loss", "igr_loss", "kept_match_penalty", "action_margin",
           "margin_gradient_l1",
           "selective_penalty", "NORMALIZERS"]
