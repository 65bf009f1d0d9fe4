"""Training logs and the performance-kept figures read from run folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from digr.evaluation.report.folder import ROLES


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a trainer's ``metrics.jsonl`` (a line cut short by a kill is skipped)."""
    rows = []
    p = Path(path)
    if not p.exists():
        return rows
    for line in p.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def training_curve(rows: Sequence[Mapping[str, Any]],
                   metric: str = "success_rate") -> tuple[list[int], list[float]]:
    """``(steps, values)`` of ``eval/<metric>`` over a trainer's log rows (evaluated rows only)."""
    key = f"eval/{metric}"
    pts = sorted((int(r["step"]), float(r[key])) for r in rows if r.get(key) is not None)
    return [s for s, _ in pts], [v for _, v in pts]


def metrics_path(run_dir: Path | None) -> Path | None:
    """The trainer's metrics log in ``run_dir`` (``digr.distill.trainer.METRICS_NAME``)."""
    if run_dir is None:
        return None
    try:
        from digr.distill.trainer import METRICS_NAME
    except ImportError:  # the distill package is optional for reading a log
        METRICS_NAME = "metrics.jsonl"
    return run_dir / METRICS_NAME


def performance_kept(teacher: str | Path, digr: str | Path | None = None,
                     distill_only: str | Path | None = None, *, task: str, episodes: int, seed: int = 0,
                     cache: Callable[..., Any] | None = None,
                     extra: Sequence[tuple[str, str | Path]] = ()) -> dict[str, Any]:
    """Figure 9's data: greedy performance of each policy and the students' training curves.

    ``teacher``/``digr``/``distill_only``: checkpoints (a student checkpoint ``RUN/policy`` has its
    log at ``RUN/metrics.jsonl``). Returns ``policies`` (role -> :func:`evaluate_policy` result),
    ``curves`` (role -> ``{"step": [...], "success_rate": [...], "mean_return": [...]}``) and
    ``metric`` (``success_rate``, or ``mean_return`` for tasks without success). ``extra``: more
    students as ``(label, checkpoint)`` pairs, after the roles.
    """
    from digr.envs import get_task
    from digr.evaluation.performance import evaluate_policy
    from digr.models import load_policy
    from digr.models.checkpoint import file_digest, resolve

    spec = get_task(task)
    out: dict[str, Any] = {"metric": "success_rate" if spec.has_success else "mean_return",
                           "policies": {}, "curves": {}, "episodes": episodes, "seed": seed}
    for role, path in (("teacher", teacher), ("digr", digr), ("distill-only", distill_only), *extra):
        if path is None:
            continue
        path = resolve(path)

        def compute(path=path) -> dict[str, Any]:
            return evaluate_policy(load_policy(path, task=spec.name), spec.name, episodes=episodes, seed=seed)

        key = {"kind": "performance", "weights": file_digest(path), "task": spec.name, "episodes": episodes,
               "seed": seed}
        out["policies"][role] = compute() if cache is None else cache(f"performance-{cache_slug(role)}", key,
                                                                        compute)
        if role != "teacher":
            rows = read_metrics(metrics_path(path.parent if path.name == "policy" else path))
            steps, sr = training_curve(rows, "success_rate")
            steps_r, ret = training_curve(rows, "mean_return")
            out["curves"][role] = {"step": steps, "success_rate": sr, "step_return": steps_r,
                                   "mean_return": ret}
    return out


def cache_slug(role: str) -> str:
    """Cache-file part for a role: the role itself (the names used since the first reports), or the
    slug of an extra student's label."""
    if role in ROLES:
        return role
    from digr.evaluation.table1 import slug

    return "student-" + slug(role)
