"""``digr evaluate timing``: milliseconds per saliency map at batch 1 (paper Figure 1b)."""

from __future__ import annotations

import argparse

from digr.cli.common import (
    add_policy,
    add_task,
    device_name,
    emit,
    pos_int,
    resolve_task,
    seed_value,
)
from digr.cli.fields import add_fields, config_from, field_names
from digr.evaluation.settings import TimingConfig

FIELDS = field_names(TimingConfig)
"""Every :class:`TimingConfig` field is an option."""
NAME = "timing"
HELP = "milliseconds per saliency map at batch 1 for every method (+ DIGR's vanilla gradient on a student)"
DESCRIPTION = HELP + """

Times every registered saliency method on the policy (paper settings: the perturbation family at
the task's radius, stride 1) on one seeded observation (env.reset(seed=SEED)), after warm-up, plus
one plain forward pass for reference; with --student also the vanilla gradient on the student.
Prints median, p10 and p90 milliseconds per map. Slow methods are timed fewer times (at least 3)
so that each takes about --max-seconds. CPU timings use one torch thread unless --threads says
otherwise.

example:
  digr evaluate timing --policy runs/rfg-teacher/policy --task red-fetch-green \\
      --student runs/rfg-digr/policy --json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy(p)
    add_task(p, required=False)
    p.add_argument("--student", default=None, metavar="CKPT",
                   help="DIGR student checkpoint (times its vanilla gradient)")
    add_fields(p, TimingConfig, FIELDS, defaults=True,
               types={"repeats": pos_int, "seed": seed_value, "device": device_name})
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from digr.evaluation.timing import time_saliency
    from digr.models import load_policy

    cfg = config_from(TimingConfig, args, FIELDS)  # torch threads: set by digr.cli.main from --threads
    spec = resolve_task(args, args.policy)
    policy = load_policy(args.policy, task=spec.name)
    student = load_policy(args.student, task=spec.name) if args.student else None
    result = time_saliency(policy, spec.name, student=student, repeats=cfg.repeats, device=cfg.device,
                           seed=cfg.seed, max_seconds=cfg.max_seconds)
    result = {"policy": str(args.policy), "student": args.student, **result}
    if args.json:
        emit(result, as_json=True)
    else:
        rows = [("forward", result["forward"])] + list(result["methods"].items())
        if "digr_vanilla" in result:
            rows.append(("digr_vanilla (student)", result["digr_vanilla"]))
        print(f"{result['task']} on {result['machine']}, batch 1, ms per map (median [p10, p90], repeats)")
        width = max(len(n) for n, _ in rows)
        for n, t in rows:
            print(f"{n:<{width}}  {t['median_ms']:10.3f}  [{t['p10_ms']:.3f}, {t['p90_ms']:.3f}]  "
                  f"n={t['repeats']}")
    return 0
