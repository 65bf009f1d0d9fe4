"""``digr import-sb3``: convert a Stable-Baselines3 PPO zip into a digr checkpoint."""

from __future__ import annotations

import argparse

from digr.cli.common import add_task

NAME = "import-sb3"
HELP = "convert a Stable-Baselines3 PPO/A2C model zip into a digr checkpoint (TRUSTED files only)"
DESCRIPTION = """Convert a Stable-Baselines3 PPO/A2C model zip into a digr checkpoint.

WARNING: an SB3 .zip contains pickled Python objects; loading it can execute arbitrary code.
Only import zips you trust (ones you trained yourself). The digr checkpoint written here is
config JSON + safetensors and loads without executing code.

Supported: a discrete-action CnnPolicy whose features extractor is conv layers + one linear
layer (SB3's NatureCNN or digr's own) with net_arch=[] (the SB3 default for CnnPolicy)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL.zip", help="SB3 model zip (trusted: it is unpickled)")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    add_task(p, required=False)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from digr.errors import DigrError
    from digr.models.checkpoint import save_policy
    from digr.rl.sb3 import policy_from_sb3

    from digr.envs import get_task
    from digr.io import claim_folder

    path = Path(args.model)
    if not path.is_file():
        raise DigrError(f"SB3 model not found: {path}")
    spec = get_task(args.task) if args.task is not None else None  # before the (slow, unsafe) unpickling
    claim_folder(args.out, "checkpoint")
    from stable_baselines3 import PPO, A2C

    model = None
    for cls in (PPO, A2C):
        try:
            model = cls.load(str(path), device="cpu")
            break
        except Exception as exc:  # noqa: BLE001 - SB3 raises many types for a bad zip
            err = exc
    if model is None:
        raise DigrError(f"cannot load {path} as an SB3 PPO/A2C model ({type(err).__name__}: {err})")
    policy = policy_from_sb3(model.policy)
    task = args.task
    if spec is not None:
        if policy.config.obs_shape != spec.obs_shape or policy.config.n_actions != spec.n_actions:
            raise DigrError(f"model has observations {policy.config.obs_shape} and "
                            f"{policy.config.n_actions} actions; task {task!r} needs {spec.obs_shape} "
                            f"and {spec.n_actions}")
    save_policy(policy, args.out, task=task or "unknown",
                meta={"imported_from": path.name, "sb3_class": type(model).__name__})
    print(f"wrote {args.out} ({sum(p.numel() for p in policy.parameters()):,} parameters)")
    return 0
