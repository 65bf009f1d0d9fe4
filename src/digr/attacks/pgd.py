"""PGD: projected gradient ascent with a random start (Madry et al. 2018)."""

from __future__ import annotations

import torch

from digr.attacks.base import Attack, project


class PGD(Attack):
    """``steps`` signed-gradient steps on the target action's cross-entropy, projected each step.

    Starts at a uniform random point of the L-inf ``eps``-ball (clipped to ``[0, 1]``), drawn
    from the attack's own generator; then ``x <- proj(x + alpha * sign(d CE / d x))``, Madry et
    al.'s L-inf adversary, where ``proj`` clips to the ball and to ``[0, 1]``.

    Args:
        steps: number of ascent steps (default 10).
        alpha: step size in the ``[0, 1]`` pixel scale; default ``2.5 * eps / steps`` (Madry et
            al.'s choice: enough to cross the ball from any start, ``eps / 4`` at 10 steps).
        random_start: start from a uniform point of the ball (default True).
        Others: see :class:`digr.attacks.base.Attack`.
    """

    name = "pgd"

    def __init__(self, policy, *, eps: float, steps: int = 10, alpha: float | None = None,
                 random_start: bool = True, seed: int = 0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(policy, eps=eps, seed=seed, generator=generator)
        self.steps = self._check_steps(steps)
        self.alpha = (2.5 * self.eps / self.steps if alpha is None
                      else self._check_positive("alpha", alpha))
        self.random_start = bool(random_start)

    def _attack(self, obs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = obs.clone()
        if self.random_start:
            x = project(x + self._uniform(obs, self.eps), obs, self.eps)
        for _ in range(self.steps):
            x = project(x + self.alpha * self._ce_grad(x, target).sign(), obs, self.eps)
        return x
