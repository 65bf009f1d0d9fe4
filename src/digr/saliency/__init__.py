"""Saliency maps for RL policies: every method behind one call.

>>> method = get_method("perturbation", policy, radius=4)
>>> maps = method.attribute(obs)            # obs (B, C, H, W) in [0, 1] -> (B, H, W) in [0, 1]

One file per method; a new method is one new file plus one line in :data:`METHODS`. The
contract shared by all of them (shapes, channel reduction, per-map max normalisation) is in
:mod:`digr.saliency.base`. The two functions DIGR itself needs are also exported directly:
:func:`vanilla_gradient` (eq. 2, differentiable with ``create_graph=True``) and
:func:`perturbation_saliency` (eq. 3, the teacher's Gaussian-blur map).
"""

from __future__ import annotations

from typing import Any

import torch

from digr.errors import DigrError
from digr.saliency.base import SaliencyMethod
from digr.saliency.fls import FLS
from digr.saliency.gradcam import GradCAM
from digr.saliency.guided_backprop import GuidedBackprop
from digr.saliency.integrated_gradients import IntegratedGradients
from digr.saliency.perturbation import Perturbation, perturbation_saliency
from digr.saliency.sarfa import SARFA
from digr.saliency.smoothgrad import SmoothGrad
from digr.saliency.vanilla import VanillaGradient, vanilla_gradient

METHODS: dict[str, type[SaliencyMethod]] = {
    "vanilla": VanillaGradient,
    "guided_backprop": GuidedBackprop,
    "gradcam": GradCAM,
    "integrated_gradients": IntegratedGradients,
    "smoothgrad": SmoothGrad,
    "perturbation": Perturbation,
    "sarfa": SARFA,
    "fls": FLS,  # needs an FLS policy (digr.models.fls); Nikulin et al. 2019
}
"""Registry: method name -> class, in the row order of the paper's Table 1."""

ALIASES: dict[str, str] = {
    "vg": "vanilla",
    "vanilla_gradient": "vanilla",
    "gb_perturbation": "perturbation",
    "blur": "perturbation",
    "greydanus": "perturbation",
    "guided_bp": "guided_backprop",
    "gbp": "guided_backprop",
    "grad_cam": "gradcam",
    "ig": "integrated_gradients",
    "integrated_gradient": "integrated_gradients",
    "smooth_grad": "smoothgrad",
    "smooth_gradient": "smoothgrad",
}
"""Other accepted spellings (also accepted with ``-`` for ``_``)."""


def canonical_name(name: str) -> str:
    """The registry name for ``name`` or an alias; :class:`DigrError` listing the names otherwise."""
    key = str(name).strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in METHODS:
        raise DigrError(f"unknown saliency method {name!r}; choose one of: {', '.join(METHODS)}")
    return key


def get_method(name: str, policy: torch.nn.Module, **settings: Any) -> SaliencyMethod:
    """Build the saliency method ``name`` for ``policy`` with keyword ``settings``.

    Unknown names and unknown or invalid settings raise :class:`DigrError`.
    """
    cls = METHODS[canonical_name(name)]
    try:
        return cls(policy, **settings)
    except TypeError as exc:
        raise DigrError(f"bad settings for saliency method {cls.name!r}: {exc}") from None


__all__ = ["METHODS", "ALIASES", "SaliencyMethod", "canonical_name", "get_method", "vanilla_gradient",
           "perturbation_saliency"]
