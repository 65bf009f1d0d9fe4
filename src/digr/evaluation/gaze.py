"""Human-gaze metrics for saliency maps, as the FLS paper reports them on Atari-HEAD (one trial is
read by :mod:`digr.evaluation.atari_head`).

Metrics (one map at a time; all arrays ``(H, W)`` of the same shape; ``saliency`` any finite
non-negative map, e.g. a row of ``method.attribute(obs)``; ``fixations`` a count map, the number
of gaze samples that fell in each pixel, see :func:`fixation_map`):

* :func:`nss` -- Normalised Scanpath Saliency: the saliency map standardised to mean 0, std 1,
  averaged over the fixations (weighted by their counts). 0 is chance; higher is better.
* :func:`kl_to_fixation_map` -- ``KL(P || Q)`` with ``P`` the fixations blurred by a Gaussian of
  ``sigma`` pixels and ``Q`` the saliency map, both normalised to sum 1. 0 is a perfect match;
  lower is better. The FLS code blurs with ``sigma = 5`` px on the raw 210x160 frames (2 px on
  84x84 network inputs).
* :func:`shuffled_auc` -- the area under the ROC curve separating saliency at this frame's
  fixations (positives) from saliency at fixations of *other* frames (negatives), so a
  centre bias shared by all frames earns nothing. 0.5 is chance, 1 perfect.

A metric that is undefined for one frame (no fixations; a constant map for NSS; a map with no
mass for KL) is ``nan``, so averages over frames use ``np.nanmean``, as the FLS code skips them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from digr.errors import DigrError, check_int

ATARI_FRAME_SHAPE = (210, 160)
"""``(rows, columns)`` of a raw Atari frame, the coordinate frame of Atari-HEAD's gaze samples."""


# ------------------------------------------------------------------------------------------ inputs
def _map(x: Any, what: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DigrError(f"{what} must be a numeric (H, W) array ({exc})") from None
    if a.ndim != 2 or a.size == 0:
        raise DigrError(f"{what} must be a non-empty (H, W) array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise DigrError(f"{what} contains NaN or infinite values")
    return a


def _counts(x: Any, what: str, shape: tuple[int, ...]) -> np.ndarray:
    a = _map(x, what)
    if a.shape != shape:
        raise DigrError(f"{what} has shape {a.shape}, the saliency map {shape}")
    if (a < 0).any():
        raise DigrError(f"{what} must be non-negative counts")
    return a


def fixation_map(gaze: Any, shape: tuple[int, int], *,
                 frame_shape: tuple[int, int] = ATARI_FRAME_SHAPE) -> np.ndarray:
    """Count map ``(H, W)`` int64 of gaze samples ``(K, 2)`` given as ``(x, y)`` frame pixels.

    The frame of ``frame_shape = (rows, cols)`` is scaled onto ``shape = (H, W)``: a sample at
    ``(x, y)`` lands in pixel ``(floor(y * H / rows), floor(x * W / cols))`` (the pixel containing
    the point). Samples off the frame (the eye tracker reports those) are dropped.
    """
    try:
        g = np.asarray(gaze, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DigrError(f"gaze must be (K, 2) numbers ({exc})") from None
    if g.size == 0:
        g = np.zeros((0, 2))
    if g.ndim != 2 or g.shape[1] != 2:
        raise DigrError(f"gaze must have shape (K, 2) of (x, y) pairs, got {g.shape}")
    H, W = (int(v) for v in shape)
    rows, cols = (float(v) for v in frame_shape)
    if H < 1 or W < 1 or rows <= 0 or cols <= 0:
        raise DigrError(f"shapes must be positive, got shape {shape} and frame_shape {frame_shape}")
    ok = np.isfinite(g).all(1) & (g[:, 0] >= 0) & (g[:, 0] < cols) & (g[:, 1] >= 0) & (g[:, 1] < rows)
    r = np.minimum(np.floor(g[ok, 1] * H / rows).astype(np.int64), H - 1)
    c = np.minimum(np.floor(g[ok, 0] * W / cols).astype(np.int64), W - 1)
    out = np.zeros((H, W), dtype=np.int64)
    np.add.at(out, (r, c), 1)
    return out


# ----------------------------------------------------------------------------------------- metrics
def nss(saliency: Any, fixations: Any) -> float:
    """Normalised Scanpath Saliency of ``saliency: (H, W)`` at ``fixations: (H, W)`` counts.

    ``sum(f * (s - mean(s)) / std(s)) / sum(f)`` (population std). ``nan`` for a constant map or
    no fixations.
    """
    s = _map(saliency, "saliency")
    f = _counts(fixations, "fixations", s.shape)
    std, n = float(s.std()), float(f.sum())
    if n == 0 or std <= 1e-12 * max(1.0, float(np.abs(s).max())):
        return float("nan")
    return float((f * (s - s.mean())).sum() / (std * n))


def gaussian_blur(x: Any, *, sigma: float) -> np.ndarray:
    """``x: (H, W)`` blurred by a normalised Gaussian of ``sigma`` pixels, float64.

    Separable, truncated at 4 sigma, borders reflected without repeating the edge pixel (as
    OpenCV's ``GaussianBlur``, which the FLS code uses, does by default).
    """
    a = _map(x, "map")
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise DigrError(f"sigma must be a positive number of pixels, got {sigma!r}")
    radius = max(1, int(4 * sigma + 0.5))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    for axis in (0, 1):
        if a.shape[axis] == 1:
            continue  # a single row/column reflects onto itself: the kernel sums to 1
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(a, pad, mode="reflect"), k.size, axis=axis)
        a = windows @ k  # (H, W, 2r+1) windows along ``axis`` times the symmetric kernel
    return a


def kl_to_fixation_map(saliency: Any, fixations: Any, *, sigma: float, eps: float = 0.0) -> float:
    """``KL(P || Q)`` in nats: ``P`` = ``fixations: (H, W)`` blurred with :func:`gaussian_blur`
    (``sigma`` px) and ``Q`` = ``saliency: (H, W)``, each divided by its sum.

    ``eps = 0`` (default) is the exact divergence, as the FLS code computes it (``inf`` where
    ``Q`` has no mass but ``P`` has); ``eps > 0`` gives ``sum P log(eps + P / (Q + eps))``, the
    regularised form of the MIT saliency benchmark. ``nan`` with no fixations or an all-zero map.
    """
    s = _map(saliency, "saliency")
    f = _counts(fixations, "fixations", s.shape)
    if (s < 0).any():
        raise DigrError("saliency must be non-negative for KL (a distribution over pixels)")
    if not (isinstance(eps, (int, float)) and eps >= 0):
        raise DigrError(f"eps must be >= 0, got {eps!r}")
    if f.sum() == 0 or s.sum() == 0:
        return float("nan")
    p = gaussian_blur(f, sigma=sigma)
    p /= p.sum()
    q = s / s.sum()
    m = p > 0
    if eps > 0:
        return float((p[m] * np.log(eps + p[m] / (q[m] + eps))).sum())
    if (q[m] == 0).any():
        return float("inf")
    return float((p[m] * np.log(p[m] / q[m])).sum())


def shuffled_auc(saliency: Any, fixations: Any, other_fixations: Any, *, seed: int,
                 splits: int = 100) -> float:
    """Shuffled AUC of ``saliency: (H, W)`` for ``fixations: (H, W)`` counts against
    ``other_fixations: (H, W)`` counts (e.g. the summed fixation maps of other frames).

    Positives: the saliency at every fixation (a pixel counted as often as it was fixated).
    Negatives, ``splits`` times: as many pixels drawn with replacement from ``other_fixations``
    (proportional to their counts) with ``numpy.random.default_rng(seed)``; the AUC (ties count
    one half, so a constant map scores exactly 0.5) is averaged over the splits, as the FLS code
    does with 100 splits. ``nan`` when either count map is empty.
    """
    s = _map(saliency, "saliency")
    f = _counts(fixations, "fixations", s.shape).ravel()
    o = _counts(other_fixations, "other_fixations", s.shape).ravel()
    splits = check_int("splits", splits)
    n_pos, n_other = float(f.sum()), float(o.sum())
    if n_pos == 0 or n_other == 0:
        return float("nan")
    flat = s.ravel()
    pos, weight = flat[f > 0], f[f > 0]
    n_neg = max(1, int(round(n_pos)))
    rng = np.random.default_rng(seed)
    draws = rng.choice(flat.size, size=(splits, n_neg), p=o / n_other)
    aucs = np.empty(splits)
    for i, idx in enumerate(draws):
        neg = np.sort(flat[idx])
        below = np.searchsorted(neg, pos, side="left")
        ties = np.searchsorted(neg, pos, side="right") - below
        aucs[i] = float((weight * (below + 0.5 * ties)).sum()) / (n_pos * n_neg)
    return float(aucs.mean())


__all__ = ["ATARI_FRAME_SHAPE", "fixation_map", "gaussian_blur", "kl_to_fixation_map", "nss", "shuffled_auc"]
