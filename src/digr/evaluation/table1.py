"""Table 1 of the paper, measured: saliency quality on the Red-Fetch-Green benchmark.

Rows: the seven saliency methods on the teacher (the paper's "original policy"), the vanilla
gradient on the DIGR student (the paper's "DIGR" row) and, added here, the vanilla gradient on the
distillation-only student. :func:`table1_rows` measures them with
:func:`digr.evaluation.saliency_benchmark.evaluate_saliency`; :func:`write_table1` writes the
Markdown table with the paper's numbers next to ours and, above it, the exact ``digr evaluate
saliency`` command that regenerates each row. More rows (e.g. another student) go in through
``extra_rows`` (a report's ``pipeline.json`` ``entries`` with a method).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from digr.evaluation.saliency_benchmark import DEFAULT_BATCH, DEFAULT_STATES
from digr.io import atomic_write_text

TASK = "red-fetch-green"
TABLE1_PATH = Path("results") / TASK / "table1.md"
"""Where the full-size table is committed (relative to the repository root)."""


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table 1."""

    label: str
    """Row name as printed in the paper."""
    method: str
    """Saliency method (registry name)."""
    policy: str
    """Which policy: ``"teacher"`` or ``"digr"``."""
    important: float
    unimportant: float
    auc: float


PAPER_TABLE1: tuple[PaperRow, ...] = (
    PaperRow("VG", "vanilla", "teacher", 56.04, 278.10, 0.840),
    PaperRow("Guided BP", "guided_backprop", "teacher", 82.84, 35.67, 0.993),
    PaperRow("Grad-CAM", "gradcam", "teacher", 43.12, 364.97, 0.686),
    PaperRow("Smooth G", "smoothgrad", "teacher", 83.05, 84.76, 0.991),
    PaperRow("Integrated G", "integrated_gradients", "teacher", 67.79, 232.09, 0.900),
    PaperRow("GB Perturbation", "perturbation", "teacher", 86.11, 77.81, 0.989),
    PaperRow("SARFA", "sarfa", "teacher", 58.40, 42.17, 0.895),
    PaperRow("DIGR", "vanilla", "digr", 72.52, 0.00, 0.997),
)
"""The paper's Table 1 (section 4.4), in its row order."""


@dataclass(frozen=True)
class RowSpec:
    """What to measure for one row."""

    label: str
    """Row name in the table."""
    policy: str | Path
    """Checkpoint folder (or run folder with ``policy/``)."""
    method: str
    """Saliency method name."""
    paper: PaperRow | None = None
    """The paper's numbers for this row, if it has any."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Method settings overriding the paper's defaults (e.g. ``{"stride": 4}`` for a quick run)."""


@dataclass(frozen=True)
class Table1Row:
    """A measured row: its spec, the benchmark result and the command that regenerates it."""

    spec: RowSpec
    result: dict[str, Any]
    """:func:`evaluate_saliency` output (``important``, ``unimportant``, ``auc``, ...)."""
    command: str
    """The ``digr evaluate saliency ...`` command printing this row's numbers."""


def display_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def saliency_command(policy: str | Path, method: str, *, states: int, seed: int, moves: int = 0,
                     batch_size: int = DEFAULT_BATCH, settings: dict[str, Any] | None = None,
                     device: str = "cpu", threads: int | None = None) -> str:
    """The ``digr evaluate saliency`` command line measuring ``method`` on ``policy``."""
    import json

    parts = ["digr", "evaluate", "saliency", "--policy", display_path(policy), "--method", method,
             "--task", TASK, "--states", str(states), "--seed", str(seed)]
    if moves:
        parts += ["--moves", str(moves)]
    if batch_size != DEFAULT_BATCH:
        parts += ["--batch-size", str(batch_size)]
    for k, v in (settings or {}).items():
        parts += ["--setting", f"{k}={v if isinstance(v, str) else json.dumps(v)}"]
    if device != "cpu":
        parts += ["--device", device]
    if threads is not None:
        parts += ["--threads", str(threads)]
    return shlex.join(parts + ["--json"])


def default_specs(teacher: str | Path, digr_student: str | Path | None,
                  distill_only_student: str | Path | None, *,
                  settings: dict[str, dict[str, Any]] | None = None) -> list[RowSpec]:
    """The paper's eight rows plus "distill-only VG"; a missing student drops its row.

    ``settings`` maps a method name to setting overrides applied to every row using it.
    """
    settings = settings or {}
    paths = {"teacher": teacher, "digr": digr_student}
    specs = [RowSpec(r.label, paths[r.policy], r.method, r, dict(settings.get(r.method, {})))
             for r in PAPER_TABLE1 if paths[r.policy] is not None]
    if distill_only_student is not None:
        specs.append(RowSpec("distill-only VG", distill_only_student, "vanilla", None,
                             dict(settings.get("vanilla", {}))))
    return specs


Cache = Callable[[str, dict[str, Any], Callable[[], dict[str, Any]]], dict[str, Any]]
"""``cache(name, key, compute) -> result``: returns a stored result for ``key`` or computes it."""


def table1_rows(
    teacher: str | Path,
    digr_student: str | Path | None,
    distill_only_student: str | Path | None,
    *,
    states: int = DEFAULT_STATES,
    seed: int = 0,
    moves: int = 0,
    batch_size: int = DEFAULT_BATCH,
    settings: dict[str, dict[str, Any]] | None = None,
    device: str = "cpu",
    threads: int | None = None,
    extra_rows: Iterable[RowSpec] | None = None,
    cache: Cache | None = None,
    only: Iterable[str] | None = None,
) -> list[Table1Row]:
    """Measure every Table 1 row on ``states`` benchmark states (all rows on the same states).

    ``teacher``: all seven methods; ``digr_student`` / ``distill_only_student``: vanilla gradient
    (``None`` skips the row). ``extra_rows`` are appended. ``cache`` (see :data:`Cache`) lets a
    caller reuse earlier results, keyed by the checkpoint's weight digest and every argument.
    ``only``: measure just the rows with these labels.
    """
    from digr.evaluation.saliency_benchmark import evaluate_saliency
    from digr.models import load_policy
    from digr.models.checkpoint import file_digest, resolve

    specs = default_specs(teacher, digr_student, distill_only_student, settings=settings)
    specs += list(extra_rows or [])
    if only is not None:  # e.g. fill the cache for one slow row per process
        wanted = set(only)
        specs = [s for s in specs if s.label in wanted]
    loaded: dict[str, Any] = {}
    rows = []
    for spec in specs:
        path = resolve(spec.policy)
        cmd = saliency_command(path, spec.method, states=states, seed=seed, moves=moves,
                               batch_size=batch_size, settings=spec.settings, device=device, threads=threads)

        def compute(spec=spec, path=path) -> dict[str, Any]:
            key = str(path)
            if key not in loaded:
                loaded[key] = load_policy(path, task=TASK)
            return evaluate_saliency(loaded[key], spec.method, task=TASK, states=states, seed=seed,
                                     moves=moves, batch_size=batch_size, settings=spec.settings,
                                     device=device)

        if cache is None:
            result = compute()
        else:
            key = {"kind": "saliency", "weights": file_digest(path), "method": spec.method,
                   "settings": spec.settings, "states": states, "seed": seed, "moves": moves,
                   "batch_size": batch_size, "device": device}
            result = cache(f"saliency-{slug(spec.label)}", key, compute)
        rows.append(Table1Row(spec, result, cmd))
    return rows


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


AUC_BOUND_SHOWN = 5e-4
"""AUC error bounds from this size on can change the third decimal: the table prints them."""


def _bound(result: dict) -> str:
    b = result.get("auc_error_bound", 0.0)
    return f" ± {b:.3f}" if b >= AUC_BOUND_SHOWN else ""


def render_table1(rows: list[Table1Row], *,
                  title: str | None = "Table 1: saliency on Red-Fetch-Green",
                  notes: dict[str, str] | None = None) -> str:
    """Markdown: the commands (one per row) followed by the table of ours vs. the paper's numbers.

    ``notes`` (row label -> text) fills a last "reading" column, e.g. a flag that a row's high AUC
    comes from a spike map; rows without a note leave it empty (no column without notes)."""
    if not rows:
        from digr.errors import DigrError

        raise DigrError("Table 1 needs at least one row")
    states = sorted({r.result["states"] for r in rows})
    lines = []
    if title:
        lines += [f"## {title}", ""]
    lines += [
        f"Measured on {', '.join(map(str, states))} benchmark states (state k = reset(seed=SEED+k)); "
        "`important` / `unimportant`: mean per-state sum of saliency over the agent+target tiles "
        "(128 px) / the empty floor tiles; `AUC`: pixel-level ROC AUC important vs unimportant "
        "pooled over all states. Each row is printed by its command (`important`, `unimportant`, "
        "`auc` in the JSON):",
        "",
        "```sh",
    ]
    for r in rows:
        lines += [f"# {r.spec.label}", r.command]
    notes = notes or {}
    lines += ["```", "",
              "| Row | Policy | Method | important (ours) | important (paper) | unimportant (ours) "
              "| unimportant (paper) | AUC (ours) | AUC (paper) |" + (" reading |" if notes else ""),
              "|---|---|---|---:|---:|---:|---:|---:|---:|" + ("---|" if notes else "")]
    for r in rows:
        p, res = r.spec.paper, r.result
        lines.append(
            f"| {r.spec.label} | `{display_path(r.spec.policy)}` | {r.spec.method} "
            f"| {res['important']:.2f} | {_num(p and p.important, '.2f')} "
            f"| {res['unimportant']:.2f} | {_num(p and p.unimportant, '.2f')} "
            f"| {res['auc']:.3f}{_bound(res)} | {_num(p and p.auc, '.3f')} |"
            + (f" {notes.get(r.spec.label, '')} |" if notes else ""))
    bounds = [r.result.get("auc_error_bound", 0.0) for r in rows]
    worst = max(range(len(rows)), key=lambda i: bounds[i])
    lines += ["", f"AUC from {rows[0].result.get('auc_method', 'histogram')} counts; largest bound on "
              f"|AUC - exact AUC| over the rows: {bounds[worst]:.1e} ({rows[worst].spec.label}); a "
              f"bound of {AUC_BOUND_SHOWN:g} or more is printed next to its AUC."]
    return "\n".join(lines) + "\n"


def write_table1(rows: list[Table1Row], path: str | Path = TABLE1_PATH) -> Path:
    """Write :func:`render_table1` to ``path`` atomically (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, render_table1(rows))


__all__ = ["PAPER_TABLE1", "PaperRow", "RowSpec", "Table1Row", "TABLE1_PATH", "default_specs",
           "render_table1", "saliency_command", "table1_rows", "write_table1", "display_path"]
