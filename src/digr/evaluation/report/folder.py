"""The pipeline folder a report reads: its layout, roles and listed extra rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digr.errors import DigrError

PIPELINE_JSON = "pipeline.json"
ROLES = ("teacher", "digr", "distill-only")
"""Policy roles of a pipeline run."""
ROLE_DIRS = {"teacher": "teacher", "digr": "digr", "distill-only": "distill-only"}
"""Sub-folder of ``DIR`` holding each role's run folder (or checkpoint)."""
ROLE_KEYS = {"teacher": "teacher", "digr": "digr", "distill-only": "distill_only"}
"""Key of each role's path in ``pipeline.json`` (takes precedence over the sub-folder)."""
EVAL_DIR = "eval"
FIGURES_DIR = "figures"
REPORT_NAME = "report.md"
TABLE1_NAME = "table1.md"

PIPELINE_LAYOUT = f"""\
DIR/                      one pipeline run (e.g. runs/rfg-pipeline)
  {PIPELINE_JSON}             optional JSON object; every key optional:
                              "task": "red-fetch-green"   (default: the teacher checkpoint's task)
                              "teacher": PATH, "digr": PATH, "distill_only": PATH
                                  checkpoint or run folder (with policy/), relative to DIR or absolute;
                                  each overrides the sub-folder below
                              "entries": [{{"label": "FLS", "policy": "fls", "method": "fls",
                                           "settings": {{}}, "command": "digr train ..."}},
                                          {{"label": "DIGR + adv", "policy": "digr-adv", "student": true,
                                           "command": "digr distill ..."}}]
                                  one list of further labelled policies (relative to DIR or absolute):
                                  with a "method" (and optional "settings"), a (policy, saliency
                                  method) row of Table 1 and the timing chart; with "student": true,
                                  a student next to digr and distill-only in the agreement,
                                  performance, robustness and panels sections; "command" optional
                              "commands": {{"teacher": "digr train ...",
                                           "dataset": "digr dataset ...",
                                           "digr": "digr distill ...",
                                           "distill-only": "digr distill --no-igr ..."}}
                                  the commands that made the checkpoints, quoted in the report
                              "other_commands": {{"fls": "digr train ..."}}
                                  commands of other committed checkpoints the report does not
                                  show (read by experiments/write_reproduce.py, not by the report)
  teacher/                run folder of `digr train` (policy/ inside) or a checkpoint folder  [required]
  digr/                   run folder of `digr distill` (policy/, metrics.jsonl)                [optional]
  distill-only/           run folder of `digr distill --no-igr` (policy/, metrics.jsonl)      [optional]
  {EVAL_DIR}/                   written by `digr report`: one cached JSON result per measurement
  {FIGURES_DIR}/                written by `digr report`: PNG figures and the episode GIF
  {TABLE1_NAME}               written by `digr report`: Table 1 alone
  {REPORT_NAME}               written by `digr report`
"""
"""The folder layout ``digr report DIR`` reads (the pipeline writes it)."""


# ------------------------------------------------------------------------------------------ pipeline
@dataclass(frozen=True)
class Pipeline:
    """A pipeline folder's checkpoints, resolved."""

    dir: Path
    task: str
    teacher: Path
    """Teacher checkpoint folder."""
    digr: Path | None
    """DIGR student checkpoint folder, if any."""
    distill_only: Path | None
    """Distillation-only student checkpoint folder, if any."""
    info: dict[str, Any] = field(default_factory=dict)
    """``pipeline.json`` contents (``{}`` without one)."""
    extra: tuple["ExtraRow", ...] = ()
    """The ``entries`` of ``pipeline.json`` with a saliency method, resolved, in their order."""
    students: tuple["ExtraStudent", ...] = ()
    """The ``entries`` of ``pipeline.json`` marked ``"student": true``, resolved, in their order."""

    def policy(self, role: str) -> Path | None:
        """Checkpoint of a role (``ROLES``) or of an extra student (its label)."""
        known = {"teacher": self.teacher, "digr": self.digr, "distill-only": self.distill_only,
                 **{s.label: s.policy for s in self.students}}
        return known[role]

    def run_dir(self, role: str) -> Path | None:
        """The training run folder of ``role`` (the checkpoint's parent when it is ``policy/``)."""
        p = self.policy(role)
        if p is None:
            return None
        return p.parent if p.name == "policy" else p


@dataclass(frozen=True)
class ExtraRow:
    """One more (policy, saliency method) pair for Table 1 and the timing chart."""

    label: str
    """Row name in the table and the chart."""
    policy: Path
    """Checkpoint folder."""
    method: str
    """Saliency method name."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Method settings."""
    command: str | None = None
    """The command that made the checkpoint, quoted in the report."""


@dataclass(frozen=True)
class ExtraStudent:
    """One more student for the performance and robustness sections."""

    label: str
    """Its name in tables and legends (must differ from the roles)."""
    policy: Path
    """Checkpoint folder (its training log is ``metrics.jsonl`` next to ``policy/``)."""
    command: str | None = None
    """The command that made the checkpoint, quoted in the report."""


def _listed_checkpoints(d: Path, info: dict[str, Any], key: str, required: tuple[str, ...]
                        ) -> list[tuple[dict[str, Any], Path]]:
    """``pipeline.json``'s list ``key`` as ``(entry, checkpoint)`` pairs, each entry an object with
    the string fields ``required`` (``label`` and ``policy`` among them), labels unique."""
    items = info.get(key, [])
    if not isinstance(items, list):
        raise DigrError(f"{PIPELINE_JSON}: {key} must be a list of objects")
    out = []
    for i, r in enumerate(items):
        if not isinstance(r, dict) or not all(isinstance(r.get(k), str) for k in required):
            names = ", ".join(f"'{k}'" for k in required[:-1]) + f" and '{required[-1]}'"
            raise DigrError(f"{PIPELINE_JSON}: {key}[{i}] needs string {names}")
        cand = Path(r["policy"]) if Path(r["policy"]).is_absolute() else d / r["policy"]
        ckpt = _checkpoint(cand) if cand.exists() else None
        if ckpt is None:
            raise DigrError(f"{PIPELINE_JSON}: {key}[{i}].policy = {r['policy']!r} is not a digr "
                            f"checkpoint or run folder (looked in {cand})")
        out.append((r, ckpt))
    labels = [r["label"] for r, _ in out]
    if len(set(labels)) != len(labels):
        raise DigrError(f"{PIPELINE_JSON}: {key} labels must be unique")
    return out


LEGACY_KEYS = ("extra_rows", "extra_students")
"""The two lists ``entries`` replaced (refused with a one-line error that says how to move them)."""


def _entries(d: Path, info: dict[str, Any]) -> tuple[tuple[ExtraRow, ...], tuple[ExtraStudent, ...]]:
    """``pipeline.json``'s ``entries``: the saliency rows and the students they declare."""
    for key in LEGACY_KEYS:
        if key in info:
            raise DigrError(f"{PIPELINE_JSON}: '{key}' is now part of the one list 'entries' (an entry with "
                            "a \"method\" is a saliency row, one with \"student\": true a student)")
    rows, students = [], []
    for i, (r, ckpt) in enumerate(_listed_checkpoints(d, info, "entries", ("label", "policy"))):
        method, student, settings = r.get("method"), r.get("student", False), r.get("settings", {})
        if not isinstance(student, bool):
            raise DigrError(f"{PIPELINE_JSON}: entries[{i}].student must be true or false")
        if method is not None and not isinstance(method, str):
            raise DigrError(f"{PIPELINE_JSON}: entries[{i}].method must be a saliency method name")
        if method is None and not student:
            raise DigrError(f"{PIPELINE_JSON}: entries[{i}] needs a \"method\" (a saliency row) or "
                            "\"student\": true (a student)")
        if not isinstance(settings, dict):
            raise DigrError(f"{PIPELINE_JSON}: entries[{i}].settings must be an object")
        if student and r["label"] in ROLES:
            raise DigrError(f"{PIPELINE_JSON}: entries[{i}].label must not be a role name ({r['label']!r})")
        if method is not None:
            rows.append(ExtraRow(r["label"], ckpt, method, dict(settings), r.get("command")))
        if student:
            students.append(ExtraStudent(r["label"], ckpt, r.get("command")))
    return tuple(rows), tuple(students)


def _checkpoint(path: Path) -> Path | None:
    from digr.models.checkpoint import WEIGHTS_NAME, resolve

    p = resolve(path)
    return p if (p / WEIGHTS_NAME).is_file() else None


def load_pipeline(directory: str | Path) -> Pipeline:
    """Resolve the checkpoints of the pipeline folder ``directory`` (:data:`PIPELINE_LAYOUT`)."""
    from digr.envs import get_task
    from digr.models.checkpoint import checkpoint_task

    d = Path(directory)
    if not d.is_dir():
        raise DigrError(f"pipeline folder not found: {d}")
    info: dict[str, Any] = {}
    if (d / PIPELINE_JSON).exists():
        try:
            info = json.loads((d / PIPELINE_JSON).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DigrError(f"{d / PIPELINE_JSON} is not valid JSON ({exc})") from None
        if not isinstance(info, dict):
            raise DigrError(f"{d / PIPELINE_JSON} must hold a JSON object")
    paths: dict[str, Path | None] = {}
    for role in ROLES:
        given = info.get(ROLE_KEYS[role])
        if given is not None and not isinstance(given, str):
            raise DigrError(f"{PIPELINE_JSON}: {ROLE_KEYS[role]} must be a path (a string), got {given!r}")
        if given is not None:
            cand = Path(given) if Path(given).is_absolute() else d / given
            ckpt = _checkpoint(cand)
            if ckpt is None:
                raise DigrError(f"{PIPELINE_JSON}: {ROLE_KEYS[role]} = {given!r} is not a digr checkpoint "
                                f"or run folder (looked in {cand})")
        else:
            ckpt = _checkpoint(d / ROLE_DIRS[role]) if (d / ROLE_DIRS[role]).exists() else None
        paths[role] = ckpt
    if paths["teacher"] is None:
        raise DigrError(f"{d} has no teacher: expected {d / 'teacher'} (a run folder with policy/ or a "
                        f"checkpoint) or a 'teacher' path in {PIPELINE_JSON}")
    task = get_task(info.get("task") or checkpoint_task(paths["teacher"])).name
    rows, students = _entries(d, info)
    return Pipeline(dir=d, task=task, teacher=paths["teacher"], digr=paths["digr"],
                    distill_only=paths["distill-only"], info=info, extra=rows, students=students)
