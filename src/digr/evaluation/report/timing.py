"""Section: time per saliency map (paper Figure 1b)."""

from __future__ import annotations

import platform
from typing import Any

from digr.evaluation.report.base import Report, cmd_block
from digr.evaluation.report.folder import ROLES


def timing_section(rep: Report) -> None:
    import torch

    from digr import figures
    from digr.evaluation.timing import STUDENT_KEY, time_saliency
    from digr.models import load_policy

    cfg, spec, roles = rep.cfg, rep.spec, rep.roles
    rep.md += ["## Time per saliency map (paper Figure 1b)", ""]
    cmd = ["evaluate", "timing", "--policy", rep.paths["teacher"], "--task", spec.name]
    if "digr" in roles:
        cmd += ["--student", rep.paths["digr"]]
    cmd += ["--repeats", str(cfg.repeats), "--max-seconds", str(cfg.timing_max_seconds),
            "--seed", str(cfg.seed)]
    if cfg.device != "cpu":
        cmd += ["--device", cfg.device]
    # The roles' weights only: an extra student is not timed here and must not void the cache.
    key = {"kind": "timing", "weights": {r: d for r, d in rep.digests.items() if r in ROLES},
           "repeats": cfg.repeats,
           "max_seconds": cfg.timing_max_seconds, "device": cfg.device, "threads": torch.get_num_threads(),
           "seed": cfg.seed, "host": platform.node()}

    def compute() -> dict[str, Any]:
        # fresh copies: time_saliency moves its nets to cfg.device, the other sections stay on the CPU
        student = load_policy(roles["digr"], task=spec.name) if "digr" in roles else None
        return time_saliency(load_policy(roles["teacher"], task=spec.name), spec.name, student=student,
                             repeats=cfg.repeats, device=cfg.device, seed=cfg.seed,
                             max_seconds=cfg.timing_max_seconds)

    t = rep.cache("timing", key, compute)
    cmd += ["--threads", str(t["torch_threads"]), "--json"]  # explicit: the CLI's default is 1
    extra = _extra_timing(rep)
    if extra:
        t = {**t, "extra": extra}
    figures.timing_chart(t, rep.figdir / "timing.png")
    ref = t.get(STUDENT_KEY, t["methods"].get("vanilla"))
    ref_name = "DIGR VG" if STUDENT_KEY in t else "teacher VG"
    rep.md += [f"Batch 1, one observation (`reset(seed={cfg.seed})`), {t['machine']}, device "
               f"`{t['device']}`, {t['torch_threads']} torch thread(s); median / p10 / p90 of `repeats` "
               "timed calls after warm-up (timings vary from run to run):", "",
               *cmd_block([rep.command(*cmd)]),
               f"| Map | median ms | p10 ms | p90 ms | repeats | x {ref_name} |",
               "|---|---:|---:|---:|---:|---:|"]
    rows = [(f"{n} (teacher)", v) for n, v in t["methods"].items()]
    if STUDENT_KEY in t:
        rows.append(("**DIGR: vanilla (student)**", t[STUDENT_KEY]))
    rows += [(label, v) for label, v in extra.items()]
    rows.append(("forward pass only (teacher)", t["forward"]))
    for n, v in rows:
        rep.md.append(f"| {n} | {v['median_ms']:.3f} | {v['p10_ms']:.3f} | {v['p90_ms']:.3f} "
                      f"| {v['repeats']} | {v['median_ms'] / ref['median_ms']:.1f} |")
    if extra:
        rep.md += ["", "Extra rows (the `entries` of `pipeline.json` with a method), each also against a plain forward "
                   "pass of its own policy, timed the same way in the same run:", "",
                   "| Map | median ms | own forward ms | map / forward |", "|---|---:|---:|---:|",
                   *[f"| {label} | {v['median_ms']:.3f} | {v['forward']['median_ms']:.3f} "
                     f"| {v['median_ms'] / v['forward']['median_ms']:.2f} |" for label, v in extra.items()]]
    rep.md += ["", "![timing](figures/timing.png)", ""]
    rep.done("timing")
    rep.summary["timing_ms"] = {n: v["median_ms"] for n, v in t["methods"].items()}
    if STUDENT_KEY in t:
        rep.summary["timing_ms"][STUDENT_KEY] = t[STUDENT_KEY]["median_ms"]


def _extra_timing(rep: Report) -> dict[str, Any]:
    """ms per map of each extra row's method on its policy, and of that policy's forward pass."""
    import torch

    from digr.evaluation.table1 import slug
    from digr.evaluation.timing import time_saliency
    from digr.models import load_policy
    from digr.models.checkpoint import file_digest
    from digr.saliency import canonical_name

    cfg = rep.cfg
    out: dict[str, Any] = {}
    for row in rep.pipe.extra:
        key = {"kind": "timing-extra", "weights": file_digest(row.policy), "method": row.method,
               "settings": row.settings, "repeats": cfg.repeats, "max_seconds": cfg.timing_max_seconds,
               "device": cfg.device, "threads": torch.get_num_threads(), "seed": cfg.seed,
               "host": platform.node()}

        def compute(row=row) -> dict[str, Any]:
            name = canonical_name(row.method)
            t = time_saliency(load_policy(row.policy, task=rep.spec.name), rep.spec.name, methods=[name],
                              settings={name: row.settings}, repeats=cfg.repeats, device=cfg.device,
                              seed=cfg.seed, max_seconds=cfg.timing_max_seconds)
            return {**t["methods"][name], "forward": t["forward"]}

        out[row.label] = rep.cache(f"timing-{slug(row.label)}", key, compute)
    return out
