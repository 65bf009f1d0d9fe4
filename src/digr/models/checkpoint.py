"""digr's checkpoint: a folder with ``config.json`` and ``model.safetensors``; no pickle.

Loading reads JSON and raw tensors only, so a checkpoint from anywhere cannot execute code.
Saving writes into a temporary sibling folder and renames it into place, so an interrupted save
never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from digr import __version__
from digr.errors import DigrError
from digr.io import atomic_dir, claim_folder, read_versioned_json
from digr.models.cnn import PolicyConfig, PolicyNet

FORMAT = "digr-policy"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_policy(policy: PolicyNet, path: str | Path, *, task: str, meta: dict[str, Any] | None = None
                ) -> Path:
    """Write ``policy`` to the folder ``path`` atomically (replacing an existing checkpoint)."""
    path = claim_folder(path, "checkpoint")  # never replace a folder digr did not write as one
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(path) as tmp:  # an existing checkpoint is kept as .<name>.old until the swap
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "digr_version": __version__,
            "task": task,
            "policy": policy.config.to_dict(),
            "meta": meta or {},
        }
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": FORMAT})
    return path


def resolve(path: str | Path) -> Path:
    """A checkpoint folder, or a training run folder whose ``policy/`` is the checkpoint."""
    path = Path(path)
    if path.is_dir() and not (path / WEIGHTS_NAME).exists() and (path / "policy" / WEIGHTS_NAME).exists():
        return path / "policy"
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    """The validated ``config.json`` of the checkpoint folder ``path``."""
    path = resolve(path)
    if not path.exists():
        raise DigrError(f"checkpoint not found: {path}")
    if not path.is_dir():
        raise DigrError(f"checkpoint must be a folder with {CONFIG_NAME} and {WEIGHTS_NAME}: {path}"
                        + (" (SB3 zips are converted with 'digr import-sb3')" if path.suffix == ".zip" else ""))
    config = read_versioned_json(path / CONFIG_NAME, owner=f"checkpoint {path}", fmt=FORMAT,
                                 version=FORMAT_VERSION, kind="digr policy config")
    return config


def load_policy(path: str | Path, *, task: str | None = None) -> PolicyNet:
    """Load a checkpoint folder into an eval-mode :class:`PolicyNet`.

    With ``task``, also checks that the checkpoint's observation shape and action count fit that
    task, so a policy for another task fails here with one clear message.
    """
    path = resolve(path)
    config = read_config(path)
    try:
        pcfg = PolicyConfig.from_dict(config.get("policy"))
    except DigrError as exc:
        raise DigrError(f"checkpoint {path}: {exc}") from None
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise DigrError(f"checkpoint {path}: policy config is invalid ({exc})") from None
    if task is not None:
        from digr.envs import get_task

        spec = get_task(task)
        if tuple(pcfg.obs_shape) != tuple(spec.obs_shape) or pcfg.n_actions != spec.n_actions:
            raise DigrError(
                f"checkpoint {path} expects observations {pcfg.obs_shape} and {pcfg.n_actions} "
                f"actions, but task {task!r} has {spec.obs_shape} and {spec.n_actions}")
    try:
        state = load_file(str(path / WEIGHTS_NAME))
    except FileNotFoundError:
        raise DigrError(f"checkpoint {path} has no {WEIGHTS_NAME}") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise DigrError(f"checkpoint {path}: {WEIGHTS_NAME} is corrupt or truncated ({exc})") from None
    for name, t in state.items():
        if not t.is_floating_point():
            raise DigrError(f"checkpoint {path}: tensor {name} is {t.dtype}, not floating point")
        if not bool(torch.isfinite(t).all()):
            raise DigrError(f"checkpoint {path}: tensor {name} holds NaN or inf values")
    # Compare shapes on a network without storage before allocating the real one: a config
    # that declares huge layers must not allocate them when its weights do not even match.
    with torch.device("meta"):
        want = {k: tuple(v.shape) for k, v in PolicyNet(pcfg).state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    if want != have:
        diff = sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have[k]]
        raise DigrError(f"checkpoint {path}: weights do not match its config (first difference: {diff[0]})")
    policy = PolicyNet(pcfg)
    try:
        policy.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DigrError(f"checkpoint {path}: weights do not match its config ({first})") from None
    return policy.eval()


def as_checkpoint(policy: "str | Path | PolicyNet", folder: Path, *, task: str) -> Path:
    """A checkpoint path for ``policy``: a path is returned as it is (resolved); an in-memory
    :class:`PolicyNet` is saved as ``folder/teacher`` first (the same weights give the same file,
    so a dataset and a student made from one in-memory teacher name the same digest)."""
    if isinstance(policy, torch.nn.Module):
        folder.mkdir(parents=True, exist_ok=True)
        return save_policy(policy, folder / "teacher", task=task)
    return resolve(policy)


def checkpoint_task(path: str | Path) -> str:
    """The task name recorded in a checkpoint."""
    return str(read_config(path).get("task"))


def file_digest(path: str | Path) -> str:
    """SHA-256 of a checkpoint's weights, used to tie datasets to their teacher."""
    import hashlib

    h = hashlib.sha256()
    with open(Path(path) / WEIGHTS_NAME, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def policy_blob(policy: PolicyNet) -> dict[str, Any]:
    """The teacher by content (config + weights as arrays) for workers that may be on other nodes."""
    return {"config": policy.config.to_dict(),
            "state": {k: v.detach().cpu().numpy() for k, v in policy.state_dict().items()}}


def policy_from_blob(blob: dict[str, Any]) -> PolicyNet:
    """The :class:`PolicyNet` that :func:`policy_blob` describes, in eval mode (nothing unpickled)."""
    policy = PolicyNet(PolicyConfig.from_dict(blob["config"]))
    policy.load_state_dict({k: torch.from_numpy(v) for k, v in blob["state"].items()})
    return policy.eval()



__all__ = ["save_policy", "load_policy", "read_config", "checkpoint_task", "file_digest", "policy_blob",
           "policy_from_blob"]
