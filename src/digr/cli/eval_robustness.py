"""``digr evaluate robustness``: success rate / return with every observation attacked."""

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

NAME = "robustness"
HELP = "success rate / return under an observation attack (fgsm | pgd | mi-fgsm | mad) of radius eps"
DESCRIPTION = HELP + """

At every step the attack perturbs the observation inside the L-inf eps-ball (and the pixel range)
to push the policy away from its clean greedy action; the policy then acts greedily on the
attacked observation (paper section 4.6, Figure 8).

eps is in the [0, 1] pixel scale: uint8 pixels are divided by 255, so --eps 0.0314 (8/255) lets
the attacker move every pixel by up to 8 grey levels. Fractions such as 8/255 are accepted.

example:
  digr evaluate robustness --policy runs/rfg-teacher/policy --task red-fetch-green \\
      --attack pgd --eps 8/255 --episodes 50 --json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy(p)
    add_task(p, required=False)
    p.add_argument("--attack", required=True, metavar="NAME", help="fgsm | pgd | mi-fgsm | mad")
    p.add_argument("--eps", required=True, type=eps_value, metavar="E",
                   help="L-inf radius in the [0, 1] pixel scale, 0 <= E <= 1 (e.g. 0.0314 or 8/255)")
    p.add_argument("--episodes", type=episode_count, default=50, help="episodes (default 50, as in the paper)")
    p.add_argument("--seed", type=seed_value, default=0,
                   help="episode k resets with seed+k; also seeds the attack's random start (default 0)")
    # Not --steps / --alpha: those name the student's updates and eq. 5's weight in `digr distill`.
    p.add_argument("--attack-steps", type=pos_int, default=None, dest="steps",
                   help="iterations of pgd / mi-fgsm / mad (default 10; fgsm is one step)")
    p.add_argument("--step-size", type=float, default=None, dest="alpha",
                   help="step size of pgd / mi-fgsm / mad (default: the attack's own, see its docs)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from digr.attacks import check_eps, resolve_attack_name
    from digr.evaluation.robustness import evaluate_robustness
    from digr.models import load_policy

    # Cheap argument errors first, before loading a checkpoint.
    attack = resolve_attack_name(args.attack)
    eps = check_eps(args.eps)
    settings = {k: v for k, v in (("steps", args.steps), ("alpha", args.alpha)) if v is not None}
    spec = resolve_task(args, args.policy)
    policy = load_policy(args.policy, task=spec.name)
    result = evaluate_robustness(policy, spec.name, attack=attack, eps=eps, episodes=args.episodes,
                                 seed=args.seed, **settings)
    emit({"task": spec.name, "policy": str(args.policy), **result}, as_json=args.json)
    return 0
