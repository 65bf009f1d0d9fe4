"""MAD, the maximal action difference attack of SA-MDP (Zhang et al. 2020)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from digr.attacks.base import Attack, project


class MAD(Attack):
    """Maximise ``KL(pi(.|s) || pi(.|s'))`` over ``s'`` in the L-inf ``eps``-ball around ``s``.

    Zhang et al. 2020 (section 5, "MAD attack") push the whole action distribution away from the
    clean one rather than one action. The KL and its gradient are zero at ``s' = s``, so the
    ascent starts from a small uniform random offset of radius ``init_scale * eps`` (drawn from
    the attack's generator), then takes ``steps`` projected signed-gradient steps.

    ``target`` is accepted for the uniform interface but not used: the reference is the clean
    distribution ``pi(.|s)``, not one action.

    Args:
        steps: number of ascent steps (default 10).
        alpha: step size; default ``2.5 * eps / steps`` as for :class:`~digr.attacks.pgd.PGD`.
        init_scale: radius of the random start as a fraction of ``eps`` (default 0.1).
        Others: see :class:`digr.attacks.base.Attack`.
    """

    name = "mad"

    def __init__(self, policy, *, eps: float, steps: int = 10, alpha: float | None = None,
                 init_scale: float = 0.1, seed: int = 0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(policy, eps=eps, seed=seed, generator=generator)
        self.steps = self._check_steps(steps)
        self.alpha = (2.5 * self.eps / self.steps if alpha is None
                      else self._check_positive("alpha", alpha))
        self.init_scale = self._check_positive("init_scale", init_scale)

    def _kl_grad(self, x: torch.Tensor, logp_clean: torch.Tensor) -> torch.Tensor:
        """``d KL(pi(s) || pi(x)) / dx`` per sample (loss summed over the batch), ``(B, C, H, W)``."""
        x = x.detach().requires_grad_(True)
        logp_adv = F.log_softmax(self.policy(x), dim=-1)
        kl = (logp_clean.exp() * (logp_clean - logp_adv)).sum()
        (grad,) = torch.autograd.grad(kl, x)
        return grad

    def _attack(self, obs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logp_clean = F.log_softmax(self.policy(obs), dim=-1)
        x = project(obs + self._uniform(obs, self.init_scale * self.eps), obs, self.eps)
        for _ in range(self.steps):
            x = project(x + self.alpha * self._kl_grad(x, logp_clean).sign(), obs, self.eps)
        return x
