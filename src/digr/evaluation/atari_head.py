"""A loader for one Atari-HEAD trial (Zhang et al. 2019/2020) that users download themselves; its
gaze samples become fixation maps for :mod:`digr.evaluation.gaze`.

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

from digr.errors import DigrError
from digr.evaluation.gaze import ATARI_FRAME_SHAPE, fixation_map

COLUMNS = ("frame_id", "episode_id", "score", "duration(ms)", "unclipped_reward", "action", "gaze_positions")
"""Header of an Atari-HEAD trial table."""
MAX_PNG_BYTES = 16 << 20
"""Largest frame file read from an archive (an Atari frame PNG is a few kB)."""


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


__all__ = ["AtariHeadTrial", "load_atari_head_trial"]
