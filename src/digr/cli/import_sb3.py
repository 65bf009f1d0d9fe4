"""``digr import-sb3``: convert a Stable-Baselines3 PPO zip into a digr checkpoint."""

from __future__ import annotations

import argparse

from digr.cli.common import add_task, task_name

NAME = "import-sb3"
HELP = "convert a Stable-Baselines3 PPO/A2C model zip into a digr checkpoint (TRUSTED files only)"
DESCRIPTION = """Convert a Stable-Baselines3 PPO/A2C model zip into a digr checkpoint.

WARNING: an SB3 .zip contains pickled Python objects; loading it can execute arbitrary code.
Only import zips you trust (ones you trained yourself). The digr checkpoint written here is
config JSON + safetensors and loads without executing code.

Supported: PPO and A2C CnnPolicy, DQN and QR-DQN (sb3-contrib) CnnPolicy (the policy is then the
softmax of the Q-values), whose features extractor is conv layers + flatten + one linear layer
(SB3's NatureCNN, digr's own, or any such) with net_arch=[] (the CnnPolicy default), any number
of stacked frames in either channel order. The task is --task NAME or --env ID: a model trained on
K stacked frames of the task (the RL Zoo Atari layout: 4) is recorded as NAME+stackK."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL.zip", help="SB3 model zip (trusted: it is unpickled)")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    add_task(p, required=False)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _load(path):
    """The SB3 model in ``path``: PPO, A2C, DQN or (with sb3-contrib) QR-DQN, tried in that order."""
    from digr.errors import DigrError

    classes = []
    from stable_baselines3 import A2C, DQN, PPO

    classes = [PPO, A2C, DQN]
    try:
        from sb3_contrib import QRDQN

        classes.append(QRDQN)
    except ImportError:
        pass
    errors = []
    for cls in classes:
        try:
            return cls.load(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - SB3 raises many types for a zip of another class
            errors.append(f"{cls.__name__}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    raise DigrError(f"cannot load {path} as an SB3 {'/'.join(c.__name__ for c in classes)} model ({errors[0]})")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from digr.envs import get_task, task_for_obs
    from digr.errors import DigrError
    from digr.io import claim_folder
    from digr.models.checkpoint import save_policy
    from digr.rl.sb3 import policy_from_sb3, policy_from_sb3_q

    path = Path(args.model)
    if not path.is_file():
        raise DigrError(f"SB3 model not found: {path}")
    name = task_name(args)
    if name is not None:
        get_task(name)  # an unknown task or env fails before the (slow, unsafe) unpickling
    claim_folder(args.out, "checkpoint")
    model = _load(path)
    q_values = hasattr(model.policy, "q_net") or hasattr(model.policy, "quantile_net")
    policy = policy_from_sb3_q(model.policy) if q_values else policy_from_sb3(model.policy)
    pc = policy.config
    if name is None:
        raise DigrError(f"{path} holds a {type(model).__name__} policy for observations {pc.obs_shape} with "
                        f"{pc.n_actions} actions, but not which environment it acts in: add --task NAME or "
                        "--env ID")
    spec = get_task(task_for_obs(name, pc.obs_shape))
    if pc.obs_shape != spec.obs_shape or pc.n_actions != spec.n_actions:
        raise DigrError(f"model has observations {pc.obs_shape} and {pc.n_actions} actions; task {spec.name!r} "
                        f"gives {spec.obs_shape} and {spec.n_actions}")
    meta = {"imported_from": path.name, "sb3_class": type(model).__name__}
    if q_values:
        meta["policy_from"] = "softmax of the Q-values"
    save_policy(policy, args.out, task=spec.name, meta=meta)
    if args.json:
        from digr.cli.common import emit

        emit({"out": str(args.out), "task": spec.name, **meta,
              "parameters": sum(p.numel() for p in policy.parameters())}, as_json=True)
        return 0
    note = " (its policy: the softmax of the Q-values)" if q_values else ""
    print(f"wrote {args.out}: task {spec.name}, {sum(p.numel() for p in policy.parameters()):,} parameters{note}")
    return 0
