"""``digr dataset``: the offline perturbation-saliency dataset D of a teacher (DIGR section 3)."""

from __future__ import annotations

import argparse

from digr.cli.common import (
    add_parallel,
    add_policy,
    add_task,
    emit,
    parallel_config,
    pos_int,
    resolve_task,
    seed_value,
)
from digr.cli.fields import add_fields, field_values
from digr.distill.config import DatasetConfig

FIELDS = ("size", "seed", "radius", "stride", "truncate", "shard_size", "keep_prob")
"""The :class:`DatasetConfig` fields that are options of ``digr dataset`` (all of them); an option
not given keeps the task's value (Table 3, appendix A)."""

NAME = "dataset"
HELP = "states from a teacher's rollouts with its Gaussian-blur perturbation maps (DIGR's dataset D)"
DESCRIPTION = HELP + """

States come from the teacher's own sampled rollouts; each is stored with the teacher's
perturbation saliency map (radius: the task's, appendix A) and action probabilities, in .npz
shards plus manifest.json. Each shard has its own seed: made one after the other (default) or as
Ray tasks (--ray, --ray-address, --workers), the dataset is the same. Rerunning with the same
--out continues after the last complete shard and gives the same final dataset."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy(p, "--teacher", dest="teacher")
    add_task(p, required=False)
    p.add_argument("--out", required=True, help="dataset folder (created; continued if it exists)")
    add_parallel(p, what="the shards")
    add_fields(p, DatasetConfig, FIELDS,
               types={"size": pos_int, "seed": seed_value, "shard_size": pos_int, "stride": pos_int,
                      "radius": pos_int})
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    import time

    from digr.distill.dataset import build_dataset

    spec = resolve_task(args, args.teacher)
    cfg = DatasetConfig.for_task(spec, **field_values(args, FIELDS))
    t0 = time.time()
    m = build_dataset(args.teacher, spec.name, args.out, cfg, parallel=parallel_config(args),
                      show_progress=not args.no_progress and not args.json)
    emit({"task": spec.name, "out": str(args.out), "count": m["count"], "complete": m["complete"],
          "shards": len(m["shards"]), "radius": m["radius"], "stride": m["stride"],
          "teacher_sha256": m["teacher_sha256"], "wall_s": round(time.time() - t0, 2)}, as_json=args.json)
    return 0
