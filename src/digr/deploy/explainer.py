"""A policy that returns its action logits and its own saliency map in one forward call.

:class:`ExplainingPolicy` wraps a :class:`~digr.models.PolicyNet` and computes eq. 2's vanilla
gradient with the backward pass written out layer by layer (transposed convolutions, ReLU masks or
softplus slopes, the pooling's adjoint) instead of ``torch.autograd``. Why: ONNX and TorchScript trace a forward
graph; ``autograd.grad`` inside ``forward`` does not export, so a deployed student would lose the
map that is the point of DIGR. Written out, the map is one more pass of the same cost as the
forward pass, runs in any ONNX runtime without digr or torch, and equals
:func:`digr.saliency.vanilla_gradient` to float rounding (checked in the tests).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from digr.errors import DigrError
from digr.models.activation import activate, activation_slope
from digr.models.cnn import InputBlur, PolicyNet


class ExplainingPolicy(nn.Module):
    """``forward(obs) -> (logits, saliency)``.

    ``obs: (B, C, H, W) float32 in [0, 1]`` (the policy's input layout); ``logits: (B, A)``;
    ``saliency: (B, H, W) float32 in [0, 1]``: eq. 2's map ``sum_c |d/ds (1/2 sum_a pi_a^2)|``,
    divided by its maximum (an all-zero map stays zero). Shares the wrapped policy's weights.

    Policies with an FLS attention module are refused: their readable map is the attention map
    (``PolicyNet.trunk.attention_map``), not a gradient.
    """

    def __init__(self, policy: PolicyNet) -> None:
        super().__init__()
        cfg = policy.config
        if cfg.attention is not None:
            raise DigrError("export of policies with an FLS attention module is not supported: their map "
                            "is the attention map, not a gradient")
        trunk = policy.trunk
        self.policy = policy
        self.pool_kind = cfg.pool
        self.beta = float(cfg.softplus_beta)
        self.input_pool = int(cfg.input_pool)
        self.blur = trunk.blur if isinstance(trunk.blur, InputBlur) else None
        self.convs = [m for m in trunk.convs if isinstance(m, nn.Conv2d)]
        # Static sizes: each conv's input size fixes the transposed conv's output padding.
        h, w = cfg.obs_shape[1] // self.input_pool, cfg.obs_shape[2] // self.input_pool
        pads = []
        for conv in self.convs:
            (k, _), (s, _), (p, _) = conv.kernel_size, conv.stride, conv.padding
            oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            pads.append((h - ((oh - 1) * s - 2 * p + k), w - ((ow - 1) * s - 2 * p + k)))
            h, w = oh, ow
        self.output_padding = pads
        self.feature_shape = (self.convs[-1].out_channels, h, w)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        trunk, pi = self.policy.trunk, self.policy.pi
        x = obs
        if self.blur is not None:
            x = self.blur.gh @ x @ self.blur.gw_t
        if self.input_pool > 1:
            x = F.avg_pool2d(x, self.input_pool)
        pre = []
        for conv in self.convs:
            z = conv(x)
            pre.append(z)
            x = activate(z, self.beta)
        if self.pool_kind == "max":
            f = x.amax(dim=(2, 3))
        elif self.pool_kind == "sum":
            f = x.sum(dim=(2, 3))
        else:
            f = x.flatten(1)
        a = trunk.linear(f)
        logits = pi(activate(a, self.beta))

        # d/dlogits of 1/2 sum_a p_a^2 is p_j (p_j - sum_a p_a^2) (eq. 2 through the softmax)
        p = torch.softmax(logits, -1)
        g = p * (p - (p * p).sum(-1, keepdim=True))
        g = (g @ pi.weight) * activation_slope(a, self.beta)
        g = g @ trunk.linear.weight
        c, h, w = self.feature_shape
        if self.pool_kind == "max":  # autograd's amax backward: shared equally between tied maxima
            hit = (x == x.amax(dim=(2, 3), keepdim=True)).to(g.dtype)
            g = g[:, :, None, None] * hit / hit.sum(dim=(2, 3), keepdim=True)
        elif self.pool_kind == "sum":
            g = g[:, :, None, None].expand(-1, c, h, w)
        else:
            g = g.reshape(-1, c, h, w)
        for conv, z, pad in zip(reversed(self.convs), reversed(pre), reversed(self.output_padding)):
            g = F.conv_transpose2d(g * activation_slope(z, self.beta), conv.weight, stride=conv.stride,
                                   padding=conv.padding, output_padding=pad)
        if self.input_pool > 1:
            k = self.input_pool
            g = g.repeat_interleave(k, dim=2).repeat_interleave(k, dim=3) / (k * k)
        if self.blur is not None:  # y = G_H x G_W^T, so dx = G_H^T dy G_W
            g = self.blur.gh.T @ g @ self.blur.gw_t.T
        sal = g.abs().sum(1)
        peak = sal.flatten(1).amax(1).clamp_min(torch.finfo(sal.dtype).tiny)
        return logits, sal / peak[:, None, None]


__all__ = ["ExplainingPolicy"]
