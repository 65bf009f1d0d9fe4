"""``digr evaluate performance``: success rate and return over seeded episodes."""

from __future__ import annotations

import argparse

from digr.cli.common import add_policy, add_task, emit, episode_count, resolve_task, seed_value

NAME = "performance"
HELP = "success rate / return of a policy over N seeded episodes (greedy actions by default)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy(p)
    add_task(p, required=False)
    p.add_argument("--episodes", type=episode_count, default=100, help="episodes (default 100)")
    p.add_argument("--seed", type=seed_value, default=0, help="episode k resets with seed+k (default 0)")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of argmax")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from digr.evaluation.performance import evaluate_policy
    from digr.models import load_policy

    spec = resolve_task(args, args.policy)
    policy = load_policy(args.policy, task=spec.name)
    result = evaluate_policy(policy, spec.name, episodes=args.episodes, seed=args.seed,
                             deterministic=not args.stochastic)
    emit({"task": spec.name, "policy": str(args.policy), **result}, as_json=args.json)
    return 0
