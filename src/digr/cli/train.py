"""``digr train``: PPO teacher training with the paper's Table 2 settings."""

from __future__ import annotations

import argparse

from digr.cli.common import add_task, nonneg_int, pos_int, resolve_task, seed_value, thread_count
from digr.cli.fields import add_fields, field_values
from digr.distill.config import STUDENT_FLS as FLS_VARIANTS  # the one torch-free list of FLS variants
from digr.rl.config import VEC_ENVS, PPOConfig

FIELDS = ("total_timesteps", "seed", "learning_rate", "n_envs", "n_steps", "n_epochs", "n_minibatches", "gamma",
          "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm", "clip_range", "checkpoint_every", "stop_at_success",
          "success_window", "vec_env")
"""The :class:`PPOConfig` fields that are options of ``digr train`` (``--threads`` sets
``torch_threads``; ``frame_stack`` is the task's observation layout, not an option)."""

NAME = "train"
HELP = "train a PPO teacher (Stable-Baselines3) with the task's Table 2 settings; resumable"
DESCRIPTION = HELP + """

Rerunning with the same --out continues from the last checkpoint (policy/, resume/).
The run folder gets config.json, policy/ (digr checkpoint), progress.csv and tb/ (TensorBoard)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_task(p)
    p.add_argument("--out", required=True, help="run folder (created; resumed if it exists)")
    add_fields(p, PPOConfig, FIELDS, flags={"total_timesteps": "--timesteps"},
               types={"total_timesteps": nonneg_int, "seed": seed_value, "n_envs": pos_int, "n_steps": pos_int,
                      "n_epochs": pos_int, "n_minibatches": pos_int, "checkpoint_every": pos_int,
                      "success_window": pos_int},
               choices={"vec_env": VEC_ENVS}, metavars={"total_timesteps": "STEPS"})
    p.add_argument("--threads", type=thread_count, default=None,
                   help="torch CPU threads for this command (default: digr --torch-threads, 1)")
    p.add_argument("--fls", choices=list(FLS_VARIANTS), default=None,
                   help="train a Free-Lunch Saliency network instead of the plain one: sparse (FLS + "
                        "flatten), sparse-sum (FLS + sum-pool), dense (stride-1 trunk + FLS + sum-pool); "
                        "same PPO settings; recorded in config.json and the checkpoint")
    p.add_argument("--init-from", metavar="CHECKPOINT", default=None,
                   help="when --out holds no resume state: start from this digr checkpoint's weights "
                        "(fresh optimizer; steps counted on from its meta), e.g. to continue a "
                        "committed teacher whose resume/ folder is gone")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object (implies --no-progress)")


def run(args: argparse.Namespace) -> int:
    from digr.rl.train import train_teacher

    spec = resolve_task(args)
    cfg = PPOConfig.for_task(spec, torch_threads=args.threads or None, **field_values(args, FIELDS))
    stats = train_teacher(spec.name, args.out, cfg, show_progress=not args.no_progress and not args.json, fls=args.fls,
                          init_from=args.init_from)
    if args.json:
        from digr.cli.common import emit

        emit({"task": spec.name, "out": str(args.out), "policy": f"{args.out}/policy", "fls": args.fls, **stats},
             as_json=True)
        return 0
    net = f" (FLS {args.fls})" if args.fls else ""
    print(f"trained {spec.name}{net}: {stats}  -> {args.out}/policy")
    return 0
