"""Several seeds of one DIGR recipe: each seed a unit of :func:`digr.parallel.run_units`.

``OUT/seed-S/`` is seed ``S``'s ordinary run folder (:func:`digr.distill.trainer.train_student`),
so each seed resumes on its own and a finished seed is not redone; ``OUT/seeds.json`` holds every
seed's final statistics and, over the seeds, their mean with a 95% t-interval. The teacher travels
by content (config + weights, the same bytes: its sha256 is unchanged), so a Ray worker on another
node needs no path of the head node; the dataset is read by path (a filesystem every node sees).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from digr.distill.config import DistillConfig
from digr.errors import DigrError, check_int
from digr.io import atomic_write_json, claim_folder
from digr.parallel import ParallelConfig, run_units

SUMMARY_NAME = "seeds.json"


def seed_folder(out: str | Path, seed: int) -> Path:
    """Run folder of ``seed`` under ``out``."""
    return Path(out) / f"seed-{seed}"


def _train_one(job: dict[str, Any], teacher: Any) -> dict[str, Any]:
    from digr.distill.trainer import train_student
    from digr.models.checkpoint import policy_from_blob

    if isinstance(teacher, dict):
        teacher = policy_from_blob(teacher)
    cfg = job["config"]
    stats = train_student(teacher, job["dataset"], job["task"], job["out"], cfg, init=job["init"])
    return {"seed": job["seed"], **stats}


T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       15: 2.131, 20: 2.086, 30: 2.042}
"""Two-sided 95% Student-t quantiles by degrees of freedom (a table: no SciPy dependency for
this); between entries the next smaller one's (a slightly wider interval), 1.96 past 30."""


def interval95(values: Sequence[float]) -> float:
    """Half-width of the 95% t-interval of the mean of ``values`` (0 for one value)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return 0.0
    df = len(x) - 1
    t = 1.96 if df > 30 else T95[max(k for k in T95 if k <= df)]
    return float(t * x.std(ddof=1) / math.sqrt(len(x)))


def summarize_seeds(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "ci95", "n"}}`` over the seeds' final statistics (numbers only)."""
    keys = sorted({k for r in rows for k, v in r.items()
                   if k != "seed" and isinstance(v, (int, float)) and not isinstance(v, bool)})
    out = {}
    for k in keys:
        vals = [float(r[k]) for r in rows if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
        if vals:
            out[k] = {"mean": float(np.mean(vals)), "ci95": interval95(vals), "n": len(vals)}
    return out


def train_seeds(teacher: str | Path, dataset: str | Path | None, task: str, out: str | Path,
                config: DistillConfig, seeds: Sequence[int], *, init: str | Path | None = None,
                parallel: ParallelConfig | None = None) -> dict[str, Any]:
    """Train ``config`` once per seed into ``out/seed-S`` (resumable) and write ``out/seeds.json``.

    Returns ``{"seeds": [per-seed final statistics], "summary": {metric: {mean, ci95, n}}}``."""
    from digr.models import load_policy
    from digr.models.checkpoint import policy_blob

    seeds = [check_int("seed", s, minimum=0) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise DigrError(f"seeds must be distinct and at least one, got {list(seeds)}")
    parallel = (parallel or ParallelConfig()).validate()
    out = Path(out)
    claim_folder(out, "multi-seed run")
    out.mkdir(parents=True, exist_ok=True)
    policy = load_policy(teacher, task=task)
    shared = policy_blob(policy) if parallel.uses_ray else teacher
    jobs = [{"seed": s, "task": task, "out": str(seed_folder(out, s)),
             "dataset": None if dataset is None else str(Path(dataset).resolve()),
             "init": None if init is None else str(Path(init).resolve()),
             "config": replace(config, seed=s)} for s in seeds]
    rows = sorted(run_units(_train_one, jobs, shared=shared, parallel=parallel), key=lambda r: r["seed"])
    result = {"seeds": rows, "summary": summarize_seeds(rows)}
    atomic_write_json(out / SUMMARY_NAME, result)
    return result


__all__ = ["SUMMARY_NAME", "T95", "interval95", "seed_folder", "summarize_seeds", "train_seeds"]
