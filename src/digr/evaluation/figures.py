"""Figures of the report: timing bars (Fig. 1b), robustness curves (Fig. 8), performance curve
(Fig. 9), saliency panels (Fig. 3) and the saliency-overlay episode GIF.

Plots use matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), so
they work headless and never open a window. Every file is written to a temporary name and
renamed into place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from digr.io import atomic_write

GRADIENT_COLOR = "#d62728"
"""Red: gradient-based methods (paper Figure 1b)."""
PERTURBATION_COLOR = "#2ca02c"
"""Green: perturbation-based methods."""
DIGR_COLOR = "#9467bd"
"""Purple: DIGR."""
REFERENCE_COLOR = "#7f7f7f"
EXTRA_COLOR = "#1f77b4"
"""Extra rows of a report (e.g. FLS)."""
PERTURBATION_METHODS = ("perturbation", "sarfa")

POLICY_STYLES = {
    "teacher": dict(color="#1f77b4", label="teacher (PPO)"),
    "distill-only": dict(color="#ff7f0e", label="distill-only"),
    "digr": dict(color=DIGR_COLOR, label="DIGR"),
}
"""Line colour and legend label of each policy role."""
EXTRA_POLICY_COLORS = ("#d62728", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
"""Line colours of further students (a report's ``extra_students``), in order."""


def policy_styles(roles) -> dict[str, dict[str, Any]]:
    """Colour and label per role: :data:`POLICY_STYLES`, then one of :data:`EXTRA_POLICY_COLORS`
    per other name (the name is its label), so a line and its shaded band share a colour."""
    out, extra = {}, 0
    for role in roles:
        if role in POLICY_STYLES:
            out[role] = POLICY_STYLES[role]
        else:
            out[role] = dict(color=EXTRA_POLICY_COLORS[extra % len(EXTRA_POLICY_COLORS)], label=role)
            extra += 1
    return out


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".") or "png",
                                                      bbox_inches="tight"))


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
    fig = _figure(7.0, 0.45 * len(rows) + 1.2)
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
    ax.set_xscale("log")
    ax.set_xlim(max(med.min() / 3, 1e-3), hi.max() * 10)
    ax.set_xlabel("ms per saliency map, batch 1 (log scale; whiskers p10-p90)")
    ax.set_title(f"{timing['task']}: {timing.get('machine', timing['device'])}", fontsize=9)
    return _save(fig, path)


def robustness_chart(curves: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path, *,
                     metric: str = "success_rate") -> Path:
    """One panel per attack: ``metric`` vs eps (in grey levels, eps * 255) for each policy role.

    ``curves``: role (``teacher``, ``distill-only``, ``digr``) -> rows of
    :func:`digr.evaluation.robustness.robustness_sweep`. Shaded: one standard error of the
    success rate (binomial) or of the mean return.
    """
    attacks = list(dict.fromkeys(r["attack"] for rows in curves.values() for r in rows))
    styles = policy_styles(curves)
    fig = _figure(3.2 * len(attacks), 3.0)
    for i, attack in enumerate(attacks):
        ax = fig.add_subplot(1, len(attacks), i + 1)
        for role, rows in curves.items():
            pts = sorted((r["eps_255"], r[metric], _stderr(r, metric)) for r in rows if r["attack"] == attack)
            if not pts:
                continue
            x, yv, se = (np.array(v, dtype=float) for v in zip(*pts))
            style = styles[role]
            ax.plot(x, yv, marker="o", ms=3, **style)
            ax.fill_between(x, yv - se, yv + se, color=style["color"], alpha=0.15, linewidth=0)
        ax.set_title(attack.upper())
        ax.set_xlabel("eps (grey levels of 255)")
        if i == 0:
            ax.set_ylabel(metric.replace("_", " "))
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def _stderr(row: Mapping[str, Any], metric: str) -> float:
    n = max(int(row.get("episodes", 1)), 1)
    if metric == "success_rate":
        p = float(row[metric])
        return float(np.sqrt(p * (1 - p) / n))
    return float(row.get("std_return", 0.0)) / np.sqrt(n)


def performance_chart(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                      teacher_value: float | None, path: str | Path, *, metric: str = "success_rate") -> Path:
    """Figure 9: ``metric`` of the students over training steps, the teacher as a horizontal line.

    ``curves``: role -> ``(steps, values)`` from the trainers' logs.
    """
    fig = _figure(5.5, 3.2)
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
    ax.set_xlabel("student update steps")
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def state_image(obs: np.ndarray) -> np.ndarray:
    """``(H, W, C) uint8`` observation -> ``(H, W, 3) uint8`` RGB (grey = last stacked frame)."""
    obs = np.asarray(obs)
    if obs.ndim == 3 and obs.shape[-1] == 3:
        return obs.astype(np.uint8)
    frame = obs[..., -1] if obs.ndim == 3 else obs
    return np.repeat(frame[..., None], 3, axis=-1).astype(np.uint8)


def saliency_panels(states: np.ndarray, columns: Sequence[tuple[str, np.ndarray]], path: str | Path) -> Path:
    """Figure 3: one row per state, columns ``state | map 1 | map 2 | ...``.

    ``states: (N, H, W, C) uint8``; ``columns``: (title, maps ``(N, H, W)`` in ``[0, 1]``).
    """
    n = len(states)
    ncol = 1 + len(columns)
    fig = _figure(1.9 * ncol, 1.9 * n + 0.3)
    for i in range(n):
        ax = fig.add_subplot(n, ncol, i * ncol + 1)
        ax.imshow(state_image(states[i]), interpolation="nearest")
        ax.set_axis_off()
        if i == 0:
            ax.set_title("state", fontsize=9)
        for j, (title, maps) in enumerate(columns):
            ax = fig.add_subplot(n, ncol, i * ncol + j + 2)
            ax.imshow(maps[i], cmap="inferno", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_axis_off()
            if i == 0:
                ax.set_title(title, fontsize=9)
    return _save(fig, path)


def overlay(frame: np.ndarray, saliency: np.ndarray, *, alpha: float = 0.6, scale: int = 4) -> np.ndarray:
    """``(H, W, 3) uint8`` frame blended with the ``(H, W)`` map (inferno colours, weight
    ``alpha * map`` per pixel, so unsalient pixels show the plain frame); upscaled ``scale`` x."""
    from matplotlib import colormaps

    sal = np.clip(np.asarray(saliency, dtype=np.float32), 0.0, 1.0)
    heat = colormaps["inferno"](sal)[..., :3] * 255.0
    w = (alpha * sal)[..., None]
    out = (1.0 - w) * state_image(frame).astype(np.float32) + w * heat
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return out.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else out


def write_gif(frames: Sequence[np.ndarray], path: str | Path, *, fps: float = 5.0) -> Path:
    """Animated GIF of ``(H, W, 3) uint8`` frames, looping forever."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stack = np.stack(list(frames))
    # pillow's GIF writer takes the frame duration in milliseconds
    return atomic_write(path, lambda tmp: iio.imwrite(tmp, stack, extension=".gif",
                                                      duration=int(round(1000.0 / fps)), loop=0))


__all__ = ["timing_chart", "robustness_chart", "performance_chart", "saliency_panels", "overlay",
           "write_gif", "state_image", "POLICY_STYLES", "policy_styles"]
