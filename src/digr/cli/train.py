"""``digr train``: PPO teacher training with the paper's Table 2 settings."""

from __future__ import annotations

import argparse

from digr.cli.common import add_task, resolve_task, seed_value, thread_count

FLS_VARIANTS = ("sparse", "sparse-sum", "dense")  # = digr.models.fls.VARIANTS (checked by a test)

NAME = "train"
HELP = "train a PPO teacher (Stable-Baselines3) with the task's Table 2 settings; resumable"
DESCRIPTION = HELP + """

Rerunning with the same --out continues from the last checkpoint (policy/, resume/).
The run folder gets config.json, policy/ (digr checkpoint), progress.csv and tb/ (TensorBoard)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_task(p)
    p.add_argument("--out", required=True, help="run folder (created; resumed if it exists)")
    p.add_argument("--timesteps", type=int, default=None,
                   help="total environment steps (default: the task's Table 2 value)")
    p.add_argument("--seed", type=seed_value, default=0, help="seed (default 0)")
    p.add_argument("--n-envs", type=int, default=None, help="parallel environments (Table 2 default)")
    p.add_argument("--learning-rate", type=float, default=None, help="Adam learning rate (Table 2 default)")
    p.add_argument("--stop-at-success", type=float, default=None,
                   help="stop once the running success rate reaches this (e.g. 0.99)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints")
    p.add_argument("--vec-env", choices=["dummy", "subproc"], default=None,
                   help="run envs in this process (dummy) or one process each (subproc)")
    p.add_argument("--threads", type=thread_count, default=None,
                   help="torch CPU threads for this command (default: digr --torch-threads, 1)")
    p.add_argument("--fls", choices=list(FLS_VARIANTS), default=None,
                   help="train a Free-Lunch Saliency network instead of the plain one: sparse (FLS + "
                        "flatten), sparse-sum (FLS + sum-pool), dense (stride-1 trunk + FLS + sum-pool); "
                        "same PPO settings; recorded in config.json and the checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object (implies --no-progress)")


def run(args: argparse.Namespace) -> int:
    from digr.errors import DigrError
    from digr.rl.config import PPOConfig
    from digr.rl.train import train_teacher

    spec = resolve_task(args)
    if args.timesteps is not None and args.timesteps < 0:
        raise DigrError(f"--timesteps must be >= 0, got {args.timesteps}")
    cfg = PPOConfig.for_task(
        spec, total_timesteps=args.timesteps, seed=args.seed, n_envs=args.n_envs,
        learning_rate=args.learning_rate, stop_at_success=args.stop_at_success,
        checkpoint_every=args.checkpoint_every, vec_env=args.vec_env, torch_threads=args.threads or None)
    stats = train_teacher(spec.name, args.out, cfg, show_progress=not args.no_progress and not args.json, fls=args.fls)
    if args.json:
        from digr.cli.common import emit

        emit({"task": spec.name, "out": str(args.out), "policy": f"{args.out}/policy", "fls": args.fls, **stats},
             as_json=True)
        return 0
    net = f" (FLS {args.fls})" if args.fls else ""
    print(f"trained {spec.name}{net}: {stats}  -> {args.out}/policy")
    return 0
