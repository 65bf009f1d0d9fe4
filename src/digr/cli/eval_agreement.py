"""``digr evaluate agreement``: does a policy's gradient map read like the teacher's perturbation map?"""

from __future__ import annotations

import argparse

from digr.cli.common import add_policy, add_task, emit, resolve_task, seed_value, state_count
from digr.cli.fields import add_fields, config_from, field_names
from digr.evaluation.settings import AgreementConfig

FIELDS = field_names(AgreementConfig)
"""Every :class:`AgreementConfig` field is an option."""
NAME = "agreement"
HELP = "map agreement (no masks needed): a policy's vanilla-gradient map vs the teacher's perturbation map"
DESCRIPTION = HELP + """

On held-out states from the teacher's own sampled rollouts (a seed stream no dataset uses), each
--policy's vanilla-gradient map (eq. 2) is compared with the teacher's Gaussian-blur perturbation
map (eq. 3, the task's radius): cc (Pearson correlation over pixels), share (the map's mass on
pixels where the perturbation map exceeds 0.1) and top1 (the map's mass in its 1% largest pixels;
near 1 for a spike). Means over states with 95% intervals; the teacher's own gradient on the same
states ("teacher_vg") is the baseline. Goal of a DIGR student: cc >= 0.7, share >= 0.8.

example:
  digr evaluate agreement --teacher results/red-fetch-green/teacher --policy results/red-fetch-green/digr \\
      --task red-fetch-green --states 100 --json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy(p, "--teacher", dest="teacher")
    p.add_argument("--policy", action="append", required=True, metavar="CKPT",
                   help="policy (student) checkpoint or run folder to measure; repeatable")
    add_task(p, required=False)
    add_fields(p, AgreementConfig, FIELDS, types={"states": state_count, "seed": seed_value}, defaults=True)
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="keep the held-out states and reference maps in DIR (npz) and reuse them")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from digr.errors import DigrError
    from digr.evaluation.agreement import map_agreement
    from digr.models import load_policy

    cfg = config_from(AgreementConfig, args, FIELDS)
    spec = resolve_task(args, args.teacher)
    teacher = load_policy(args.teacher, task=spec.name)
    policies = {str(p): load_policy(p, task=spec.name) for p in args.policy}
    if len(policies) != len(args.policy):
        raise DigrError("each --policy must be named once")
    result = map_agreement(policies, teacher, spec.name, states=cfg.states, seed=cfg.seed,
                           radius=cfg.radius, cache=args.cache)
    out = {"task": spec.name, "teacher": str(args.teacher), "states": cfg.states, "seed": cfg.seed,
           "agreement": {k: v.as_dict() for k, v in result.items()}}
    if args.json:
        emit(out, as_json=True)
    else:
        print(f"{'policy':<48} {'cc':>12} {'share':>12} {'top1':>6}")
        for name, a in result.items():
            print(f"{name:<48} {a.cc:6.3f}±{a.cc_ci95:.3f} {a.share:6.3f}±{a.share_ci95:.3f} {a.top1:6.3f}")
    return 0
