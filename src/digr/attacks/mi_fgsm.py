"""MI-FGSM: iterative FGSM with a momentum of L1-normalised gradients (Dong et al. 2018)."""

from __future__ import annotations

import torch

from digr.attacks.base import Attack, project
from digr.errors import DigrError


class MIFGSM(Attack):
    """Momentum iterative FGSM (Dong et al. 2018, Algorithm 1, L-inf version).

    ``g <- mu * g + grad / ||grad||_1`` (L1 norm per sample), ``x <- proj(x + alpha * sign(g))``
    with ``grad = d CE(logits(x), target) / d x``; starts at ``obs``. No randomness.

    Args:
        steps: number of iterations (default 10).
        mu: momentum decay (default 1.0, the paper's choice).
        alpha: step size; default ``eps / steps`` so the steps add up to at most ``eps``.
        Others: see :class:`digr.attacks.base.Attack`.
    """

    name = "mi-fgsm"

    def __init__(self, policy, *, eps: float, steps: int = 10, mu: float = 1.0,
                 alpha: float | None = None, seed: int = 0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(policy, eps=eps, seed=seed, generator=generator)
        self.steps = self._check_steps(steps)
        self.mu = float(mu)
        if not 0.0 <= self.mu < float("inf"):
            raise DigrError(f"{self.name}: mu must be a finite number >= 0, got {mu!r}")
        self.alpha = self.eps / self.steps if alpha is None else self._check_positive("alpha", alpha)

    def _attack(self, obs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = obs.clone()
        g = torch.zeros_like(obs)
        for _ in range(self.steps):
            grad = self._ce_grad(x, target)
            # Per-sample L1 normalisation keeps the momentum's scale independent of the
            # gradient's magnitude (Dong et al. 2018, Algorithm 1); the clamp avoids 0/0.
            l1 = grad.abs().flatten(1).sum(1).clamp_min(1e-12).view(-1, 1, 1, 1)
            g = self.mu * g + grad / l1
            x = project(x + self.alpha * g.sign(), obs, self.eps)
        return x
