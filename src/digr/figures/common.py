"""What every figure shares: colours, the Agg figure and its atomic save, state images,
saliency overlays, the colour bar, GIFs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from digr.errors import DigrError
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
"""Line colours of further students (a report's ``entries`` marked as students), in order."""


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


def new_figure(width: float, height: float):
    """A matplotlib ``Figure`` on its own Agg canvas (no pyplot, no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` atomically, in the format of its suffix (PNG by default)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".") or "png",
                                                      bbox_inches="tight"))


def state_image(state: np.ndarray, *, channels_last: bool = False) -> np.ndarray:
    """A state as ``imshow`` draws it: ``(H, W, 3)`` RGB or ``(H, W)`` grey, float in ``[0, 1]``.

    ``state``: ``(C, H, W)`` float in ``[0, 1]`` (the policy's layout), or with ``channels_last``
    ``(H, W, C)`` / ``(H, W)`` uint8 (the env's). 3 channels, or a multiple of 3 (stacked RGB
    frames): the last RGB frame; otherwise the last channel (the newest stacked frame) as grey.
    """
    state = np.asarray(state)
    if channels_last:
        state = (state[..., None] if state.ndim == 2 else state).transpose(2, 0, 1).astype(np.float32) / 255.0
    state = state.astype(np.float32, copy=False)
    if state.ndim != 3:
        raise DigrError(f"a state must be (C, H, W), got shape {state.shape}")
    c = state.shape[0]
    if c % 3 == 0:
        return np.clip(state[c - 3:].transpose(1, 2, 0), 0.0, 1.0)
    return np.clip(state[-1], 0.0, 1.0)


def rgb_image(state: np.ndarray, *, channels_last: bool = False) -> np.ndarray:
    """:func:`state_image` as ``(H, W, 3)`` float RGB (grey repeated on three channels)."""
    img = state_image(state, channels_last=channels_last)
    return img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=-1)


def add_colorbar(fig, axes=None, *, cax=None, cmap: str = "inferno", label: str = "saliency") -> None:
    """The ``[0, 1]`` colour bar of the maps, beside ``axes`` or in ``cax``."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    sm = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=colormaps[cmap])
    if cax is not None:
        fig.colorbar(sm, cax=cax, label=label)
    else:
        fig.colorbar(sm, ax=axes, fraction=0.025, pad=0.02, label=label)


def overlay(frame: np.ndarray, saliency: np.ndarray, *, alpha: float = 0.6, scale: int = 4) -> np.ndarray:
    """``(H, W, C) uint8`` frame (the env's layout) blended with the ``(H, W)`` map (inferno colours, weight
    ``alpha * map`` per pixel, so unsalient pixels show the plain frame); upscaled ``scale`` x."""
    from matplotlib import colormaps

    sal = np.clip(np.asarray(saliency, dtype=np.float32), 0.0, 1.0)
    heat = colormaps["inferno"](sal)[..., :3] * 255.0
    w = (alpha * sal)[..., None]
    out = (1.0 - w) * rgb_image(frame, channels_last=True) * 255.0 + w * heat
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
