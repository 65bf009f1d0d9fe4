"""MAD, the maximal action difference attack of SA-MDP (Zhang et al. 2020)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from digr.attacks.base import Attack, project
from digr.errors import check_int


class MAD(Attack):
    """Maximise ``KL(pi(.|s) || pi(.|s'))`` over ``s'`` in the L-inf ``eps``-ball around ``s``.

    The MAD attack of Zhang et al. 2020 pushes the whole action distribution away from the
    clean one rather than one action. The KL and its gradient are zero at ``s' = s``, so the
    ascent starts from a small uniform random offset ``delta`` of radius ``init_scale * eps``
    (drawn from the attack's generator), then takes ``steps`` projected signed-gradient steps.

    Why antithetic restarts: near ``s`` the KL is the quadratic ``0.5 * d^T F d`` (``F`` the
    Fisher information of the action distribution w.r.t. the input), so the first gradient
    ``F delta`` takes the random sign of ``delta`` along ``F``'s leading directions. For a softmax
    policy the two ways are not alike: one makes the policy *more* sure of its clean action (a
    small KL gain), the other moves probability off it (a large one), and signed ascent keeps
    the way it started; with one start, about half the samples went the weak way on our tiny
    test nets. So the ascent runs from ``+delta`` and ``-delta``
    (``restarts`` starts in antithetic pairs, batched in one forward) and keeps, per sample, the
    end point with the largest KL. ``restarts=1`` is plain single-start ascent.

    ``target`` is accepted for the uniform interface but not used: the reference is the clean
    distribution ``pi(.|s)``, not one action.

    Args:
        steps: number of ascent steps (default 10).
        alpha: step size; default ``2.5 * eps / steps`` as for :class:`~digr.attacks.pgd.PGD`.
        init_scale: radius of the random start as a fraction of ``eps`` (default 0.1).
        restarts: number of starts, in antithetic pairs ``+delta, -delta, ...`` (default 2).
        Others: see :class:`digr.attacks.base.Attack`.
    """

    name = "mad"
    uses_target = False

    def __init__(self, policy, *, eps: float, steps: int = 10, alpha: float | None = None,
                 init_scale: float = 0.1, restarts: int = 2, seed: int = 0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(policy, eps=eps, seed=seed, generator=generator)
        self.steps = self._check_steps(steps)
        self.alpha = (2.5 * self.eps / self.steps if alpha is None
                      else self._check_positive("alpha", alpha))
        self.init_scale = self._check_positive("init_scale", init_scale)
        self.restarts = check_int(f"{self.name}: restarts", restarts)

    @staticmethod
    def _kl(logp_clean: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
        """``KL(pi(s) || pi(s'))`` per sample ``(N,)`` from clean log-probs and attacked logits."""
        return (logp_clean.exp() * (logp_clean - F.log_softmax(logits_adv, dim=-1))).sum(-1)

    def _attack(self, obs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        B, R = obs.shape[0], self.restarts
        with torch.no_grad():
            logp_clean = F.log_softmax(self.policy(obs), dim=-1).repeat(R, 1)  # (R*B, A)
        n_pairs = (R + 1) // 2
        deltas = [self._uniform(obs, self.init_scale * self.eps) for _ in range(n_pairs)]
        starts = [d for delta in deltas for d in (delta, -delta)][:R]
        center = obs.repeat(R, 1, 1, 1)  # restart r holds rows r*B .. r*B + B - 1
        x = project(center + torch.cat(starts), center, self.eps)
        for _ in range(self.steps):
            x = x.detach().requires_grad_(True)
            # Summed over rows, so each row's gradient is that of its own KL.
            kl = self._kl(logp_clean, self.policy(x)).sum()
            (grad,) = torch.autograd.grad(kl, x)
            x = project(x.detach() + self.alpha * grad.sign(), center, self.eps)
        with torch.no_grad():
            kl = self._kl(logp_clean, self.policy(x)).view(R, B)
        best = kl.argmax(0)  # (B,) restart with the largest final KL
        return x.view(R, B, *obs.shape[1:])[best, torch.arange(B, device=obs.device)]
