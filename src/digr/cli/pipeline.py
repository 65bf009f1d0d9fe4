"""``digr pipeline``: the whole DIGR job for one task, resumable stage by stage."""

from __future__ import annotations

import argparse

from digr.cli.common import (
    add_parallel,
    add_task,
    nonneg_int,
    parallel_config,
    pos_int,
    recipe_value,
    resolve_task,
    seed_value,
)
from digr.cli.fields import add_fields, field_values
from digr.distill.config import RECIPES
from digr.pipeline import PRESETS, PipelineConfig, preset_config

NAME = "pipeline"
HELP = "run teacher -> dataset -> DIGR + distill-only students -> report (skips finished stages)"
DESCRIPTION = HELP + """

Stages: teacher (trained with SB3 PPO unless --teacher is given), the teacher's perturbation
saliency dataset, the DIGR student, the distillation-only student, and report.md with Table 1,
timing, robustness and performance figures. Each stage is skipped when its output exists and
continues where it stopped when it was interrupted: rerun the same command.
Presets: full (paper sizes, Tables 2/3) and demo (small budgets, ~15 min on 2 cores)."""


FIELDS = ("recipe", "seed", "teacher_timesteps", "teacher_stop_at_success", "dataset_size", "dataset_stride",
          "student_steps", "student_eval_every", "student_eval_episodes", "report_states", "report_stride",
          "agreement_states", "report_episodes", "robustness_episodes")
"""The :class:`PipelineConfig` fields that are options of ``digr pipeline`` (the eps and attack
lists and the report's sections keep the preset's)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_task(p)
    p.add_argument("--out", required=True, help="pipeline folder (created; resumed if it exists)")
    p.add_argument("--teacher", default=None, metavar="CKPT",
                   help="reuse this teacher checkpoint instead of training one")
    p.add_argument("--preset", default="full", choices=list(PRESETS),
                   help="budget preset whose values the options below override (default full)")
    add_fields(p, PipelineConfig, FIELDS,
               types={"seed": seed_value, "teacher_timesteps": nonneg_int, "dataset_size": pos_int,
                      "dataset_stride": pos_int, "report_stride": pos_int,
                      "student_steps": nonneg_int, "student_eval_every": nonneg_int,
                      "student_eval_episodes": nonneg_int, "report_states": pos_int, "agreement_states": pos_int,
                      "report_episodes": pos_int, "robustness_episodes": pos_int, "recipe": recipe_value},
               metavars={"recipe": "{" + ",".join(RECIPES) + "}"})
    add_parallel(p, what="the dataset's shards")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")


def run(args: argparse.Namespace) -> int:
    from digr.pipeline import Pipeline

    resolve_task(args, args.teacher)  # --task / --env; a teacher trained on stacked frames: NAME+stackK
    cfg = preset_config(args.preset, **field_values(args, FIELDS))
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
