"""FGSM on a policy (Goodfellow et al. 2015; applied to RL policies by Huang et al. 2017)."""

from __future__ import annotations

import torch

from digr.attacks.base import Attack


class FGSM(Attack):
    """One signed-gradient step of size ``eps`` away from the target action.

    ``obs_adv = clip(obs + eps * sign(d CE(logits(obs), target) / d obs), 0, 1)``: it increases
    the cross-entropy of the clean greedy action (Huang et al. 2017), i.e. moves every pixel by
    ``eps`` along ``-sign(d log pi(target | obs) / d obs)``. No randomness.

    Args: see :class:`digr.attacks.base.Attack`.
    """

    name = "fgsm"

    def _attack(self, obs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return obs + self.eps * self._ce_grad(obs, target).sign()
