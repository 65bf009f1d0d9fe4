"""Integrated gradients (Sundararajan et al. 2017), 50 steps from a black baseline (appendix A).

For the target action's logit ``F`` and baseline ``s0`` (all zeros: a black image)::

    IG_i(s) = (s_i - s0_i) * integral_0^1 dF(s0 + a (s - s0)) / ds_i  da
            ~ (s_i - s0_i) * mean_k dF(s0 + a_k (s - s0)) / ds_i,   a_k = (k + 1/2) / steps

(midpoint rule). Completeness -- ``sum_i IG_i = F(s) - F(s0)`` -- holds up to the quadrature
error. All ``B * steps`` interpolated states go through the policy in batches of ``batch_size``
with one backward pass per batch. Map: ``sum_c |IG|`` divided by its max.
"""

from __future__ import annotations

import torch

from digr.saliency.base import FastInputConv, SaliencyMethod, check_positive, chunks, reduce_channels

DEFAULT_STEPS = 50
"""Interpolation steps (paper appendix A)."""


def integrated_gradients(policy: torch.nn.Module, obs: torch.Tensor, target: torch.Tensor, *,
                         steps: int = DEFAULT_STEPS, baseline: float = 0.0,
                         batch_size: int = 1024) -> torch.Tensor:
    """Raw signed attributions ``(B, C, H, W)`` of ``logit[target]`` (no checks, detached).

    ``obs: (B, C, H, W)``; ``target: (B,)`` int64; ``baseline``: the constant baseline image's
    value (0 = black).
    """
    b = obs.shape[0]
    obs = obs.detach()
    base = torch.full_like(obs, float(baseline))
    diff = obs - base
    alphas = (torch.arange(steps, device=obs.device, dtype=obs.dtype) + 0.5) / steps
    total = torch.zeros_like(obs)
    # flat index = state * steps + step; each chunk is one forward and one backward
    for sl in chunks(b * steps, batch_size):
        flat = torch.arange(sl.start, sl.stop, device=obs.device)
        rows, k = flat // steps, flat % steps
        with torch.enable_grad():
            x = torch.addcmul(base[rows], alphas[k].view(-1, 1, 1, 1), diff[rows]).requires_grad_(True)
            with FastInputConv(x):
                logits = policy(x)
            (grad,) = torch.autograd.grad(logits.gather(1, target[rows].view(-1, 1)).sum(), x)
        total.index_add_(0, rows, grad)
    return diff * total / steps


class IntegratedGradients(SaliencyMethod):
    """Integrated gradients of the target action's logit from a constant (black) baseline."""

    name = "integrated_gradients"

    def __init__(self, policy: torch.nn.Module, *, steps: int = DEFAULT_STEPS, baseline: float = 0.0,
                 batch_size: int = 1024) -> None:
        check_positive("integrated-gradients steps", steps)
        check_positive("integrated-gradients batch_size", batch_size)
        super().__init__(policy, steps=steps, baseline=float(baseline), batch_size=batch_size)

    def _attribute(self, obs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        assert target is not None
        s = self.settings
        return reduce_channels(integrated_gradients(self.policy, obs, target, steps=s["steps"],
                                                    baseline=s["baseline"], batch_size=s["batch_size"]))


__all__ = ["IntegratedGradients", "integrated_gradients", "DEFAULT_STEPS"]
