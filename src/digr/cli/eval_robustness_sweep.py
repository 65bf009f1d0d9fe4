"""``digr evaluate robustness-sweep``: every (attack, eps) point of Figure 8 for one policy."""

from __future__ import annotations

import argparse

from digr.cli.common import (
    add_policy,
    add_task,
    emit,
    episode_count,
    eps_value,
    pos_int,
    resolve_task,
    seed_value,
)
from digr.cli.fields import add_fields, config_from, field_names
from digr.evaluation.settings import RobustnessSweepConfig

FIELDS = field_names(RobustnessSweepConfig)
"""Every :class:`RobustnessSweepConfig` field is an option."""
NAME = "robustness-sweep"
HELP = "the robustness curves: every attack at every eps (resumable with --out; --baseline compares)"
DESCRIPTION = HELP + """

The same rollouts as `digr evaluate robustness`, one per (attack, eps) point (eps 0, the clean
policy, once for all attacks). --out FILE saves every point as it finishes; rerunning the same
command resumes from FILE (more attacks or radii reuse the points already there; a FILE of another
policy or other settings is refused and left as it is). --baseline FILE compares each point with
another sweep of the same settings -- typically the teacher's, saved the same way or taken from a
report's eval/robustness-teacher.json -- and lists the points where this policy does worse.

With --surrogate-softplus BETA the attacks follow the policy's smooth twin's gradient, which a ReLU
network's masked gradient cannot hide from; run it beside the own-gradient sweep and read the lower
of the two (`digr report --surrogate-softplus` does so).

example:
  digr evaluate robustness-sweep --policy runs/student --task red-fetch-green \\
      --out runs/student.sweep.json --baseline runs/teacher.sweep.json --json
"""


def name_list(text: str) -> tuple[str, ...]:
    """Comma-separated names, or ``all`` for the four attacks."""
    if text.strip() == "all":
        return RobustnessSweepConfig.attacks
    names = tuple(t.strip() for t in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated attack names, got {text!r}")
    return names


def eps_list(text: str) -> tuple[float, ...]:
    """Comma-separated radii, each a number or a fraction such as ``8/255``."""
    return tuple(eps_value(t.strip()) for t in text.split(","))


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy(p)
    add_task(p, required=False)
    add_fields(p, RobustnessSweepConfig, FIELDS, defaults=True,
               types={"attacks": name_list, "eps": eps_list, "episodes": episode_count, "seed": seed_value,
                      "attack_steps": pos_int, "workers": pos_int},
               metavars={"attacks": "A,B", "eps": "E1,E2", "attack_steps": "STEPS", "step_size": "ALPHA",
                         "surrogate_softplus": "BETA", "workers": "N"})
    p.add_argument("--out", metavar="FILE", default=None,
                   help="JSON file every point is saved to as it finishes; an existing one of the same "
                        "policy and settings is resumed")
    p.add_argument("--baseline", metavar="FILE", default=None,
                   help="another sweep (this command's --out or --json, or a report's "
                        "eval/robustness-ROLE.json) to compare every point with")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from digr.evaluation import robustness as rob
    from digr.models import load_policy
    from digr.models.checkpoint import file_digest, resolve

    cfg = config_from(RobustnessSweepConfig, args, FIELDS)  # cheap argument errors first
    baseline = rob.read_sweep_rows(args.baseline) if args.baseline else None
    spec = resolve_task(args, args.policy)
    policy = load_policy(args.policy, task=spec.name)
    if args.out:
        rows = rob.sweep_to_file(policy, spec.name, args.out, cfg, policy_digest=file_digest(resolve(args.policy)))
    else:
        rows = rob.robustness_sweep(policy, spec.name, attacks=cfg.attacks, eps_values=cfg.eps,
                                    episodes=cfg.episodes, seed=cfg.seed, workers=cfg.workers,
                                    surrogate_softplus=cfg.surrogate_softplus, **cfg.attack_settings())
    metric = "success_rate" if spec.has_success else "mean_return"
    result = {"task": spec.name, "policy": str(args.policy), "metric": metric, "points": rows}
    if baseline is not None:
        below, compared = rob.points_below(rows, baseline, metric)
        result.update(baseline=str(args.baseline), compared=compared, below_baseline=below)
    if args.json:
        emit(result, as_json=True)
        return 0
    names = list(dict.fromkeys(r["attack"] for r in rows))
    by = {(r["attack"], r["eps"]): r[metric] for r in rows}
    print(f"{metric} of {args.policy} ({spec.name}, {cfg.episodes} episodes per point)")
    print("eps/255 " + "".join(f"{n:>10}" for n in names))
    for e in dict.fromkeys(r["eps"] for r in rows):
        print(f"{e * 255:7.3g} " + "".join(f"{by[(n, e)]:10.3f}" for n in names))
    if baseline is not None:
        worse = ", ".join(f"{b['attack']}@{b['eps_255']:g}/255 ({b[metric]:.3f} < {b['baseline']:.3f})"
                          for b in result["below_baseline"])
        print(f"below the baseline at {len(result['below_baseline'])} of {compared} points" + (f": {worse}" if worse else ""))
    return 0
