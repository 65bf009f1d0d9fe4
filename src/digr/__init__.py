"""digr: reinforcement-learning policies that explain themselves in real time.

The Python API (the ``digr`` command is a thin layer over it); each name is imported on first
use, so ``import digr`` stays light:

* policies: :class:`PolicyNet`, :class:`PolicyConfig`, :func:`load_policy`, :func:`save_policy`;
* tasks: :func:`get_task`, :func:`make_env`, :func:`register_task` (or ``gym:ID`` names);
* saliency: :func:`vanilla_gradient` (eq. 2), :func:`perturbation_saliency` (eq. 3),
  :func:`get_method` (all seven methods behind one call);
* DIGR: :func:`build_dataset` + :class:`DatasetConfig`, :func:`train_student` + :class:`DistillConfig`;
* evaluation: :func:`evaluate_policy`, :func:`map_agreement`;
* deployment: :class:`ExplainingPolicy`, :func:`export_policy`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "PolicyNet": "digr.models", "PolicyConfig": "digr.models", "load_policy": "digr.models",
    "save_policy": "digr.models",
    "get_task": "digr.envs", "make_env": "digr.envs", "register_task": "digr.envs",
    "vanilla_gradient": "digr.saliency", "perturbation_saliency": "digr.saliency", "get_method": "digr.saliency",
    "build_dataset": "digr.distill", "DatasetConfig": "digr.distill", "load_dataset": "digr.distill",
    "train_student": "digr.distill", "DistillConfig": "digr.distill",
    "evaluate_policy": "digr.evaluation.performance", "map_agreement": "digr.evaluation.agreement",
    "ExplainingPolicy": "digr.deploy", "export_policy": "digr.deploy",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'digr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
