"""SARFA, specific and relevant feature attribution (Puri et al. 2020, arXiv:1912.12191), on the same
Gaussian-blur perturbations as :mod:`digr.saliency.perturbation` (paper appendix A).

Puri et al. score Q-values; an actor-critic policy has none, so the logits play Q's role
(``softmax(logits) = pi``). For target action ``t`` (the greedy action by default), a state ``s``
and its blur perturbation ``s'`` around one location::

    dP   = max(0, pi(t|s) - pi(t|s'))                         # specificity: the target lost mass
    p_rem(s) = softmax over a != t of logits(s)_a              # the other actions, renormalised
    K    = 1 / (1 + KL(p_rem(s) || p_rem(s')))                 # relevance: the others did not change
    S    = 2 * dP * K / (dP + K)   (0 where dP = 0)            # harmonic mean, Puri et al. eq. 3

The KL direction ``KL(p_rem(s) || p_rem(s'))`` follows the authors' released code
(nikaashpuri/sarfa-saliency, ``scipy.stats.entropy(p, new_p)``); the paper's text writes the
reverse. With two actions ``p_rem`` is a single point, so ``K = 1``. ``K`` lies in ``(0, 1]``, so
the denominator is never zero. Scores on a ``stride`` grid are upsampled like the perturbation
map, then each map is divided by its max.

The perturbed logits come from the same pass as the perturbation map
(:func:`digr.saliency.perturbation.perturbation_scores`, with its ``engine`` choice). One
difference in the defaults, on purpose for now: SARFA's window is *not* truncated unless
``truncate`` is given (the perturbation map cuts it at :data:`~digr.saliency.perturbation.TRUNCATE`
radii), because SARFA's hand-computed reference test uses the untruncated Gaussian; with the
default ``truncate=None`` the ``"auto"`` engine therefore runs the batched full forward. Pass
``truncate=TRUNCATE`` for the incremental speed-up (maps then differ by the truncation only).
"""

from __future__ import annotations

import torch

from digr.saliency.base import SaliencyMethod
from digr.saliency.perturbation import GREYDANUS_BLUR_SIGMA, check_settings, perturbation_scores


def sarfa_score(clean: torch.Tensor, perturbed: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SARFA saliency per row from logits ``clean, perturbed: (n, A)`` and ``target: (n,)`` int64."""
    col = target.view(-1, 1)
    d_p = (torch.softmax(clean, -1).gather(1, col) - torch.softmax(perturbed, -1).gather(1, col))
    d_p = d_p.squeeze(1).clamp_min(0.0)
    drop = torch.zeros_like(clean, dtype=torch.bool).scatter_(1, col, True)
    # log-softmax over the remaining actions: the target's logit is taken out with -inf
    logp = torch.log_softmax(clean.masked_fill(drop, float("-inf")), -1)
    logq = torch.log_softmax(perturbed.masked_fill(drop, float("-inf")), -1)
    terms = torch.where(drop, torch.zeros_like(logp), logp.exp() * (logp - logq))
    kl = terms.sum(-1).clamp_min(0.0)
    k = 1.0 / (1.0 + kl)
    return 2.0 * d_p * k / (d_p + k)


def sarfa_saliency(policy: torch.nn.Module, obs: torch.Tensor, target: torch.Tensor, *, radius: float,
                   stride: int = 1, batch_size: int | None = None,
                   blur_sigma: float = GREYDANUS_BLUR_SIGMA, truncate: float | None = None,
                   engine: str = "auto") -> torch.Tensor:
    """Raw upsampled SARFA scores ``(B, H, W)`` (no checks, no grad); ``target: (B,)`` int64.

    ``truncate`` (default None: untruncated windows) and ``engine`` as in
    :func:`~digr.saliency.perturbation.perturbation_scores`.
    """
    return perturbation_scores(policy, obs, lambda c, p, rows: sarfa_score(c, p, target[rows]),
                               radius=radius, stride=stride, batch_size=batch_size,
                               blur_sigma=blur_sigma, truncate=truncate, engine=engine)


class SARFA(SaliencyMethod):
    """SARFA on Gaussian-blur perturbations; settings as :class:`~digr.saliency.perturbation.Perturbation`."""

    name = "sarfa"

    def __init__(self, policy: torch.nn.Module, *, radius: float = 5.0, stride: int = 1,
                 batch_size: int | None = None, blur_sigma: float = GREYDANUS_BLUR_SIGMA,
                 truncate: float | None = None, engine: str = "auto") -> None:
        check_settings(radius=radius, stride=stride, batch_size=batch_size, blur_sigma=blur_sigma,
                       truncate=truncate, engine=engine)
        super().__init__(policy, radius=radius, stride=stride, batch_size=batch_size, blur_sigma=blur_sigma,
                         truncate=truncate, engine=engine)

    def _attribute(self, obs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        assert target is not None
        s = self.settings
        return sarfa_saliency(self.policy, obs, target, radius=s["radius"], stride=s["stride"],
                              batch_size=s["batch_size"], blur_sigma=s["blur_sigma"],
                              truncate=s["truncate"], engine=s["engine"])


__all__ = ["SARFA", "sarfa_saliency", "sarfa_score"]
