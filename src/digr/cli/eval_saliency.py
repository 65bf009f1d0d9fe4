"""``digr evaluate saliency``: Table 1 metrics of one saliency method on the Red-Fetch-Green benchmark."""

from __future__ import annotations

import argparse
import json
from typing import Any

from digr.cli.common import (
    add_policy,
    add_task,
    device_name,
    emit,
    nonneg_int,
    pos_int,
    resolve_task,
    seed_value,
    state_count,
)
from digr.cli.fields import add_fields, config_from, field_names
from digr.evaluation.settings import SaliencyBenchmarkConfig

FIELDS = field_names(SaliencyBenchmarkConfig)
"""Every :class:`SaliencyBenchmarkConfig` field is an option."""
NAME = "saliency"
HELP = "saliency quality on Red-Fetch-Green's ground-truth masks: important / unimportant / AUC (Table 1)"
DESCRIPTION = HELP + """

State k is env.reset(seed=SEED+k) of red-fetch-green (plus up to --moves seeded random moves).
important = agent + green target tiles, unimportant = empty floor tiles (walls and distractors are
left out). Each map is divided by its max; 'important' / 'unimportant' are the mean over states of
the summed saliency in each region (the paper's unit), 'auc' the pixel-level ROC AUC of important
vs unimportant pooled over all states (streamed through 65536 bins; 'auc_error_bound' bounds the
difference to the exact AUC, or use --exact-auc).

example:
  digr evaluate saliency --policy runs/rfg-teacher/policy --method perturbation \\
      --task red-fetch-green --states 10000 --json
"""


def setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; VALUE is read as JSON (numbers, true/false) or else kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy(p)
    p.add_argument("--method", required=True, metavar="NAME|all",
                   help="vanilla | guided_backprop | gradcam | integrated_gradients | smoothgrad | "
                        "perturbation | sarfa (aliases such as vg, ig accepted), a comma-separated list, or "
                        "all (one result per method under \"methods\")")
    add_task(p, required=False)
    add_fields(p, SaliencyBenchmarkConfig, FIELDS, switch=("exact_auc",), defaults=True,
               types={"states": state_count, "seed": seed_value, "moves": nonneg_int, "batch_size": pos_int,
                      "device": device_name})
    p.add_argument("--setting", type=setting, action="append", default=[], metavar="KEY=VALUE",
                   help="method setting overriding the paper's default, e.g. stride=4 (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from digr.cli.saliency import parse_methods
    from digr.evaluation.saliency_benchmark import check_task, evaluate_saliency
    from digr.models import load_policy

    cfg = config_from(SaliencyBenchmarkConfig, args, FIELDS)
    task = check_task(resolve_task(args, args.policy).name)  # before loading weights: only RFG has masks
    parse_methods(args.method)  # an unknown name fails before the weights are read
    policy = load_policy(args.policy, task=task)
    methods = parse_methods(args.method, policy)  # "all" or a comma-separated list, as `digr saliency`
    results = {m: evaluate_saliency(policy, m, task=task, states=cfg.states, seed=cfg.seed, moves=cfg.moves,
                                    batch_size=cfg.batch_size, settings=dict(args.setting), device=cfg.device,
                                    auc="exact" if cfg.exact_auc else "histogram") for m in methods}
    if len(methods) == 1:
        emit({"task": task, "policy": str(args.policy), **results[methods[0]]}, as_json=args.json)
    else:
        emit({"task": task, "policy": str(args.policy), "methods": results}, as_json=args.json)
    return 0
