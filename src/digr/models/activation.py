"""The hidden unit of every network here: ReLU, or its smooth twin ``softplus(beta z) / beta``.

One place for the unit, its slope and its module, so that the trunk, the head and the FLS module's
hidden layer switch together (:attr:`digr.models.cnn.PolicyConfig.softplus_beta`) and a smooth twin
(:func:`digr.models.cnn.smooth_surrogate`) has no ReLU left anywhere.
"""

from __future__ import annotations

import torch
from torch import nn


def activate(z: torch.Tensor, softplus_beta: float) -> torch.Tensor:
    """A hidden unit's output: ``relu(z)`` for ``softplus_beta == 0``, else ``softplus(beta z) / beta``."""
    if softplus_beta > 0:
        return torch.nn.functional.softplus(z, beta=softplus_beta)
    return torch.relu(z)


def activation_slope(z: torch.Tensor, softplus_beta: float) -> torch.Tensor:
    """``d activate(z) / dz``, the factor a backward pass applies per unit: the ReLU mask
    ``1[z > 0]``, or ``sigmoid(beta z)`` for softplus (torch's softplus is linear for ``beta z > 20``,
    where the sigmoid is 1 to float32 rounding)."""
    if softplus_beta > 0:
        return torch.sigmoid(softplus_beta * z)
    return (z > 0).to(z.dtype)


def activation_module(softplus_beta: float) -> nn.Module:
    """:func:`activate` as a parameter-free module (state-dict keys do not depend on the unit)."""
    return nn.Softplus(beta=softplus_beta) if softplus_beta > 0 else nn.ReLU()


__all__ = ["activate", "activation_module", "activation_slope"]
