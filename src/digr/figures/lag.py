"""Figure 6: which map is on screen at each tick of a real-time stream (:mod:`digr.evaluation.lag`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from digr.errors import DigrError, check_int
from digr.evaluation.lag import DEFAULT_COLUMNS, default_start
from digr.figures.common import add_colorbar, new_figure, overlay, save_figure, state_image

if TYPE_CHECKING:
    from digr.evaluation.lag import LagResult


def _show_state(ax, frame: np.ndarray) -> None:
    img = state_image(frame, channels_last=True)
    ax.imshow(img, cmap=None if img.ndim == 3 else "gray", vmin=0, vmax=1, interpolation="nearest")


def lag_figure(result: "LagResult", path: str | Path, *, columns: int = DEFAULT_COLUMNS,
               start: int | None = None) -> Path:
    """Figure 6: state row, then one row per method over ``columns`` consecutive ticks.

    Each method panel is the frame of that tick overlaid with the map *shown* at that tick (the
    map of frame ``shown[k]``), labelled with its lag in frames, or "no map yet". ``start``: the
    first tick (default :func:`default_start`). Written atomically; returns ``path``.
    """
    n = int(result.frames.shape[0])
    columns = min(check_int("columns", columns), n)
    start = default_start(n, columns) if start is None else int(start)
    if not 0 <= start <= n - columns:
        raise DigrError(f"start must be in [0, {n - columns}] for {columns} columns of {n} frames, "
                        f"got {start}")
    ticks = range(start, start + columns)
    nrow = 1 + len(result.rows)
    fig = new_figure(1.7 * columns + 1.6, 1.75 * nrow + 0.4)
    axes = []
    period_ms = 1e3 / result.config.fps
    for c, k in enumerate(ticks):
        ax = fig.add_subplot(nrow, columns, c + 1)
        _show_state(ax, result.frames[k])
        new = k > 0 and result.episode[k] != result.episode[k - 1]
        ax.set_title(f"t = {k} ({k * period_ms:.0f} ms)" + (", new episode" if new else ""), fontsize=8)
        ax.set_axis_off()
        axes.append(ax)
        if c == 0:
            _row_label(ax, "state")
        for r, row in enumerate(result.rows):
            ax = fig.add_subplot(nrow, columns, (r + 1) * columns + c + 1)
            j = int(row.stats.shown[k])
            if j >= 0:
                ax.imshow(overlay(result.frames[k], row.maps[j], scale=1), interpolation="nearest")
                text = f"lag {k - j}" + (f" (map of t={j})" if j != k else "")
            else:
                _show_state(ax, result.frames[k])
                text = f"no map yet (first: lag {row.stats.first_map_lag})"
            ax.text(0.02, 0.02, text, transform=ax.transAxes, fontsize=6.5, color="white", va="bottom",
                    bbox=dict(facecolor="black", alpha=0.6, pad=1.5, linewidth=0))
            ax.set_axis_off()
            axes.append(ax)
            if c == 0:
                ms = float(np.median(row.stats.compute_ms))
                _row_label(ax, f"{row.row.label}\n{ms:.0f} ms/map" if ms >= 100 else
                           f"{row.row.label}\n{ms:.3g} ms/map")
    add_colorbar(fig, axes)
    fig.suptitle(f"{result.task}: map shown at each tick, {result.config.fps:g} fps "
                 f"({period_ms:.0f} ms per frame), one worker", fontsize=9)
    return save_figure(fig, path)


def _row_label(ax, text: str) -> None:
    ax.text(-0.06, 0.5, text, transform=ax.transAxes, rotation=90, ha="right", va="center", fontsize=8)


__all__ = ["lag_figure"]
