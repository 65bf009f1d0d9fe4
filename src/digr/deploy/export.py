"""Write a digr policy as ONNX, TorchScript or a Stable-Baselines3 zip.

* ``onnx`` and ``torchscript``: the :class:`~digr.deploy.explainer.ExplainingPolicy` graph, input
  ``obs (B, C, H, W) float32 in [0, 1]``, outputs ``logits (B, A)`` and ``saliency (B, H, W)``
  (eq. 2, max-normalised); the batch size is free. Neither needs digr to run.
* ``sb3``: a PPO ``CnnPolicy`` zip whose features extractor is digr's own
  (:class:`digr.rl.sb3.SB3Trunk`, so loading it needs digr importable); it takes uint8 images as
  SB3 does (channel-first or channel-last) and acts as the digr policy does.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from digr.errors import DigrError
from digr.io import atomic_write
from digr.models.cnn import PolicyNet

EXPORT_FORMATS = ("onnx", "torchscript", "sb3")
"""Formats :func:`export_policy` writes."""
ONNX_OPSET = 17
"""ONNX opset of the exported graph (ONNX Runtime >= 1.14 runs it)."""


def _example(policy: PolicyNet, batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, *policy.config.obs_shape, generator=torch.Generator().manual_seed(0))


def _onnx(policy: PolicyNet, path: Path) -> None:
    from digr.deploy.explainer import ExplainingPolicy

    try:
        import onnx  # noqa: F401 - the exporter needs it; say so in one line rather than deep inside torch
    except ImportError:
        raise DigrError("ONNX export needs the onnx package: pip install 'digr[export]'") from None
    module = ExplainingPolicy(policy).eval()

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes about its own future defaults
            torch.onnx.export(module, (_example(policy),), str(tmp), input_names=["obs"],
                              output_names=["logits", "saliency"], opset_version=ONNX_OPSET,
                              dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"},
                                            "saliency": {0: "batch"}}, dynamo=False)

    atomic_write(path, write)


def _torchscript(policy: PolicyNet, path: Path) -> None:
    from digr.deploy.explainer import ExplainingPolicy

    module = ExplainingPolicy(policy).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, (_example(policy),), check_trace=False)
    atomic_write(path, lambda tmp: torch.jit.save(traced, str(tmp)))


def _sb3(policy: PolicyNet, path: Path) -> None:
    import gymnasium as gym
    import numpy as np
    from stable_baselines3 import PPO

    from digr.rl.sb3 import policy_kwargs

    cfg = policy.config
    if cfg.attention is not None:
        raise DigrError("sb3 export of policies with an FLS attention module is not supported")

    class _Spaces(gym.Env):  # PPO needs an env to build its policy; this one is never stepped
        observation_space = gym.spaces.Box(0, 255, tuple(cfg.obs_shape), np.uint8)
        action_space = gym.spaces.Discrete(cfg.n_actions)

    model = PPO("CnnPolicy", _Spaces(), policy_kwargs=policy_kwargs(cfg), device="cpu", verbose=0, seed=0)
    sb3 = model.policy
    with torch.no_grad():
        sb3.features_extractor.trunk.load_state_dict(policy.trunk.state_dict())
        sb3.action_net.load_state_dict(policy.pi.state_dict())
        sb3.value_net.load_state_dict(policy.v.state_dict())

    def write(tmp: Path) -> None:
        model.save(str(tmp))  # SB3 appends ".zip" to a name without it
        if not tmp.exists() and Path(f"{tmp}.zip").exists():
            os.replace(f"{tmp}.zip", tmp)

    atomic_write(path, write)


def export_policy(policy: PolicyNet, path: str | Path, *, fmt: str) -> Path:
    """Write ``policy`` to the file ``path`` as ``fmt`` (one of :data:`EXPORT_FORMATS`), atomically.

    ``path`` must not be an existing folder; an existing file is replaced only once the new one
    is complete. Returns ``path``.
    """
    if fmt not in EXPORT_FORMATS:
        raise DigrError(f"unknown export format {fmt!r}; choose one of: {', '.join(EXPORT_FORMATS)}")
    path = Path(path)
    if path.is_dir():
        raise DigrError(f"{path} is a folder; --out names the file to write")
    if not path.parent.is_dir():
        raise DigrError(f"folder {path.parent} does not exist")
    {"onnx": _onnx, "torchscript": _torchscript, "sb3": _sb3}[fmt](policy.eval(), path)
    return path


__all__ = ["EXPORT_FORMATS", "ONNX_OPSET", "export_policy"]
