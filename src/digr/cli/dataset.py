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
    p.add_argument("--size", type=pos_int, default=None,
                   help="number of states (default: the task's Table 3 size, 1000 for red-fetch-green)")
    p.add_argument("--out", required=True, help="dataset folder (created; continued if it exists)")
    add_parallel(p, what="the shards")
    p.add_argument("--seed", type=seed_value, default=0, help="seed (default 0)")
    p.add_argument("--shard-size", type=pos_int, default=None, help="states per shard file (default 64)")
    p.add_argument("--stride", type=pos_int, default=None,
                   help="perturbation stride in pixels (default 1: a full-resolution map)")
    p.add_argument("--truncate", type=float, default=None,
                   help="cut the perturbation window at this many radii (3.53: weights under half a grey "
                        "level; faster on large inputs); default: the exact window")
    p.add_argument("--radius", type=pos_int, default=None,
                   help="perturbation radius (default: the task's, appendix A)")
    p.add_argument("--keep-prob", type=float, default=None,
                   help="probability of keeping each visited state (default 0.25)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    import time

    from digr.distill.config import DatasetConfig
    from digr.distill.dataset import build_dataset

    spec = resolve_task(args, args.teacher)
    cfg = DatasetConfig.for_task(spec, size=args.size, seed=args.seed, shard_size=args.shard_size,
                                 stride=args.stride, radius=args.radius, keep_prob=args.keep_prob,
                                 truncate=args.truncate)
    t0 = time.time()
    m = build_dataset(args.teacher, spec.name, args.out, cfg, parallel=parallel_config(args),
                      show_progress=not args.no_progress and not args.json)
    emit({"task": spec.name, "out": str(args.out), "count": m["count"], "complete": m["complete"],
          "shards": len(m["shards"]), "radius": m["radius"], "stride": m["stride"],
          "teacher_sha256": m["teacher_sha256"], "wall_s": round(time.time() - t0, 2)}, as_json=args.json)
    return 0
