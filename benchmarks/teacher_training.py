"""Teacher-training speed: steps/s and wall time until the running success rate reaches a target.

    python benchmarks/teacher_training.py --out runs/bench-teacher            # trains (resumable)
    python benchmarks/teacher_training.py --from-run results/red-fetch-green/teacher-run  # re-reads a run

Trains SB3 PPO with the task's Table 2 settings (as ``digr train``) until the success rate over the
last 200 training episodes reaches ``--target``, then evaluates the greedy policy on
``--eval-episodes`` seeded episodes. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path


def first_crossing(progress: Path, target: float) -> dict | None:
    with open(progress) as f:
        for row in csv.DictReader(f):
            if float(row["success_rate"]) >= target:
                return {k: float(v) for k, v in row.items()}
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="red-fetch-green")
    ap.add_argument("--out", default="runs/bench-teacher")
    ap.add_argument("--from-run", default=None, help="only read an existing run folder")
    ap.add_argument("--target", type=float, default=0.99)
    ap.add_argument("--max-steps", type=int, default=3_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--eval-episodes", type=int, default=200)
    args = ap.parse_args()

    from digr.envs import get_task
    from digr.evaluation.performance import evaluate_policy
    from digr.models import load_policy

    run = Path(args.from_run or args.out)
    if args.from_run is None:
        from digr.rl.config import PPOConfig
        from digr.rl.train import train_teacher

        cfg = PPOConfig.for_task(get_task(args.task), total_timesteps=args.max_steps, seed=args.seed,
                                 stop_at_success=args.target, torch_threads=args.threads)
        t0 = time.time()
        train_teacher(args.task, run, cfg, show_progress=False)
        print(f"# trained in {time.time() - t0:.0f} s (this invocation)", flush=True)
    hit = first_crossing(run / "progress.csv", args.target)
    with open(run / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    last = rows[-1]
    ev = evaluate_policy(load_policy(run, task=args.task), args.task, episodes=args.eval_episodes, seed=10_000)
    print(json.dumps({
        "task": args.task,
        "target_success": args.target,
        "steps_to_target": int(hit["steps"]) if hit else None,
        "wall_s_to_target": hit["wall_s"] if hit else None,
        "wall_min_to_target": round(hit["wall_s"] / 60, 1) if hit else None,
        "mean_steps_per_s": round(float(last["steps"]) / max(float(last["wall_s"]), 1e-9), 1),
        "total_steps": int(float(last["steps"])),
        "greedy_eval": {k: ev[k] for k in ("success_rate", "mean_return", "episodes", "seed")},
        "machine": f"{platform.machine()} {os.cpu_count()} cores, torch threads {args.threads}",
    }))


if __name__ == "__main__":
    main()
