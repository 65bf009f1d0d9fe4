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
from digr.cli.fields import add_fields, config_from, field_names
from digr.evaluation.settings import RobustnessConfig

FIELDS = field_names(RobustnessConfig)
"""Every :class:`RobustnessConfig` field is an option."""
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
    # --attack-steps / --step-size, not --steps / --alpha: those name the student's updates and
    # eq. 5's weight in `digr distill`.
    add_fields(p, RobustnessConfig, FIELDS, required=("attack", "eps"), defaults=True,
               types={"eps": eps_value, "episodes": episode_count, "seed": seed_value, "attack_steps": pos_int},
               metavars={"attack": "NAME", "eps": "E", "attack_steps": "STEPS", "step_size": "ALPHA",
                        "surrogate_softplus": "BETA"})
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from digr.attacks import resolve_attack_name
    from digr.evaluation.robustness import evaluate_robustness
    from digr.models import load_policy

    cfg = config_from(RobustnessConfig, args, FIELDS)  # cheap argument errors before loading a checkpoint
    spec = resolve_task(args, args.policy)
    policy = load_policy(args.policy, task=spec.name)
    result = evaluate_robustness(policy, spec.name, attack=resolve_attack_name(cfg.attack), eps=cfg.eps,
                                 episodes=cfg.episodes, seed=cfg.seed,
                                 surrogate_softplus=cfg.surrogate_softplus, **cfg.attack_settings())
    emit({"task": spec.name, "policy": str(args.policy), **result}, as_json=args.json)
    return 0
