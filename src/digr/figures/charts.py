"""Charts of the report: timing bars (Fig. 1b), robustness curves (Fig. 8), performance curve (Fig. 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from digr.figures.common import (
    DIGR_COLOR,
    EXTRA_COLOR,
    GRADIENT_COLOR,
    PERTURBATION_COLOR,
    PERTURBATION_METHODS,
    POLICY_STYLES,
    REFERENCE_COLOR,
    new_figure,
    policy_styles,
    save_figure,
)


def timing_chart(timing: Mapping[str, Any], path: str | Path) -> Path:
    """Horizontal bars of median ms per map (log scale) with p10-p90 whiskers.

    ``timing`` is :func:`digr.evaluation.timing.time_saliency`'s result. Gradient methods are red,
    perturbation methods green, DIGR's vanilla gradient on the student purple (as Figure 1b), the
    plain forward pass grey; ``timing["extra"]`` (label -> timing, optional) adds blue bars.
    """
    from digr.evaluation.timing import STUDENT_KEY

    rows: list[tuple[str, Mapping[str, Any], str]] = []
    for name, t in timing["methods"].items():
        color = PERTURBATION_COLOR if name in PERTURBATION_METHODS else GRADIENT_COLOR
        rows.append((f"{name} (teacher)", t, color))
    if STUDENT_KEY in timing:
        rows.append(("DIGR: vanilla (student)", timing[STUDENT_KEY], DIGR_COLOR))
    for label, t in timing.get("extra", {}).items():
        rows.append((label, t, EXTRA_COLOR))
    rows.append(("forward pass (reference)", timing["forward"], REFERENCE_COLOR))
    fig = new_figure(7.0, 0.45 * len(rows) + 1.2)
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(rows))[::-1]
    med = np.array([r[1]["median_ms"] for r in rows])
    lo = np.array([r[1]["p10_ms"] for r in rows])
    hi = np.array([r[1]["p90_ms"] for r in rows])
    ax.barh(y, med, color=[r[2] for r in rows], xerr=[med - lo, hi - med], capsize=3)
    for yi, m, h, (label, _, color) in zip(y, med, hi, rows):
        ax.text(max(m, h) * 1.15, yi, f"{m:.3g} ms", va="center", fontsize=8,
                fontweight="bold" if color == DIGR_COLOR else "normal")
    ax.set_yticks(y, [r[0] for r in rows])
    for tick, r in zip(ax.get_yticklabels(), rows):
        if r[2] == DIGR_COLOR:
            tick.set_color(DIGR_COLOR)
            tick.set_fontweight("bold")
    from matplotlib.patches import Patch

    kinds = [("gradient method", GRADIENT_COLOR), ("perturbation method", PERTURBATION_COLOR),
             ("DIGR student", DIGR_COLOR), ("other policy", EXTRA_COLOR), ("forward pass", REFERENCE_COLOR)]
    shown = {r[2] for r in rows}
    ax.legend(handles=[Patch(color=c, label=k) for k, c in kinds if c in shown], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    ax.set_xscale("log")
    ax.set_xlim(max(med.min() / 3, 1e-3), hi.max() * 10)
    ax.set_xlabel("ms per saliency map, batch 1 (log scale; whiskers p10-p90)")
    ax.set_title(f"{timing['task']}: {timing.get('machine', timing['device'])}", fontsize=9)
    return save_figure(fig, path)


def robustness_chart(curves: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path, *,
                     metric: str = "success_rate", chance: float | None = None) -> Path:
    """One panel per attack: ``metric`` vs eps (in grey levels, eps * 255) for each policy role.

    ``curves``: role (``teacher``, ``distill-only``, ``digr``) -> rows of
    :func:`digr.evaluation.robustness.robustness_sweep`. Shaded: one standard error of the
    success rate (binomial) or of the mean return. All panels share one y axis (a success rate
    from 0 to 1); ``chance``, the metric under uniformly random actions, is a grey dashed line.
    The legend sits below the panels, where it covers no curve.
    """
    attacks = list(dict.fromkeys(r["attack"] for rows in curves.values() for r in rows))
    styles = policy_styles(curves)
    fig = new_figure(3.2 * len(attacks), 3.4)
    first = None
    for i, attack in enumerate(attacks):
        ax = fig.add_subplot(1, len(attacks), i + 1, sharey=first)
        first = first or ax
        for role, rows in curves.items():
            pts = sorted((r["eps_255"], r[metric], _stderr(r, metric)) for r in rows if r["attack"] == attack)
            if not pts:
                continue
            x, yv, se = (np.array(v, dtype=float) for v in zip(*pts))
            style = styles[role]
            ax.plot(x, yv, marker="o", ms=3, **style)
            ax.fill_between(x, yv - se, yv + se, color=style["color"], alpha=0.15, linewidth=0)
        if chance is not None:
            ax.axhline(chance, color=REFERENCE_COLOR, ls="--", lw=1, label="chance (random actions)")
        ax.set_title(attack.upper())
        ax.set_xlabel("eps (grey levels of 255)")
        if i == 0:
            ax.set_ylabel(metric.replace("_", " "))
        else:  # the shared axis is labelled once, on the left
            ax.tick_params(labelleft=False)
        ax.grid(alpha=0.3)
    if first is not None:
        _zero_based(first, metric)
        handles, labels = first.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)
        fig.subplots_adjust(bottom=0.3, wspace=0.08)
    return save_figure(fig, path)


def _zero_based(ax, metric: str) -> None:
    """A success rate's axis is 0..1; any other metric's starts at 0 when all values are >= 0."""
    if metric == "success_rate":
        ax.set_ylim(0.0, 1.05)
    else:
        lo, hi = ax.get_ylim()
        if lo > 0 or (lo < 0 and all(float(v) >= 0 for line in ax.get_lines() for v in line.get_ydata())):
            ax.set_ylim(0.0, hi)


def _stderr(row: Mapping[str, Any], metric: str) -> float:
    n = max(int(row.get("episodes", 1)), 1)
    if metric == "success_rate":
        p = float(row[metric])
        return float(np.sqrt(p * (1 - p) / n))
    return float(row.get("std_return", 0.0)) / np.sqrt(n)


def performance_chart(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                      teacher_value: float | None, path: str | Path, *, metric: str = "success_rate",
                      chance: float | None = None) -> Path:
    """Figure 9: ``metric`` of the students over training steps, the teacher as a horizontal line
    and ``chance`` (uniformly random actions) as a grey dashed one; the legend below the axes.

    ``curves``: role -> ``(steps, values)`` from the trainers' logs.
    """
    fig = new_figure(5.5, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    styles = policy_styles(curves)
    for role, (steps, values) in curves.items():
        if len(steps):
            style = styles[role]
            ax.plot(steps, values, marker="o", ms=3, lw=2 if role == "digr" else 1,
                    ls="-" if role == "digr" else "--", **style)
    if teacher_value is not None:
        ax.axhline(teacher_value, color=POLICY_STYLES["teacher"]["color"], ls=":", lw=2,
                   label=POLICY_STYLES["teacher"]["label"])
    if chance is not None:
        ax.axhline(chance, color=REFERENCE_COLOR, ls="--", lw=1, label="chance (random actions)")
    ax.set_xlabel("student update steps")
    ax.set_ylabel(metric.replace("_", " "))
    _zero_based(ax, metric)
    ax.grid(alpha=0.3)
    # below the axes, where it covers no curve (inside, it hid the students' late points)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    return save_figure(fig, path)
