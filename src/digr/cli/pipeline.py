"""``digr pipeline``: the whole DIGR job for one task, resumable stage by stage."""

from __future__ import annotations

import argparse

from digr.cli.common import (
    add_parallel,
    add_task,
    nonneg_int,
    parallel_config,
    pos_int,
    resolve_task,
    seed_value,
)

NAME = "pipeline"
HELP = "run teacher -> dataset -> DIGR + distill-only students -> report (skips finished stages)"
DESCRIPTION = HELP + """

Stages: teacher (trained with SB3 PPO unless --teacher is given), the teacher's perturbation
saliency dataset, the DIGR student, the distillation-only student, and report.md with Table 1,
timing, robustness and performance figures. Each stage is skipped when its output exists and
continues where it stopped when it was interrupted: rerun the same command.
Presets: full (paper sizes, Tables 2/3) and demo (small budgets, ~15 min on 2 cores)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_task(p)
    p.add_argument("--out", required=True, help="pipeline folder (created; resumed if it exists)")
    p.add_argument("--teacher", default=None, metavar="CKPT",
                   help="reuse this teacher checkpoint instead of training one")
    p.add_argument("--preset", default="full", help="budget preset: full | demo (default full)")
    p.add_argument("--seed", type=seed_value, default=None, help="seed of every stage (default 0)")
    p.add_argument("--dataset-size", type=pos_int, default=None, help="override the dataset size")
    p.add_argument("--student-steps", type=nonneg_int, default=None, help="override the student updates")
    p.add_argument("--teacher-timesteps", type=nonneg_int, default=None, help="override PPO steps")
    p.add_argument("--report-states", type=pos_int, default=None, help="override the benchmark states")
    add_parallel(p, what="the dataset's shards")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")


def run(args: argparse.Namespace) -> int:
    from digr.pipeline import Pipeline, preset_config

    resolve_task(args, args.teacher)  # --task / --env; a teacher trained on stacked frames: NAME+stackK
    cfg = preset_config(args.preset, seed=args.seed, dataset_size=args.dataset_size,
                        student_steps=args.student_steps, teacher_timesteps=args.teacher_timesteps,
                        report_states=args.report_states)
    state = Pipeline(args.task, args.out, teacher=args.teacher, config=cfg, preset=args.preset,
                     show_progress=not args.no_progress, parallel=parallel_config(args)).run()
    if args.json:
        from digr.cli.common import emit

        emit({"task": args.task, "out": str(args.out), "report": f"{args.out}/report.md",
              "stages": {k: v.get("wall_s") for k, v in state["stages"].items()}}, as_json=True)
        return 0
    print(f"pipeline complete: {args.out}/report.md")
    for name, rec in state["stages"].items():
        print(f"  {name:<13} {rec['wall_s']:>8.1f} s")
    return 0
