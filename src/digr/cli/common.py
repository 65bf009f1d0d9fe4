"""Argument helpers shared by the command modules."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from digr.envs import TASKS
from digr.errors import DigrError


def add_task(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--task NAME`` for a preset, or ``--env ID [--env-module MOD]`` for any Gymnasium env.

    ``required``: one of them must be given; commands that read a checkpoint pass ``False`` and
    fall back on the task the checkpoint records (:func:`resolve_task`)."""
    # Checked by get_task() rather than argparse choices, so an unknown task is a one-line error.
    p.add_argument("--task", metavar="TASK",
                   help=f"task name: {', '.join(TASKS)}" + ("" if required else
                                                             " (default: the one the checkpoint records)"))
    p.add_argument("--env", metavar="ID",
                   help="instead of --task: any registered Gymnasium id with uint8 image observations and "
                        "discrete actions (task gym:ID; defaults from its spaces)")
    p.add_argument("--env-module", metavar="MOD",
                   help="module that registers --env ID (imported first, in worker processes too)")
    p.set_defaults(task_required=required)


def task_name(args: argparse.Namespace) -> str | None:
    """The task named by ``--task`` or ``--env``/``--env-module`` (``None``: neither given)."""
    from digr.envs.registry import GYM_PREFIX

    task, env, module = getattr(args, "task", None), getattr(args, "env", None), getattr(args, "env_module", None)
    if env is not None and task is not None:
        raise DigrError("give --task or --env, not both")
    if module is not None and env is None:
        raise DigrError("--env-module needs --env ID (the env the module registers)")
    if env is not None:
        if not env or env.startswith(GYM_PREFIX) or ":" in env and module is not None:
            raise DigrError(f"--env takes a Gymnasium id such as ALE/Pong-v5, got {env!r}")
        return f"{GYM_PREFIX}{module}:{env}" if module else f"{GYM_PREFIX}{env}"
    return task


def resolve_task(args: argparse.Namespace, checkpoint: str | None = None):
    """The :class:`TaskSpec` a command runs on, also stored back as ``args.task``.

    From ``--task`` / ``--env``; without them, the task ``checkpoint`` records. With a checkpoint
    trained on stacked frames of the task (e.g. the RL Zoo's 4-frame Atari layout), the task's
    ``+stackK`` variant, so that nobody restates the layout the checkpoint already holds."""
    from digr.envs import get_task, task_for_obs

    name = task_name(args)
    obs_shape = None
    if checkpoint is not None:
        from digr.models.checkpoint import read_config

        cfg = read_config(checkpoint)
        recorded = cfg.get("task")
        policy = cfg.get("policy")
        if isinstance(policy, dict) and isinstance(policy.get("obs_shape"), list):
            obs_shape = policy["obs_shape"]
        if name is None and isinstance(recorded, str) and recorded != "unknown":
            name = recorded
        elif (name is not None and isinstance(recorded, str) and recorded.startswith(name + "+stack")):
            name = recorded
    if name is None:
        raise DigrError("name the task: --task NAME (" + ", ".join(TASKS) + ") or --env ID")
    if obs_shape is not None and all(isinstance(x, int) for x in obs_shape):
        name = task_for_obs(name, tuple(obs_shape))
    spec = get_task(name)
    args.task = spec.name
    return spec


def add_policy(p: argparse.ArgumentParser, flag: str = "--policy", **kw: Any) -> None:
    p.add_argument(flag, required=True, metavar="CKPT",
                   help="digr checkpoint folder (config.json + model.safetensors) or a run folder "
                        "holding policy/", **kw)


def nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def pos_int(text: str) -> int:
    v = nonneg_int(text)
    if v == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return v


def seed_value(text: str) -> int:
    """A seed: an integer in ``[0, MAX_SEED]`` (32 bits, what NumPy and Gymnasium resets take)."""
    from digr.errors import MAX_SEED

    v = nonneg_int(text)
    if v > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SEED} (32 bits), got {v}")
    return v


def recipe_value(text: str) -> str:
    """A DIGR recipe name (:data:`digr.distill.config.RECIPES`); an old name says what it is now
    called, so a command written before the default changed fails with the way to fix it."""
    from digr.distill.config import DEFAULT_RECIPE, RECIPE_ALIASES, check_recipe

    if text in RECIPE_ALIASES:
        raise argparse.ArgumentTypeError(f"recipe {text!r} is now called {RECIPE_ALIASES[text]!r} (the default "
                                         f"is {DEFAULT_RECIPE!r} since session 22)")
    try:
        return check_recipe(text)
    except DigrError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


recipe_value.__name__ = "recipe"


from digr.errors import MAX_EPISODES, MAX_STATES  # noqa: E402 - beside their argparse types


def bounded_count(top: int):
    """An argparse type: an integer in ``[1, top]`` (a count whose arrays are allocated up front)."""

    def count(text: str) -> int:
        v = pos_int(text)
        if v > top:
            raise argparse.ArgumentTypeError(f"must be at most {top:,}, got {v:,}")
        return v

    count.__name__ = "count"
    return count


episode_count = bounded_count(MAX_EPISODES)
state_count = bounded_count(MAX_STATES)


def device_name(text: str) -> str:
    """``cpu``, or ``cuda`` / ``cuda:N`` when this torch build sees that GPU."""
    import torch

    if text == "cpu":
        return text
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(text[5:]) if ":" in text else 0
        if index < n:
            return text
        raise argparse.ArgumentTypeError(f"{text} is not available here (this torch sees {n} CUDA device(s)); "
                                         "use cpu")
    raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")


def thread_count(text: str) -> int:
    """A torch thread count: 1 .. 4 per CPU core (a huge count makes torch crash, not just slow)."""
    import os

    v = pos_int(text)
    top = (os.cpu_count() or 1) * 4
    if v > top:
        raise argparse.ArgumentTypeError(f"must be at most {top} (4 per CPU core), got {v}")
    return v


def emit(result: dict[str, Any], *, as_json: bool) -> None:
    """Print a result: one JSON object with ``--json``, else aligned ``key: value`` lines."""
    if as_json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result) if result else 0
        for k, v in result.items():
            print(f"{k:<{width}}  {v}", file=sys.stdout)


def eps_value(text: str) -> float:
    """A float, or a fraction such as ``8/255``; the range is checked by the attacks (DigrError)."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"expected a number or a fraction like 8/255, got {text!r}") from None


def add_parallel(p: argparse.ArgumentParser, *, what: str) -> None:
    """``--ray``, ``--ray-address`` and ``--workers``: where the independent units of ``what`` run
    (:class:`digr.parallel.ParallelConfig`)."""
    p.add_argument("--ray", action="store_true",
                   help=f"make {what} as Ray tasks on a local Ray (pip install 'digr[ray]')")
    p.add_argument("--ray-address", metavar="ADDR", default=None,
                   help="join the running Ray cluster at ADDR instead (implies --ray)")
    p.add_argument("--workers", type=bounded_count(4096), default=None,
                   help="CPUs of the local Ray (default: all cores); more than 1 implies --ray. "
                        "Without Ray the units run one after the other in this process")


def parallel_config(args: argparse.Namespace):
    from digr.parallel import ParallelConfig

    workers = getattr(args, "workers", None)
    use = bool(getattr(args, "ray", False) or getattr(args, "ray_address", None) or (workers or 1) > 1)
    return ParallelConfig(ray=use, workers=workers, address=getattr(args, "ray_address", None)).validate()
