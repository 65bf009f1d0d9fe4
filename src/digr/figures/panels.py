"""PNG panels of saliency maps, laid out like the paper's Figures 3 and 10.

One row per state: the state, then one column per method showing the map as a heatmap over a
dimmed grey copy of the state, with one colour bar for the whole figure (every map is in
``[0, 1]``). The report's Figure 3 and ``digr saliency --panels`` both draw with :func:`render_panel`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from digr.errors import DigrError
from digr.figures.common import add_colorbar, new_figure, save_figure, state_image

TITLES = {
    "vanilla": "Vanilla Gradient",
    "guided_backprop": "Guided Backprop",
    "gradcam": "Grad-CAM",
    "integrated_gradients": "Integrated Gradient",
    "smoothgrad": "Smooth Gradient",
    "perturbation": "GB Perturbation",
    "sarfa": "SARFA",
}
"""Column titles as the paper names the methods."""


def _grey(img: np.ndarray) -> np.ndarray:
    return img.mean(-1) if img.ndim == 3 else img




def top1_share(m: np.ndarray) -> float:
    """Share of a map's (absolute) mass in its 1% largest pixels, as the agreement table's top1
    (:func:`digr.evaluation.agreement.top1_shares`)."""
    import torch

    from digr.evaluation.agreement import top1_shares

    return float(top1_shares(torch.from_numpy(np.abs(np.asarray(m, dtype=np.float64)))[None])[0])


def _mark_spike(ax, m: np.ndarray) -> None:
    from matplotlib.patches import Circle

    """A map flagged as a spike (:data:`digr.evaluation.agreement.SPIKE_TOP1`, as in the report's
    tables) gets a ring around its peak and its top-1% share written on it: one bright pixel is
    invisible at panel size."""
    from digr.evaluation.agreement import SPIKE_TOP1

    share = top1_share(m)
    if share <= SPIKE_TOP1:
        return
    y, x = np.unravel_index(int(np.argmax(np.abs(m))), m.shape)
    ax.add_patch(Circle((x, y), radius=max(m.shape) / 10, fill=False, color="white", lw=1.2))
    ax.text(0.03, 0.03, f"spike: top 1% = {share:.0%}", transform=ax.transAxes, fontsize=6, color="white",
            va="bottom", ha="left")


def render_panel(states: np.ndarray, maps: Mapping[str, np.ndarray], *,
                 row_labels: Sequence[str] | None = None,
                 title: str | None = None, cmap: str = "jet", alpha: float = 0.55, cell_inches: float = 1.9):
    """A matplotlib ``Figure``: rows = states ``(N, C, H, W)``, columns = state + each ``(N, H, W)`` map."""
    from matplotlib import colors

    states = np.asarray(states)
    n = states.shape[0]
    for name, m in maps.items():
        if np.asarray(m).shape != (n, *states.shape[2:]):
            raise DigrError(f"maps {name!r} have shape {np.asarray(m).shape}, "
                            f"expected {(n, *states.shape[2:])}")
    cols = 1 + len(maps)
    fig = new_figure(cell_inches * cols + 0.9, cell_inches * n + (0.5 if title else 0.25))
    grid = fig.add_gridspec(n, cols, wspace=0.04, hspace=0.06, left=0.02, right=0.9,
                            top=0.92 if title else 0.95,
                            bottom=0.02)
    norm = colors.Normalize(0.0, 1.0)
    for r in range(n):
        img = state_image(states[r])
        for c in range(cols):
            ax = fig.add_subplot(grid[r, c])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.imshow(img, cmap=None if img.ndim == 3 else "gray", vmin=0, vmax=1,
                          interpolation="nearest")
                if r == 0:
                    ax.set_title("State", fontsize=9)
                if row_labels is not None:
                    ax.set_ylabel(row_labels[r], fontsize=8)
                continue
            name = list(maps)[c - 1]
            ax.imshow(0.6 * _grey(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            m = np.asarray(maps[name][r], dtype=np.float32)
            ax.imshow(m, cmap=cmap, norm=norm, alpha=alpha, interpolation="nearest")
            _mark_spike(ax, m)
            if r == 0:
                ax.set_title(TITLES.get(name, name), fontsize=9)
    cax = fig.add_axes([0.915, 0.1, 0.018, 0.8])
    add_colorbar(fig, cax=cax, cmap=cmap)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def save_panel(path: str | Path, states: np.ndarray, maps: Mapping[str, np.ndarray], *, dpi: int = 100,
               **kwargs) -> Path:
    """Render :func:`render_panel` to the PNG ``path`` atomically (temp file, then ``os.replace``)."""
    fig = render_panel(states, maps, **kwargs)
    fig.set_dpi(dpi)
    return save_figure(fig, path)


def save_panels(out_dir: str | Path, states: np.ndarray, maps: Mapping[str, np.ndarray], *,
                rows_per_panel: int = 4, row_labels: Sequence[str] | None = None, title: str | None = None,
                prefix: str = "panel") -> list[Path]:
    """Split ``N`` states into PNGs of ``rows_per_panel`` rows: ``out_dir/panel_000.png``, ..."""
    if rows_per_panel <= 0:
        raise DigrError(f"rows_per_panel must be > 0, got {rows_per_panel}")
    paths = []
    n = len(states)
    for k, start in enumerate(range(0, n, rows_per_panel)):
        sl = slice(start, min(start + rows_per_panel, n))
        paths.append(save_panel(Path(out_dir) / f"{prefix}_{k:03d}.png", states[sl],
                                {name: m[sl] for name, m in maps.items()},
                                row_labels=None if row_labels is None else list(row_labels[sl]), title=title))
    return paths


__all__ = ["render_panel", "save_panel", "save_panels", "top1_share", "TITLES"]
