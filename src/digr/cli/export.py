"""``digr export``: a policy as ONNX / TorchScript (logits + saliency map) or an SB3 zip."""

from __future__ import annotations

import argparse

from digr.cli.fields import add_fields, config_from, field_names
from digr.evaluation.settings import ExportConfig

FIELDS = field_names(ExportConfig)
"""Every :class:`ExportConfig` field is an option."""
NAME = "export"
HELP = "write a policy as ONNX or TorchScript (returning logits and its saliency map) or an SB3 zip"
DESCRIPTION = """Write a digr policy for deployment.

onnx, torchscript: one call returns the action logits (B, A) and the vanilla-gradient saliency map
(B, H, W) of eq. 2, max-normalised, for obs (B, C, H, W) float32 in [0, 1]: the policy explains
itself without digr installed (ONNX needs: pip install 'digr[export]').
sb3: a Stable-Baselines3 PPO zip with digr's features extractor (loading it needs digr) that acts
as the digr policy does."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from digr.deploy.export import EXPORT_FORMATS

    p.add_argument("policy", metavar="POLICY", help="digr checkpoint folder or a run folder holding policy/")
    add_fields(p, ExportConfig, FIELDS, choices={"format": EXPORT_FORMATS}, required=("format",))
    p.add_argument("--out", required=True, metavar="PATH", help="file to write (replaced atomically)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from digr.cli.common import emit
    from digr.deploy.export import export_policy
    from digr.models import load_policy

    cfg = config_from(ExportConfig, args, FIELDS)
    policy = load_policy(args.policy)
    path = export_policy(policy, args.out, fmt=cfg.format)
    emit({"policy": str(args.policy), "format": cfg.format, "out": str(path),
          "obs_shape": list(policy.config.obs_shape), "n_actions": policy.config.n_actions}, as_json=args.json)
    return 0
