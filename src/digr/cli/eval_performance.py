"""``digr evaluate performance``: success rate and return over seeded episodes."""

from __future__ import annotations

import argparse

from digr.cli.common import add_policy, add_task, emit, episode_count, resolve_task, seed_value
from digr.cli.fields import add_fields, config_from, field_names
from digr.evaluation.settings import PerformanceConfig

NAME = "performance"
HELP = "success rate / return of a policy over N seeded episodes (greedy actions by default)"
FIELDS = field_names(PerformanceConfig)
"""Every :class:`PerformanceConfig` field is an option."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy(p)
    add_task(p, required=False)
    add_fields(p, PerformanceConfig, FIELDS, types={"episodes": episode_count, "seed": seed_value},
               negate=("deterministic",), flags={"deterministic": "--stochastic"}, defaults=True)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from digr.evaluation.performance import evaluate_policy
    from digr.models import load_policy

    cfg = config_from(PerformanceConfig, args, FIELDS)
    spec = resolve_task(args, args.policy)
    policy = load_policy(args.policy, task=spec.name)
    result = evaluate_policy(policy, spec.name, episodes=cfg.episodes, seed=cfg.seed,
                             deterministic=cfg.deterministic)
    emit({"task": spec.name, "policy": str(args.policy), **result}, as_json=args.json)
    return 0
