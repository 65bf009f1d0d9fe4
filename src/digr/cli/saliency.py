"""``digr saliency``: saliency maps of a policy on its own states, saved as npz plus PNG panels."""

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
    state_count,
)
from digr.cli.fields import add_fields, config_from, field_names
from digr.evaluation.settings import SCORES, ExplainConfig

FIELDS = field_names(ExplainConfig)
"""Every :class:`ExplainConfig` field is an option."""
NAME = "saliency"
HELP = "saliency maps of a policy on states from its own greedy rollouts (npz + PNG panels)"
DESCRIPTION = """\
Roll the policy out greedily in the task's environment (episode k resets with seed+k), keep the
first N states, compute each requested saliency map and write to --out:

  saliency.npz   states (N, H, W, C) uint8, actions (N,), methods (names), and one
                 (N, H, W) float32 array per method, each map in [0, 1] (divided by its max)
  saliency.json  task, policy and its weights' SHA-256, seed, each method's settings and
                 its mean milliseconds per map
  panels/panel_XXX.png   state | one column per method, heatmap over the state, colour bar
                         (the layout of the paper's Figures 3 and 10)

The perturbation family (perturbation, sarfa) uses the task's perturbation radius.
Methods: vanilla, guided_backprop, gradcam, integrated_gradients, smoothgrad, perturbation,
sarfa, or 'all'; several may be given comma-separated."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy(p)
    add_task(p, required=False)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_fields(p, ExplainConfig, FIELDS, defaults=True, choices={"score": SCORES},
               metavars={"method": "NAME|all", "states": "N"},
               types={"states": state_count, "seed": seed_value, "stride": pos_int, "rows_per_panel": pos_int,
                      "device": device_name})
    p.add_argument("--json", action="store_true", help="print one JSON object")


def parse_methods(text: str, policy=None) -> list[str]:
    """``"all"`` or comma-separated names/aliases -> registry names (unique, in the given order).

    ``"all"`` means every method that supports ``policy`` (when given)."""
    from digr.errors import DigrError
    from digr.saliency import METHODS, canonical_name

    if text.strip().lower() == "all":
        return [n for n, cls in METHODS.items() if policy is None or cls.supports(policy)]
    names = [canonical_name(t) for t in text.split(",") if t.strip()]
    if not names:
        raise DigrError("--method is empty; give a method name or 'all'")
    return list(dict.fromkeys(names))


def collect_states(policy, spec, n: int, *, seed: int):
    """First ``n`` states of greedy rollouts: ``(raw (n, H, W, C) uint8, actions (n,) int64)``."""
    import torch

    from digr.evaluation.lag import record_frames
    from digr.models import to_tensor

    device = next(policy.parameters()).device
    raw, _ = record_frames(policy, spec.name, frames=n, seed=seed, device=device)
    with torch.no_grad():  # the actions the rollout took
        actions = policy(to_tensor(raw, spec.obs_shape).to(device)).argmax(-1).cpu().numpy()
    return raw, actions


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import numpy as np
    import torch

    from digr.errors import DigrError
    from digr.figures import save_panels
    from digr.io import atomic_write, atomic_write_json
    from digr.models import load_policy, to_tensor
    from digr.models.checkpoint import file_digest, resolve
    from digr.saliency import get_method

    cfg = config_from(ExplainConfig, args, FIELDS)
    spec = resolve_task(args, args.policy)
    methods = parse_methods(cfg.method)  # names checked before the checkpoint is read
    try:
        device = torch.device(cfg.device)
    except RuntimeError as exc:
        raise DigrError(f"bad --device {cfg.device!r}: {exc}") from None
    policy = load_policy(args.policy, task=spec.name).to(device)
    methods = parse_methods(cfg.method, policy)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigrError(f"cannot create --out {out}: {exc}") from None

    raw, actions = collect_states(policy, spec, cfg.states, seed=cfg.seed)
    obs = to_tensor(raw, spec.obs_shape).to(device)
    maps: dict[str, np.ndarray] = {}
    info: dict[str, dict] = {}
    for name in methods:
        settings = {}
        if name in ("perturbation", "sarfa"):
            settings = {"radius": spec.perturbation_radius, "stride": cfg.stride}
            if name == "perturbation":
                settings["score"] = cfg.score
        method = get_method(name, policy, **settings)
        t0 = time.perf_counter()
        m = method.attribute(obs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        ms = (time.perf_counter() - t0) * 1000 / len(obs)
        maps[name] = m.detach().float().cpu().numpy()
        info[name] = {"settings": method.settings, "ms_per_map": round(ms, 3)}

    arrays = {"states": raw, "actions": actions, "methods": np.asarray(methods, dtype=np.str_)}
    arrays.update(maps)
    npz = out / "saliency.npz"

    def write_npz(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # an open file: np.savez* would add ".npz" to the temp name
            np.savez_compressed(f, **arrays)

    atomic_write(npz, write_npz)
    panels = save_panels(out / "panels", to_tensor(raw, spec.obs_shape).numpy(), maps,
                         rows_per_panel=cfg.rows_per_panel,
                         row_labels=[f"state {i}, {spec.action_name(a)}" for i, a in enumerate(actions.tolist())],
                         title=f"{spec.name}: {resolve(args.policy)}")
    meta = {
        "task": spec.name,
        "policy": str(args.policy),
        "policy_sha256": file_digest(resolve(args.policy)),
        "seed": cfg.seed,
        "states": len(raw),
        "methods": info,
        "npz": npz.name,
        "panels": [str(p.relative_to(out)) for p in panels],
    }
    atomic_write_json(out / "saliency.json", meta)
    summary = {"task": spec.name, "states": len(raw), "out": str(out), "npz": str(npz),
               "panels": len(panels)}
    summary.update({f"ms_per_map/{k}": v["ms_per_map"] for k, v in info.items()})
    emit(summary, as_json=args.json)
    return 0
