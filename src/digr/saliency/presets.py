"""A saliency method with the paper's settings for a task (appendix A).

The methods themselves know nothing of tasks; the one task-dependent setting is the perturbation
family's radius, which the task's :class:`digr.envs.TaskSpec` records."""

from __future__ import annotations

from typing import Any

import torch

from digr.saliency import SaliencyMethod, canonical_name, get_method


def default_settings(method: str, task: str) -> dict[str, Any]:
    """Settings of saliency ``method`` on ``task`` as in the paper (appendix A).

    The perturbation family (GB perturbation, SARFA) uses the task's perturbation radius (4 px on
    Red-Fetch-Green) at stride 1; every other method keeps its own defaults (IG 50 steps,
    SmoothGrad sigma 0.15 with 20 samples, Grad-CAM on the last convolution).
    """
    from digr.envs import get_task

    if canonical_name(method) in ("perturbation", "sarfa"):
        return {"radius": get_task(task).perturbation_radius}
    return {}


def build_method(policy: torch.nn.Module, method: str, *, task: str,
                 settings: dict[str, Any] | None = None) -> SaliencyMethod:
    """The saliency method object with :func:`default_settings` overridden by ``settings``."""
    return get_method(method, policy, **{**default_settings(method, task), **(settings or {})})


__all__ = ["build_method", "default_settings"]
