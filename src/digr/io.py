"""Atomic file and folder writes: write a temporary sibling, then rename it into place.

A reader (or a rerun after a kill) sees either the old content or the complete new content of a
path, never a half-written file. Temporary names come from :func:`tempfile.mkstemp` /
:func:`tempfile.mkdtemp` in the destination's folder (same file system, so ``os.replace`` is an
atomic rename), are unique per writer, start with a dot, and are removed when writing fails.

* :func:`atomic_write` -- any writer that takes a path (``np.savez_compressed`` through an open
  file, ``safetensors`` ``save_file``, ``torch.save``, ``fig.savefig``, ...);
* :func:`atomic_write_text`, :func:`atomic_write_json` -- the common cases;
* :func:`atomic_dir` / :func:`replace_dir` -- a whole folder (e.g. a checkpoint), swapped in once
  every file in it is written.

None of these creates missing parent folders: callers do that where they need it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from digr.errors import DigrError

__all__ = [
    "atomic_dir",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "recover_folders",
    "replace_dir",
]


def _file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: ``0o666`` less the process umask."""
    try:  # Linux: read the umask without changing it (no window where another thread sees 0)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


def atomic_write(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Write ``path`` atomically: ``writer(tmp)`` writes the temporary file ``tmp``, then it is renamed.

    ``tmp`` is a fresh, empty file in ``path``'s folder named ``.<name>.<random>.tmp``; ``writer``
    may overwrite it by path (note ``np.savez*`` appends ``.npz`` to a path that lacks it: hand it
    an open file instead). The file gets the usual permissions of a new file (``0o666`` less the
    umask) rather than ``mkstemp``'s ``0o600``. If ``writer`` (or the rename) raises, the
    temporary file is removed, ``path`` keeps its old content, and the exception propagates.
    Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        writer(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write the string ``text`` to ``path`` atomically (UTF-8); returns ``path``."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write)


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``json.dumps(obj, indent=indent)`` plus a final newline to ``path`` atomically.

    ``obj`` is serialised before anything is written, so an unserialisable object leaves no
    trace. Returns ``path``.
    """
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def replace_dir(tmp_dir: str | Path, dest: str | Path) -> Path:
    """Swap the fully written folder ``tmp_dir`` into place as ``dest``; returns ``dest``.

    ``tmp_dir`` must be on ``dest``'s file system (make it in ``dest.parent``). An existing
    ``dest`` is first renamed to ``.<name>.old`` next to it and deleted only once ``tmp_dir`` is
    in place, so a kill between the two renames leaves the old folder as ``.<name>.old`` (a
    loader may rename it back) and never a half-written ``dest``.
    """
    tmp_dir, dest = Path(tmp_dir), Path(dest)
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(tmp_dir, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp_dir, dest)
    return dest


@contextmanager
def atomic_dir(dest: str | Path) -> Iterator[Path]:
    """Context manager: yields a fresh temporary folder; on a clean exit it replaces ``dest``.

    The folder is made by :func:`tempfile.mkdtemp` as ``.<name>.<random>`` in ``dest``'s folder
    (which must exist) and swapped in with :func:`replace_dir`. Whatever happens, no temporary
    folder is left behind; if the body raises, ``dest`` is untouched.
    """
    dest = Path(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        replace_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def recover_folders(parent: str | Path, names: tuple[str, ...]) -> None:
    """Undo what a kill during :func:`atomic_dir` left in ``parent`` for each folder name in
    ``names``: an old folder still named ``.NAME.old`` (killed between :func:`replace_dir`'s two
    renames) goes back in place, and digr's temporary ``.NAME.*`` folders are removed. Run it
    before reading a run folder that is resumed."""
    parent = Path(parent)
    for name in names:
        dest, old = parent / name, parent / f".{name}.old"
        if not dest.exists() and old.is_dir():
            os.replace(old, dest)
        for stale in parent.glob(f".{name}.*"):  # temp folders, and an old one already replaced
            if stale.is_dir() and (stale.name != f".{name}.old" or dest.exists()):
                shutil.rmtree(stale, ignore_errors=True)


def read_versioned_json(path: Path, *, owner: str, fmt: str, version: int, kind: str) -> dict[str, Any]:
    """Parse the JSON header ``path`` of a digr artefact and check its ``format`` and version.

    ``owner`` names the artefact in messages (``"checkpoint runs/x"``), ``kind`` what the file
    should be (``"digr policy config"``). Every problem is one :class:`DigrError` line.
    """
    from digr.errors import DigrError

    try:
        obj = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DigrError(f"{owner} has no {Path(path).name}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DigrError(f"{owner}: {Path(path).name} is corrupt ({exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise DigrError(f"{owner}: {Path(path).name} is not a {kind}")
    fv = obj.get("format_version", 0)
    if isinstance(fv, bool) or not isinstance(fv, int):
        raise DigrError(f"{owner}: {Path(path).name} has format_version {fv!r}, not an integer")
    if fv > version:
        raise DigrError(f"{owner} has format version {obj['format_version']}; this digr reads up to {version}")
    return obj



_TEMPORARY = re.compile(r"^\..+\.([a-z0-9_]{8}\.tmp|[a-z0-9_]{8}|old)$")


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of the temporary names :func:`atomic_write` (``.NAME.XXXXXXXX.tmp``)
    and :func:`atomic_dir` (``.NAME.XXXXXXXX``, ``.NAME.old``) give, which a kill may leave."""
    return bool(_TEMPORARY.match(name))


def tidy_folder(path: str | Path) -> None:
    """Undo what kills left in digr's folder ``path`` (and its sub-folders): a ``.NAME.old`` whose
    ``NAME`` is missing goes back in place (killed between :func:`replace_dir`'s two renames);
    every other temporary name (:func:`is_temporary`) is removed. Only for folders digr made."""
    path = Path(path)
    for entry in sorted(path.rglob(".*"), key=lambda p: len(p.parts)):
        if not is_temporary(entry.name) or not (entry.exists() or entry.is_symlink()):
            continue
        if entry.name.endswith(".old") and entry.is_dir() and not entry.is_symlink():
            dest = entry.with_name(entry.name[1:-len(".old")])
            if not dest.exists():
                os.replace(entry, dest)
                continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


# -- what a folder holds -----------------------------------------------------------------------------
FOLDER_KINDS = ("checkpoint", "teacher run", "student run", "dataset", "pipeline", "multi-seed run")
"""The folders digr writes, as :func:`folder_kind` names them."""


def folder_kind(path: str | Path) -> str | None:
    """What digr folder ``path`` is: one of :data:`FOLDER_KINDS`, ``None`` for a path that does not
    exist or an empty folder, ``"file"`` for anything that is not a folder, ``"other"`` for a
    folder with content digr did not make (or a ``config.json`` it cannot read)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_dir():
        return "file"
    try:
        names = {p.name for p in path.iterdir() if not is_temporary(p.name)}
    except OSError:
        return "other"
    if names == {"teacher"} and folder_kind(path / "teacher") == "checkpoint":
        return None  # an in-memory teacher saved before a dataset or student run's first file
    if not names:
        return None
    if "pipeline.json" in names:
        return "pipeline"
    if all(n == "seeds.json" or (n.startswith("seed-") and n[5:].isdigit()) for n in names):
        return "multi-seed run"  # seed-S/ run folders of digr.distill.seeds (and their summary)
    if "manifest.json" in names:
        return "dataset"
    if "config.json" in names:
        try:
            cfg = json.loads((path / "config.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return "other"
        if isinstance(cfg, dict):
            if cfg.get("format") == "digr-policy":
                return "checkpoint"
            if "ppo" in cfg:
                return "teacher run"
            if "distill" in cfg:
                return "student run"
    return "other"


def claim_folder(path: str | Path, kind: str) -> Path:
    """Check that digr may write a ``kind`` (one of :data:`FOLDER_KINDS`) at ``path``: it must not
    exist, be an empty folder, or already be a ``kind`` (which is then continued or replaced).
    Anything else -- a file, another digr folder, a folder of someone else's files -- is a
    one-line :class:`DigrError`, before anything is written. Returns ``path``."""
    path = Path(path)
    have = folder_kind(path)
    if have is None or have == kind:
        if path.is_dir():
            tidy_folder(path)
        return path
    what = {"file": "a file", "other": "a folder with other content"}.get(have, f"a digr {have}")
    raise DigrError(f"{path} is {what}, not a {kind}; digr writes a {kind} only into a new or empty "
                    "folder or one it made: use another output path")
