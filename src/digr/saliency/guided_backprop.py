"""Guided backpropagation (Springenberg et al. 2014): the target logit's input gradient, with every
ReLU passing back only positive gradient where its input was positive.

Backward rule of each ReLU ``y = max(x, 0)``: ``dx = max(dy, 0) * [x > 0]`` (plain backprop keeps
negative ``dy``). The rule is applied by running the unchanged policy under a
:class:`torch.overrides.TorchFunctionMode` that routes ``torch.relu`` / ``F.relu`` (and so
``nn.ReLU``) to a guided ReLU for the duration of one call: no module is replaced, no hook is left
behind, and any architecture made of ReLUs is covered, including the functional ReLU after
``PolicyNet``'s first linear layer. A smooth-unit network's softplus units follow the same rule
with their slope in place of the ReLU's mask.

Map: ``sum_c |guided grad|`` over channels, divided by its max. Target: the greedy action unless
given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from digr.saliency.base import FastInputConv, SaliencyMethod, reduce_channels


class _GuidedReLUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = x.clamp_min(0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (out,) = ctx.saved_tensors
        return grad.clamp_min(0) * (out > 0).to(grad.dtype)


class _GuidedSoftplusFn(torch.autograd.Function):
    """The guided rule for ``softplus(beta x) / beta`` (a smooth-unit network,
    :attr:`digr.models.PolicyConfig.softplus_beta`): the unit's slope ``sigmoid(beta x)`` takes the
    place of the ReLU's mask ``[x > 0]``, and negative ``dy`` is dropped as for a ReLU."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, beta: float, threshold: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.beta = beta
        return F.softplus(x, beta=beta, threshold=threshold)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad.clamp_min(0) * torch.sigmoid(ctx.beta * x), None, None


_RELUS = {torch.relu, torch.relu_, F.relu, F.relu_, torch.Tensor.relu, torch.Tensor.relu_}
_SOFTPLUS = {F.softplus, torch._C._nn.softplus}


class GuidedReLUMode(TorchFunctionMode):
    """Within ``with GuidedReLUMode():`` every ReLU call back-propagates by the guided rule."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RELUS:
            return _GuidedReLUFn.apply(args[0])
        if func in _SOFTPLUS:
            kw = dict(zip(("beta", "threshold"), args[1:])) | (kwargs or {})
            return _GuidedSoftplusFn.apply(args[0], float(kw.get("beta", 1.0)), float(kw.get("threshold", 20.0)))
        return func(*args, **(kwargs or {}))


def guided_gradient(policy: torch.nn.Module, obs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Raw guided-backprop gradients ``(B, C, H, W)`` of ``logit[target]`` (no checks, detached).

    ``obs: (B, C, H, W)`` float; ``target: (B,)`` int64.
    """
    with torch.enable_grad():
        x = obs.detach().requires_grad_(True)
        with GuidedReLUMode(), FastInputConv(x):
            logits = policy(x)
        objective = logits.gather(1, target.view(-1, 1)).sum()  # rows are independent
        (grad,) = torch.autograd.grad(objective, x)
    return grad


class GuidedBackprop(SaliencyMethod):
    """Guided backpropagation of the target action's logit (Springenberg et al. 2014)."""

    name = "guided_backprop"

    def __init__(self, policy: torch.nn.Module) -> None:
        super().__init__(policy)

    def _attribute(self, obs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        assert target is not None
        return reduce_channels(guided_gradient(self.policy, obs, target))


__all__ = ["GuidedBackprop", "GuidedReLUMode", "guided_gradient"]
