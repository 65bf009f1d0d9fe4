"""Grad-CAM (Selvaraju et al. 2017) on the policy's last convolution (paper appendix A).

With ``A_k: (h, w)`` the output channels of ``policy.last_conv`` (before its ReLU) and ``y`` the
target action's logit::

    alpha_k = mean_{h, w} dy / dA_k                   # channel weights: pooled gradients
    cam     = ReLU(sum_k alpha_k * A_k)               # (h, w)

``cam`` is bilinearly upsampled (half-pixel centres) to the input's ``(H, W)`` and divided by its
max. The activation is captured by a forward hook registered for one call and removed in a
``finally``, so the policy is left untouched. Grad-CAM gives one value per location, so there is no
channel reduction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from digr.errors import DigrError
from digr.saliency.base import FastInputConv, SaliencyMethod


def gradcam(policy: torch.nn.Module, obs: torch.Tensor, target: torch.Tensor,
            layer: torch.nn.Module | None = None) -> torch.Tensor:
    """Raw Grad-CAM maps ``(B, H, W)`` >= 0 at input resolution (no checks, detached).

    ``layer`` defaults to ``policy.last_conv``.
    """
    layer = policy.last_conv if layer is None else layer
    store: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda mod, inp, out: store.append(out))
    try:
        with torch.enable_grad():
            x = obs.detach().requires_grad_(True)  # keeps the graph alive for a frozen policy
            with FastInputConv(x):
                logits = policy(x)
            if len(store) != 1:
                raise DigrError(f"Grad-CAM layer ran {len(store)} times in one forward; expected once")
            act = store[0]
            (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), act)
    finally:
        handle.remove()
    alpha = grad.mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
    cam = (alpha * act.detach()).sum(1, keepdim=True).clamp_min(0)  # (B, 1, h, w)
    cam = F.interpolate(cam, size=obs.shape[-2:], mode="bilinear", align_corners=False)
    return cam[:, 0].clamp_min(0)


class GradCAM(SaliencyMethod):
    """Grad-CAM of the target action's logit on ``policy.last_conv``, upsampled to ``(H, W)``."""

    name = "gradcam"

    def __init__(self, policy: torch.nn.Module) -> None:
        if not isinstance(getattr(policy, "last_conv", None), torch.nn.Module):
            raise DigrError(f"Grad-CAM needs a policy with a .last_conv layer; "
                            f"{type(policy).__name__} has none")
        super().__init__(policy)

    def _attribute(self, obs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        assert target is not None
        return gradcam(self.policy, obs, target)


__all__ = ["GradCAM", "gradcam"]
