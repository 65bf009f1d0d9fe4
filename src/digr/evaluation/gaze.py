"""Human-gaze metrics for saliency maps, as the FLS paper reports them on Atari-HEAD, and a loader
for one Atari-HEAD trial (Zhang et al. 2019/2020) that users download themselves.

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

Atari-HEAD layout, per trial (``<trial>`` like ``100_RZ_3592991_Aug-24-11-44-38``)::

    <trial>.txt        CSV, header frame_id,episode_id,score,duration(ms),unclipped_reward,action,
                       gaze_positions; then one row per frame: frame_id (e.g. RZ_3592991_1), the
                       five numbers ("null" when missing), then the frame's gaze samples as
                       x1,y1,x2,y2,... in frame pixels (x = column, y = row), or "null"
    <trial>.tar.bz2    the frames as PNG files <frame_id>.png (210x160 RGB), usually in a folder
                       <trial>/; an already extracted folder <trial>/ works too

:func:`load_atari_head_trial` reads the table; frames are decoded on request
(:meth:`AtariHeadTrial.frames`) with PIL, straight from the archive: nothing is extracted to disk,
and members that are not plain files or have absolute or ``..`` names are refused. No pickle.
"""

from __future__ import annotations

import csv
import io
import math
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from digr.errors import DigrError, check_int

ATARI_FRAME_SHAPE = (210, 160)
"""``(rows, columns)`` of a raw Atari frame, the coordinate frame of Atari-HEAD's gaze samples."""
COLUMNS = ("frame_id", "episode_id", "score", "duration(ms)", "unclipped_reward", "action", "gaze_positions")
"""Header of an Atari-HEAD trial table."""
MAX_PNG_BYTES = 16 << 20
"""Largest frame file read from an archive (an Atari frame PNG is a few kB)."""


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


# ------------------------------------------------------------------------------------------ loader
def _nullable(value: str, kind: type, where: str, column: str) -> Any:
    v = value.strip()
    if v in ("null", ""):
        return None
    try:
        x = float(v)
    except ValueError:
        raise DigrError(f"{where}: {column} must be a number or null, got {value!r}") from None
    if kind is int:
        if not x.is_integer():
            raise DigrError(f"{where}: {column} must be an integer or null, got {value!r}")
        return int(x)
    return x


@dataclass(frozen=True, eq=False)
class AtariHeadTrial:
    """One Atari-HEAD trial: the per-frame table and where its frames are. ``N`` frames."""

    name: str
    """Trial name (the table's file stem)."""
    table: Path
    """The trial's ``.txt`` table."""
    frames_path: Path | None
    """Folder of PNGs or ``.tar.bz2`` archive holding ``<frame_id>.png``; ``None`` if not found."""
    frame_ids: tuple[str, ...]
    """``(N,)`` frame names, e.g. ``RZ_3592991_1`` (the PNG's stem)."""
    episode_id: np.ndarray
    """``(N,)`` int64; -1 where the table says ``null``."""
    score: np.ndarray
    """``(N,)`` float64 game score; NaN where ``null``."""
    duration_ms: np.ndarray
    """``(N,)`` float64 time the human spent on the frame, ms; NaN where ``null``."""
    unclipped_reward: np.ndarray
    """``(N,)`` float64; NaN where ``null``."""
    action: np.ndarray
    """``(N,)`` int64 ALE action (0..17); -1 where ``null``."""
    gaze: tuple[np.ndarray, ...] = field(repr=False)
    """``N`` arrays ``(K_i, 2)`` float64 of ``(x, y)`` gaze samples in frame pixels; ``(0, 2)`` where
    the table says ``null``."""

    def __len__(self) -> int:
        return len(self.frame_ids)

    def fixation_maps(self, shape: tuple[int, int], *, indices: Sequence[int] | None = None,
                      frame_shape: tuple[int, int] = ATARI_FRAME_SHAPE) -> np.ndarray:
        """Count maps ``(n, H, W)`` int64 of the gaze of frames ``indices`` (default all), scaled
        from ``frame_shape`` onto ``shape`` (:func:`fixation_map`)."""
        idx = self._indices(indices)
        return np.stack([fixation_map(self.gaze[i], shape, frame_shape=frame_shape) for i in idx]) \
            if idx else np.zeros((0, *shape), dtype=np.int64)

    def frames(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """Frames ``(n, rows, cols, 3)`` uint8 RGB of ``indices`` (default all, in table order).

        An archive is read in one sequential pass per call, up to the last requested frame: ask for
        every frame you need at once.
        """
        idx = self._indices(indices)
        if self.frames_path is None:
            raise DigrError(f"no frames found for trial {self.name} (expected {self.name}.tar.bz2 or a "
                            f"folder {self.name}/ next to {self.table.name})")
        wanted = {self.frame_ids[i] for i in idx}
        if self.frames_path.is_dir():
            data = {}
            for fid in wanted:
                p = self.frames_path / f"{fid}.png"
                if not p.is_file():
                    raise DigrError(f"frame {fid}.png is missing from {self.frames_path}")
                data[fid] = p.read_bytes()
        else:
            data = _read_tar_pngs(self.frames_path, wanted)
        images = {fid: _decode_png(b, fid) for fid, b in data.items()}
        shapes = {im.shape for im in images.values()}
        if len(shapes) > 1:
            raise DigrError(f"frames of trial {self.name} differ in size: {sorted(shapes)}")
        if not idx:
            return np.zeros((0, *ATARI_FRAME_SHAPE, 3), dtype=np.uint8)
        return np.stack([images[self.frame_ids[i]] for i in idx])

    def _indices(self, indices: Iterable[int] | None) -> list[int]:
        if indices is None:
            return list(range(len(self)))
        out = [int(i) for i in indices]
        bad = [i for i in out if not 0 <= i < len(self)]
        if bad:
            raise DigrError(f"frame indices out of range [0, {len(self)}): {bad[:5]}")
        return out


def _decode_png(data: bytes, fid: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "PNG":
                raise DigrError(f"frame {fid} is not a PNG (format {im.format})")
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except DigrError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types (incl. DecompressionBombError)
        raise DigrError(f"frame {fid} cannot be decoded ({type(exc).__name__}: {exc})") from None


def _read_tar_pngs(path: Path, wanted: set[str]) -> dict[str, bytes]:
    """Bytes of ``<frame_id>.png`` for every id in ``wanted``, read from the archive in one pass."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:  # sequential: a compressed archive is never re-read from its start
                name = member.name
                parts = Path(name).parts
                if name.startswith(("/", "\\")) or ".." in parts:
                    raise DigrError(f"{path}: unsafe member name {name!r}")
                if not member.isfile() or not name.endswith(".png"):
                    continue  # folders; links and devices are never followed
                fid = Path(name).stem
                if fid not in wanted:
                    continue
                if fid in found:
                    raise DigrError(f"{path}: frame {fid}.png appears twice")
                if member.size > MAX_PNG_BYTES:
                    raise DigrError(f"{path}: {name} is {member.size} bytes, too large for a frame")
                f = tar.extractfile(member)
                if f is None:
                    continue
                found[fid] = f.read()
                if len(found) == len(wanted):
                    break  # the rest of the archive is not decompressed
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DigrError(f"cannot read frames archive {path}: {exc}") from None
    missing = sorted(wanted - set(found))
    if missing:
        raise DigrError(f"{path} lacks {len(missing)} requested frame(s), e.g. {missing[0]}.png")
    return found


def _frames_next_to(table: Path) -> Path | None:
    stem = table.stem
    for cand in (table.with_name(stem + ".tar.bz2"), table.with_name(stem + ".tar"), table.with_name(stem)):
        if cand.exists():
            return cand
    return None


def _strip_tar(name: str) -> str:
    for suffix in (".tar.bz2", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _resolve(src: Any) -> tuple[Path, Path | None]:
    if isinstance(src, (list, tuple)):
        if len(src) != 2:
            raise DigrError("give one trial as a path, or as (table.txt, frames) paths")
        table, frames = Path(src[0]), Path(src[1])
        if not frames.exists():
            raise DigrError(f"frames not found: {frames}")
        return table, frames
    p = Path(src)
    if not p.exists():
        raise DigrError(f"Atari-HEAD trial not found: {p}")
    if p.is_file() and _strip_tar(p.name) != p.name:  # the archive: its table is next to it
        return p.with_name(_strip_tar(p.name) + ".txt"), p
    if p.is_file():
        return p, _frames_next_to(p)
    tables = sorted(q for q in p.glob("*.txt"))
    if len(tables) == 1:
        return tables[0], _frames_next_to(tables[0])
    if not tables and p.with_name(p.name + ".txt").is_file():  # the extracted frames folder
        return p.with_name(p.name + ".txt"), p
    if len(tables) > 1:
        raise DigrError(f"{p} holds {len(tables)} trial tables; pass the .txt of one trial")
    raise DigrError(f"{p} holds no Atari-HEAD trial table (<trial>.txt)")


def load_atari_head_trial(folder_or_files: Any) -> AtariHeadTrial:
    """Read one Atari-HEAD trial (module docstring for the layout).

    ``folder_or_files``: the trial's ``.txt`` table, its ``.tar.bz2`` archive or extracted frames
    folder (the table is found next to it), a folder holding one trial's table, or a
    ``(table, frames)`` pair. Malformed tables and archives raise :class:`DigrError` naming the
    file and line.
    """
    table, frames = _resolve(folder_or_files)
    if not table.is_file():
        raise DigrError(f"Atari-HEAD trial table not found: {table}")
    try:
        text = table.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DigrError(f"cannot read {table}: {exc}") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip() for c in rows[0][:1]] != ["frame_id"] or len(rows[0]) < len(COLUMNS):
        raise DigrError(f"{table} is not an Atari-HEAD trial table (header {','.join(COLUMNS)})")
    ids, ep, score, dur, rew, act, gaze = [], [], [], [], [], [], []
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        where = f"{table.name}:{n}"
        if len(row) < len(COLUMNS):
            raise DigrError(f"{where}: expected {len(COLUMNS)} or more fields, got {len(row)}")
        ids.append(row[0].strip())
        e, a = _nullable(row[1], int, where, "episode_id"), _nullable(row[5], int, where, "action")
        ep.append(-1 if e is None else e)
        act.append(-1 if a is None else a)
        for out, col, value in ((score, "score", row[2]), (dur, "duration(ms)", row[3]),
                                (rew, "unclipped_reward", row[4])):
            v = _nullable(value, float, where, col)
            out.append(math.nan if v is None else v)
        g = [c.strip() for c in row[6:]]
        if g in (["null"], [""]):
            gaze.append(np.zeros((0, 2)))
            continue
        try:
            vals = np.array([float(c) for c in g], dtype=np.float64)
        except ValueError:
            raise DigrError(f"{where}: gaze_positions must be numbers or null") from None
        if vals.size % 2:
            raise DigrError(f"{where}: gaze_positions has an odd number of values ({vals.size})")
        gaze.append(vals.reshape(-1, 2))
    if len(set(ids)) != len(ids):
        raise DigrError(f"{table} lists a frame_id twice")
    return AtariHeadTrial(
        name=table.stem, table=table, frames_path=frames, frame_ids=tuple(ids),
        episode_id=np.asarray(ep, dtype=np.int64), score=np.asarray(score, dtype=np.float64),
        duration_ms=np.asarray(dur, dtype=np.float64), unclipped_reward=np.asarray(rew, dtype=np.float64),
        action=np.asarray(act, dtype=np.int64), gaze=tuple(gaze),
    )


__all__ = ["ATARI_FRAME_SHAPE", "AtariHeadTrial", "fixation_map", "gaussian_blur", "kl_to_fixation_map",
           "load_atari_head_trial", "nss", "shuffled_auc"]
