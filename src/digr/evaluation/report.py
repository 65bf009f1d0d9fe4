"""``digr report DIR``: the paper's evidence for one pipeline run, as Markdown with figures.

The pipeline folder layout is :data:`PIPELINE_LAYOUT`. :func:`write_report` measures whatever is
not cached yet -- Table 1 (section 4.4), ms per map (Figure 1b), task performance and the DIGR
student's training curve (Figure 9), robustness curves (Figure 8, when
:mod:`digr.evaluation.robustness` is importable), saliency panels (Figure 3) and a GIF of one
episode with the DIGR student's saliency overlaid -- and writes ``DIR/report.md``.

Every measurement is cached as one JSON file in ``DIR/eval/`` holding the key it was computed for
(checkpoint weight digests, sizes, seeds, device); a rerun with the same key reuses it, a changed
checkpoint or option recomputes only what it affects. Every number in ``report.md`` sits under the
``digr ...`` command that prints it.
"""

from __future__ import annotations

import json
import platform
import shlex
import textwrap
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from digr.errors import DigrError, check_int
from digr.io import atomic_write_text  # noqa: F401 - also re-exported here for older imports

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
                              "extra_rows": [{{"label": "FLS", "policy": "fls", "method": "fls",
                                              "settings": {{}}, "command": "digr train ..."}}]
                                  more policies/methods for Table 1 and the timing chart
                                  (policy relative to DIR or absolute; settings, command optional)
                              "extra_students": [{{"label": "DIGR + adv", "policy": "digr-adv",
                                                  "command": "digr distill ..."}}]
                                  more students for the performance table and curve and the
                                  robustness curves, next to digr and distill-only (command optional)
                              "commands": {{"teacher": "digr train ...",
                                           "dataset": "digr dataset ...",
                                           "digr": "digr distill ...",
                                           "distill-only": "digr distill --no-igr ..."}}
                                  the commands that made the checkpoints, quoted in the report
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
    """``pipeline.json``'s ``extra_rows``, resolved."""
    students: tuple["ExtraStudent", ...] = ()
    """``pipeline.json``'s ``extra_students``, resolved."""

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


def _extra_students(d: Path, info: dict[str, Any]) -> tuple[ExtraStudent, ...]:
    out = []
    for i, (r, ckpt) in enumerate(_listed_checkpoints(d, info, "extra_students", ("label", "policy"))):
        if r["label"] in ROLES:
            raise DigrError(f"{PIPELINE_JSON}: extra_students[{i}].label must not be a role name ({r['label']!r})")
        out.append(ExtraStudent(r["label"], ckpt, r.get("command")))
    return tuple(out)


def _extra_rows(d: Path, info: dict[str, Any]) -> tuple[ExtraRow, ...]:
    out = []
    for i, (r, ckpt) in enumerate(_listed_checkpoints(d, info, "extra_rows", ("label", "policy", "method"))):
        settings = r.get("settings", {})
        if not isinstance(settings, dict):
            raise DigrError(f"{PIPELINE_JSON}: extra_rows[{i}].settings must be an object")
        out.append(ExtraRow(r["label"], ckpt, r["method"], dict(settings), r.get("command")))
    return tuple(out)


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
    return Pipeline(dir=d, task=task, teacher=paths["teacher"], digr=paths["digr"],
                    distill_only=paths["distill-only"], info=info, extra=_extra_rows(d, info),
                    students=_extra_students(d, info))


# --------------------------------------------------------------------------------------------- cache
class JsonCache:
    """Results cached as ``DIR/eval/NAME.json`` = ``{"key": ..., "result": ...}``.

    ``cache(name, key, compute, files=())`` returns the stored result when the stored key equals
    ``key`` (after a JSON round trip) and every path in ``files`` exists; otherwise it calls
    ``compute()``, stores its result atomically and returns it.
    """

    def __init__(self, directory: str | Path, *, log: Callable[[str], None] | None = None) -> None:
        self.dir = Path(directory)
        self.log = log or (lambda msg: None)
        self.hits: list[str] = []
        self.computed: list[str] = []

    def __call__(self, name: str, key: dict[str, Any], compute: Callable[[], Any],
                 files: Sequence[Path] = ()) -> Any:
        path = self.dir / f"{name}.json"
        key = json.loads(json.dumps(key))
        if path.exists() and all(Path(f).exists() for f in files):
            try:
                stored = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                stored = None
            if isinstance(stored, dict) and stored.get("key") == key and "result" in stored:
                self.hits.append(name)
                return stored["result"]
        self.log(f"computing {name} ...")
        t0 = time.perf_counter()
        result = json.loads(json.dumps(compute()))
        self.log(f"  {name}: {time.perf_counter() - t0:.1f} s")
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"key": key, "result": result,
                                            "seconds": time.perf_counter() - t0}, indent=1) + "\n")
        self.computed.append(name)
        return result


# ------------------------------------------------------------------------------------- performance
def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a trainer's ``metrics.jsonl`` (a line cut short by a kill is skipped)."""
    rows = []
    p = Path(path)
    if not p.exists():
        return rows
    for line in p.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def training_curve(rows: Sequence[Mapping[str, Any]],
                   metric: str = "success_rate") -> tuple[list[int], list[float]]:
    """``(steps, values)`` of ``eval/<metric>`` over a trainer's log rows (evaluated rows only)."""
    key = f"eval/{metric}"
    pts = sorted((int(r["step"]), float(r[key])) for r in rows if r.get(key) is not None)
    return [s for s, _ in pts], [v for _, v in pts]


def metrics_path(run_dir: Path | None) -> Path | None:
    """The trainer's metrics log in ``run_dir`` (``digr.distill.trainer.METRICS_NAME``)."""
    if run_dir is None:
        return None
    try:
        from digr.distill.trainer import METRICS_NAME
    except ImportError:  # the distill package is optional for reading a log
        METRICS_NAME = "metrics.jsonl"
    return run_dir / METRICS_NAME


def performance_kept(teacher: str | Path, digr: str | Path | None = None,
                     distill_only: str | Path | None = None, *, task: str, episodes: int, seed: int = 0,
                     cache: Callable[..., Any] | None = None,
                     extra: Sequence[tuple[str, str | Path]] = ()) -> dict[str, Any]:
    """Figure 9's data: greedy performance of each policy and the students' training curves.

    ``teacher``/``digr``/``distill_only``: checkpoints (a student checkpoint ``RUN/policy`` has its
    log at ``RUN/metrics.jsonl``). Returns ``policies`` (role -> :func:`evaluate_policy` result),
    ``curves`` (role -> ``{"step": [...], "success_rate": [...], "mean_return": [...]}``) and
    ``metric`` (``success_rate``, or ``mean_return`` for tasks without success). ``extra``: more
    students as ``(label, checkpoint)`` pairs, after the roles.
    """
    from digr.envs import get_task
    from digr.evaluation.performance import evaluate_policy
    from digr.models import load_policy
    from digr.models.checkpoint import file_digest, resolve

    spec = get_task(task)
    out: dict[str, Any] = {"metric": "success_rate" if spec.has_success else "mean_return",
                           "policies": {}, "curves": {}, "episodes": episodes, "seed": seed}
    for role, path in (("teacher", teacher), ("digr", digr), ("distill-only", distill_only), *extra):
        if path is None:
            continue
        path = resolve(path)

        def compute(path=path) -> dict[str, Any]:
            return evaluate_policy(load_policy(path, task=spec.name), spec.name, episodes=episodes, seed=seed)

        key = {"kind": "performance", "weights": file_digest(path), "task": spec.name, "episodes": episodes,
               "seed": seed}
        out["policies"][role] = compute() if cache is None else cache(f"performance-{_cache_slug(role)}", key,
                                                                        compute)
        if role != "teacher":
            rows = read_metrics(metrics_path(path.parent if path.name == "policy" else path))
            steps, sr = training_curve(rows, "success_rate")
            steps_r, ret = training_curve(rows, "mean_return")
            out["curves"][role] = {"step": steps, "success_rate": sr, "step_return": steps_r,
                                   "mean_return": ret}
    return out


def _cache_slug(role: str) -> str:
    """Cache-file part for a role: the role itself (the names used since the first reports), or the
    slug of an extra student's label."""
    if role in ROLES:
        return role
    from digr.evaluation.table1 import _slug

    return "student-" + _slug(role)


# ------------------------------------------------------------------------------------------- config
SECTIONS = ("agreement", "table1", "timing", "performance", "robustness", "panels", "gif")
"""Report sections, in the order they are written."""


@dataclass(frozen=True)
class ReportConfig:
    """Sizes and options of ``digr report``; the defaults are the full-size run."""

    states: int = 10_000
    """Saliency benchmark states for Table 1 (paper: 10k)."""
    episodes: int = 100
    """Episodes per policy for the performance table (Figure 9's teacher line)."""
    robustness_episodes: int = 50
    """Episodes per (attack, eps) point (paper Figure 8: 50)."""
    eps: tuple[float, ...] | None = None
    """Robustness eps sweep in the [0, 1] pixel scale; None: ``robustness.DEFAULT_EPS``."""
    attacks: tuple[str, ...] | None = None
    """Attacks to sweep; None: all registered."""
    workers: int = 1
    """Processes for the robustness sweep (see :func:`digr.evaluation.robustness.robustness_sweep`);
    the results, and so the cache keys, do not depend on it."""
    seed: int = 0
    """Seed of benchmark states, episodes and attacks."""
    batch_size: int = 64
    """States per saliency call in the benchmark."""
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Saliency setting overrides per method for Table 1 and the panels (e.g. perturbation stride)."""
    repeats: int = 20
    """Timed calls per method (fewer for slow ones)."""
    timing_max_seconds: float = 8.0
    """About how long the timed calls of one method may take."""
    device: str = "cpu"
    """Device for the saliency benchmark and the timing."""
    threads: int | None = None
    """torch CPU threads used (recorded in the commands); None: torch's default."""
    panel_states: int = 4
    """States in the saliency panels (paper Figure 3: 4)."""
    gif_frames: int = 120
    """Most frames in the episode GIF (the episode's numbers are for the whole episode)."""
    gif_fps: float = 5.0
    agreement_states: int = 100
    """Held-out teacher states for the map-agreement section (:mod:`digr.evaluation.agreement`)."""
    sections: tuple[str, ...] = SECTIONS
    """Sections to include (default: all, in :data:`SECTIONS` order)."""


SPIKE_TOP1 = 0.85
"""A student map with more than this share of its mass in its 1% largest pixels is flagged as a
spike: it may score well on masks (Table 1) while showing a few dots, not the decision's region.
(Perturbation maps are peaked too: on Red-Fetch-Green the teacher's own holds about 0.68 of its
mass in its top 1%; the Table 3 students' single-pixel maps hold 0.87-0.97.)"""
GOAL_CC, GOAL_SHARE = 0.7, 0.8
"""Map agreement a DIGR student should reach (cc, share)."""


def _fmt_eps(eps: float) -> str:
    """``k/255`` when eps is a whole number of grey levels (as the CLI accepts), else the float."""
    k = eps * 255.0
    if abs(k - round(k)) < 1e-9:
        return "0" if round(k) == 0 else f"{int(round(k))}/255"
    return repr(float(eps))


def report_command(directory: Path, cfg: ReportConfig) -> str:
    """The ``digr report`` command line for ``cfg`` (non-default options only)."""
    from digr.evaluation.table1 import display_path

    d = ReportConfig()
    parts = ["digr", "report", display_path(directory)]
    for name, flag in (("states", "--states"), ("episodes", "--episodes"),
                       ("robustness_episodes", "--robustness-episodes"), ("seed", "--seed"),
                       ("batch_size", "--batch-size"), ("repeats", "--repeats"),
                       ("timing_max_seconds", "--max-seconds"), ("device", "--device"),
                       ("threads", "--threads"), ("panel_states", "--panel-states"),
                       ("gif_frames", "--gif-frames")):
        v = getattr(cfg, name)
        if v != getattr(d, name):
            parts += [flag, str(v)]
    if cfg.eps is not None:
        parts += ["--eps", *(_fmt_eps(e) for e in cfg.eps)]
    if cfg.attacks is not None:
        parts += ["--attacks", *cfg.attacks]
    for method, sets in cfg.settings.items():
        for k, v in sets.items():
            parts += ["--setting", f"{method}.{k}={v if isinstance(v, str) else json.dumps(v)}"]
    if tuple(cfg.sections) != SECTIONS:
        parts += ["--sections", *cfg.sections]
    return shlex.join(parts)


# ------------------------------------------------------------------------------------------- report
def _cmd_block(cmds: Sequence[str]) -> list[str]:
    return ["```sh", *cmds, "```", ""]


def _benchmark_obs(task: str, n: int, seed: int) -> np.ndarray:
    """``(n, H, W, C) uint8``: the first ``n`` saliency-benchmark states (any task: reset states)."""
    from digr.envs import get_task, make_env
    from digr.evaluation.saliency_benchmark import MASKED_TASKS, benchmark_states

    if task in MASKED_TASKS:
        return next(iter(benchmark_states(task, states=n, seed=seed, batch_size=n))).obs
    env = make_env(get_task(task))
    try:
        return np.stack([env.reset(seed=seed + k)[0] for k in range(n)])
    finally:
        env.close()


def _episode_frames(student, task: str, *, seed: int,
                    max_frames: int) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Greedy episode ``reset(seed=seed)`` of ``student`` with its eq. 2 vanilla map on each frame.

    The same episode as episode 0 of ``evaluate_policy(student, task, episodes=1, seed=seed)``.
    """
    import torch

    from digr.envs import get_task, make_env
    from digr.evaluation.figures import overlay
    from digr.models.cnn import to_tensor
    from digr.saliency import vanilla_gradient

    spec = get_task(task)
    env = make_env(spec)
    frames: list[np.ndarray] = []
    ret, length, success = 0.0, 0, False

    def add_frame(obs: np.ndarray) -> torch.Tensor:
        x = to_tensor(np.asarray(obs)[None], spec.obs_shape)
        if len(frames) < max_frames:
            frames.append(overlay(obs, vanilla_gradient(student, x)[0].numpy()))
        return x

    try:
        obs, _ = env.reset(seed=seed)
        while True:
            x = add_frame(obs)
            with torch.no_grad():
                action = int(student(x).argmax(-1)[0])
            obs, r, term, trunc, info = env.step(action)
            ret += float(r)
            length += 1
            if term or trunc:
                success = bool(info.get("success", False))
                break
        add_frame(obs)  # the final state, after the last action
    finally:
        env.close()
    return frames, {"return": ret, "length": length, "success": success if spec.has_success else None,
                    "frames": len(frames)}


class _Report:
    """State shared by the sections of one report: pipeline, options, cache, loaded nets, output."""

    def __init__(self, pipe: Pipeline, cfg: ReportConfig, log: Callable[[str], None]) -> None:
        from digr.envs import get_task
        from digr.evaluation.table1 import display_path
        from digr.models.checkpoint import file_digest

        self.pipe, self.cfg = pipe, cfg
        self.spec = get_task(pipe.task)
        self.cache = JsonCache(pipe.dir / EVAL_DIR, log=log)
        self.figdir = pipe.dir / FIGURES_DIR
        self.roles = {r: pipe.policy(r) for r in ROLES if pipe.policy(r) is not None}
        self.roles.update({s.label: s.policy for s in pipe.students})
        self.digests = {r: file_digest(p) for r, p in self.roles.items()}
        self.paths = {r: display_path(p) for r, p in self.roles.items()}
        self.metric = "success_rate" if self.spec.has_success else "mean_return"
        self.md: list[str] = []
        self.summary: dict[str, Any] = {"report": str(pipe.dir / REPORT_NAME), "task": self.spec.name,
                                        "sections": {}}
        self._nets: dict[str, Any] = {}
        for role in self.roles:  # every checkpoint must fit the task before any output is written
            self.net(role)

    def net(self, role: str):
        """The (CPU) policy of ``role``, loaded once."""
        from digr.models import load_policy

        if role not in self._nets:
            self._nets[role] = load_policy(self.roles[role], task=self.spec.name)
        return self._nets[role]

    def skip(self, section: str, why: str) -> None:
        self.summary["sections"][section] = f"skipped: {why}"
        self.md.extend([f"*Skipped: {why}.*", ""])

    def done(self, section: str) -> None:
        self.summary["sections"][section] = "written"

    def command(self, *parts: str) -> str:
        return shlex.join(["digr", *parts])


def _header(rep: _Report) -> None:
    import torch

    from digr import __version__

    cfg, pipe = rep.cfg, rep.pipe
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rep.md += [
        f"# DIGR report: {rep.spec.name}", "",
        "Regenerate this report (results cached in `eval/` are reused while checkpoints and options are "
        "unchanged; delete `eval/` to measure everything again):", "",
        *_cmd_block([report_command(pipe.dir, cfg)]),
        f"Commands below run from `{Path.cwd()}`. digr {__version__}, torch {torch.__version__}, "
        f"{platform.platform()}, torch threads {torch.get_num_threads()}; written {when}.", "",
        "| Role | Checkpoint | Weights sha256 |", "|---|---|---|",
        *[f"| {r} | `{rep.paths[r]}` | `{rep.digests[r][:16]}` |" for r in rep.roles],
    ]
    missing = [r for r in ROLES if r not in rep.roles]
    if missing:
        rep.md += ["", f"Not in this pipeline folder: {', '.join(missing)} (their rows and curves are left "
                   "out)."]
    commands = pipe.info.get("commands")
    extra_cmds = {r.label: r.command for r in (*pipe.extra, *pipe.students) if r.command}
    if isinstance(commands, dict) and commands or extra_cmds:
        commands = {**(commands if isinstance(commands, dict) else {}), **extra_cmds}
        rep.md += ["", "The checkpoints were made by:", "",
                   *_cmd_block([f"# {k}\n{v}" for k, v in commands.items()])]
    rep.md.append("")


def student_recipe(run_dir: Path | None) -> str:
    """The recipe a student run folder records (``config.json`` -> ``distill.recipe``); for runs made
    before recipes existed, ``"paper"`` or, if they used an extension, ``"paper + extensions"``;
    ``"—"`` when there is no readable run config."""
    if run_dir is None or not (run_dir / "config.json").is_file():
        return "—"
    try:
        cfg = json.loads((run_dir / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "—"
    d = cfg.get("distill") if isinstance(cfg, dict) else None
    if not isinstance(d, dict):
        return "—"
    recipe = d.get("recipe")
    if recipe is None:  # a run made before recipes: the paper's, unless it used an extension
        plain = (d.get("igr_normalizer", "max") == "max" and not d.get("adv_eps") and not d.get("match_weight")
                 and not d.get("margin_l1_weight") and d.get("student_input_pool", 1) == 1
                 and d.get("student_fls") is None and "init_sha256" not in cfg)
        recipe = "paper" if plain else "paper + extensions"
    recipe = str(recipe)
    return recipe if d.get("use_igr", True) else f"{recipe}, --no-igr"


def agreement_reading(a: Mapping[str, Any]) -> str:
    """One-word reading of an agreement row for the table: spike / meets goal / below goal."""
    if a["top1"] > SPIKE_TOP1:
        return f"**spike** (top1 > {SPIKE_TOP1})"
    if a["cc"] >= GOAL_CC and a["share"] >= GOAL_SHARE:
        return "meets goal"
    return "below goal"


def _agreement(rep: _Report) -> None:
    from digr.evaluation.agreement import map_agreement

    cfg, pipe = rep.cfg, rep.pipe
    rep.md += ["## Map agreement with the teacher's perturbation map (no masks)", ""]
    students = [r for r in rep.roles if r != "teacher"]
    if not students:
        rep.skip("agreement", "no student in this pipeline folder")
        return
    base = {"states": cfg.agreement_states, "seed": cfg.seed, "radius": rep.spec.perturbation_radius,
            "teacher": rep.digests["teacher"]}

    def measure(role: str) -> dict[str, Any]:
        # the held-out states and reference maps are kept in eval/ (npz) and shared by every role
        nets = {} if role in ("reference", "teacher_vg") else {role: rep.net(role)}
        res = map_agreement(nets, rep.net("teacher"), rep.spec.name, states=cfg.agreement_states,
                            seed=cfg.seed, cache=rep.pipe.dir / EVAL_DIR)
        return res[role].as_dict()

    res = {"reference": rep.cache("agreement-reference", base, lambda: measure("reference")),
           "teacher_vg": rep.cache("agreement-teacher", base, lambda: measure("teacher_vg"))}
    for r in students:
        res[r] = rep.cache(f"agreement-{_cache_slug(r)}", {**base, "policy": rep.digests[r]},
                           lambda r=r: measure(r))
    cmd = rep.command("evaluate", "agreement", "--teacher", rep.paths["teacher"],
                      *[x for r in students for x in ("--policy", rep.paths[r])], "--task", rep.spec.name,
                      "--states", str(cfg.agreement_states), "--seed", str(cfg.seed), "--json")
    rep.md += [f"On {cfg.agreement_states} held-out states from the teacher's own sampled rollouts (none of "
               "them in the DIGR dataset), each policy's vanilla-gradient map is compared with the teacher's "
               f"Gaussian-blur perturbation map (radius {rep.spec.perturbation_radius}): **cc** is their "
               "Pearson correlation, **share** the policy's gradient mass on pixels where the perturbation "
               "map exceeds 0.1, **top1** its mass in its 1% largest pixels (a spike scores near 1). "
               f"Means with 95% intervals; goal: cc >= {GOAL_CC}, share >= {GOAL_SHARE}; the teacher's own "
               "gradient is the baseline. The first row scores the perturbation map against itself: its "
               "share is below 1 where the map spreads faint mass under the 0.1 threshold, which a student "
               "must leave out to score higher.", "", *_cmd_block([cmd]),
               "| Policy | recipe | cc | share | top1 | reading |", "|---|---|---:|---:|---:|---|"]
    labels = {"reference": "perturbation map itself", "teacher_vg": "teacher (own VG, baseline)"}
    for r, a in res.items():
        recipe = "—" if r in labels else student_recipe(pipe.run_dir(r))
        reading = {"reference": "reference", "teacher_vg": "baseline"}.get(r) or agreement_reading(a)
        label = labels.get(r, r)
        rep.md.append(f"| {label} | {recipe} | {a['cc']:.3f} ± {a['cc_ci95']:.3f} "
                      f"| {a['share']:.3f} ± {a['share_ci95']:.3f} | {a['top1']:.3f} | {reading} |")
    rep.md.append("")
    rep.done("agreement")
    rep.summary["agreement"] = res


def _table1_notes(rep: _Report, rows) -> dict[str, str]:
    """Flags for Table 1's vanilla-gradient rows of students whose map agreement (measured by the
    agreement section of this report, when written) shows a spike or misses the goal: a high AUC
    on masks can come from a few bright pixels."""
    agreement = rep.summary.get("agreement") or {}
    by_policy = {Path(p).resolve(): r for r, p in rep.roles.items()}
    notes = {}
    for row in rows:
        role = by_policy.get(Path(row.spec.policy).resolve())
        a = agreement.get(role) if role not in (None, "teacher") else None
        if a is not None and row.spec.method == "vanilla":
            notes[row.spec.label] = (f"{agreement_reading(a)}: map agreement cc {a['cc']:.2f}, "
                                     f"share {a['share']:.2f}, top1 {a['top1']:.2f}")
    return notes


def _table1(rep: _Report) -> None:
    from digr.evaluation.saliency_benchmark import MASKED_TASKS
    from digr.evaluation.table1 import render_table1, table1_rows, write_table1

    cfg, pipe = rep.cfg, rep.pipe
    rep.md += ["## Saliency quality on ground-truth masks (paper Table 1)", ""]
    if rep.spec.name not in MASKED_TASKS:
        rep.skip("table1", f"only {', '.join(MASKED_TASKS)} has ground-truth masks")
        return
    from digr.evaluation.table1 import RowSpec

    extra = [RowSpec(r.label, r.policy, r.method, None, dict(r.settings)) for r in pipe.extra]
    rows = table1_rows(pipe.teacher, pipe.digr, pipe.distill_only, states=cfg.states, seed=cfg.seed,
                       batch_size=cfg.batch_size, settings=cfg.settings, device=cfg.device,
                       threads=cfg.threads, cache=rep.cache, extra_rows=extra)
    write_table1(rows, pipe.dir / TABLE1_NAME)
    rep.md += [render_table1(rows, title=None, notes=_table1_notes(rep, rows))]
    rep.done("table1")
    rep.summary["table1"] = {r.spec.label: {k: r.result[k] for k in ("important", "unimportant", "auc")}
                             for r in rows}


def _timing(rep: _Report) -> None:
    import torch

    from digr.evaluation import figures
    from digr.evaluation.timing import STUDENT_KEY, time_saliency
    from digr.models import load_policy

    cfg, spec, roles = rep.cfg, rep.spec, rep.roles
    rep.md += ["## Time per saliency map (paper Figure 1b)", ""]
    cmd = ["evaluate", "timing", "--policy", rep.paths["teacher"], "--task", spec.name]
    if "digr" in roles:
        cmd += ["--student", rep.paths["digr"]]
    cmd += ["--repeats", str(cfg.repeats), "--max-seconds", str(cfg.timing_max_seconds),
            "--seed", str(cfg.seed)]
    if cfg.device != "cpu":
        cmd += ["--device", cfg.device]
    # The roles' weights only: an extra student is not timed here and must not void the cache.
    key = {"kind": "timing", "weights": {r: d for r, d in rep.digests.items() if r in ROLES},
           "repeats": cfg.repeats,
           "max_seconds": cfg.timing_max_seconds, "device": cfg.device, "threads": torch.get_num_threads(),
           "seed": cfg.seed, "host": platform.node()}

    def compute() -> dict[str, Any]:
        # fresh copies: time_saliency moves its nets to cfg.device, the other sections stay on the CPU
        student = load_policy(roles["digr"], task=spec.name) if "digr" in roles else None
        return time_saliency(load_policy(roles["teacher"], task=spec.name), spec.name, student=student,
                             repeats=cfg.repeats, device=cfg.device, seed=cfg.seed,
                             max_seconds=cfg.timing_max_seconds)

    t = rep.cache("timing", key, compute)
    cmd += ["--threads", str(t["torch_threads"]), "--json"]  # explicit: the CLI's default is 1
    extra = _extra_timing(rep)
    if extra:
        t = {**t, "extra": extra}
    figures.timing_chart(t, rep.figdir / "timing.png")
    ref = t.get(STUDENT_KEY, t["methods"].get("vanilla"))
    ref_name = "DIGR VG" if STUDENT_KEY in t else "teacher VG"
    rep.md += [f"Batch 1, one observation (`reset(seed={cfg.seed})`), {t['machine']}, device "
               f"`{t['device']}`, {t['torch_threads']} torch thread(s); median / p10 / p90 of `repeats` "
               "timed calls after warm-up (timings vary from run to run):", "",
               *_cmd_block([rep.command(*cmd)]),
               f"| Map | median ms | p10 ms | p90 ms | repeats | x {ref_name} |",
               "|---|---:|---:|---:|---:|---:|"]
    rows = [(f"{n} (teacher)", v) for n, v in t["methods"].items()]
    if STUDENT_KEY in t:
        rows.append(("**DIGR: vanilla (student)**", t[STUDENT_KEY]))
    rows += [(label, v) for label, v in extra.items()]
    rows.append(("forward pass only (teacher)", t["forward"]))
    for n, v in rows:
        rep.md.append(f"| {n} | {v['median_ms']:.3f} | {v['p10_ms']:.3f} | {v['p90_ms']:.3f} "
                      f"| {v['repeats']} | {v['median_ms'] / ref['median_ms']:.1f} |")
    if extra:
        rep.md += ["", "Extra rows (from `pipeline.json`'s `extra_rows`), each also against a plain forward "
                   "pass of its own policy, timed the same way in the same run:", "",
                   "| Map | median ms | own forward ms | map / forward |", "|---|---:|---:|---:|",
                   *[f"| {label} | {v['median_ms']:.3f} | {v['forward']['median_ms']:.3f} "
                     f"| {v['median_ms'] / v['forward']['median_ms']:.2f} |" for label, v in extra.items()]]
    rep.md += ["", "![timing](figures/timing.png)", ""]
    rep.done("timing")
    rep.summary["timing_ms"] = {n: v["median_ms"] for n, v in t["methods"].items()}
    if STUDENT_KEY in t:
        rep.summary["timing_ms"][STUDENT_KEY] = t[STUDENT_KEY]["median_ms"]


def _extra_timing(rep: _Report) -> dict[str, Any]:
    """ms per map of each extra row's method on its policy, and of that policy's forward pass."""
    import torch

    from digr.evaluation.table1 import _slug
    from digr.evaluation.timing import time_saliency
    from digr.models import load_policy
    from digr.models.checkpoint import file_digest
    from digr.saliency import canonical_name

    cfg = rep.cfg
    out: dict[str, Any] = {}
    for row in rep.pipe.extra:
        key = {"kind": "timing-extra", "weights": file_digest(row.policy), "method": row.method,
               "settings": row.settings, "repeats": cfg.repeats, "max_seconds": cfg.timing_max_seconds,
               "device": cfg.device, "threads": torch.get_num_threads(), "seed": cfg.seed,
               "host": platform.node()}

        def compute(row=row) -> dict[str, Any]:
            name = canonical_name(row.method)
            t = time_saliency(load_policy(row.policy, task=rep.spec.name), rep.spec.name, methods=[name],
                              settings={name: row.settings}, repeats=cfg.repeats, device=cfg.device,
                              seed=cfg.seed, max_seconds=cfg.timing_max_seconds)
            return {**t["methods"][name], "forward": t["forward"]}

        out[row.label] = rep.cache(f"timing-{_slug(row.label)}", key, compute)
    return out


def _performance(rep: _Report) -> None:
    from digr.evaluation import figures
    from digr.evaluation.table1 import display_path

    cfg, pipe, metric = rep.cfg, rep.pipe, rep.metric
    rep.md += ["## Task performance kept (paper Figure 9)", ""]
    perf = performance_kept(pipe.teacher, pipe.digr, pipe.distill_only, task=rep.spec.name,
                            episodes=cfg.episodes, seed=cfg.seed, cache=rep.cache,
                            extra=[(st.label, st.policy) for st in pipe.students])
    cmds = [rep.command("evaluate", "performance", "--policy", rep.paths[r], "--task", rep.spec.name,
                        "--episodes", str(cfg.episodes), "--seed", str(cfg.seed), "--json")
            for r in perf["policies"]]
    def chance() -> dict[str, Any]:
        from digr.evaluation.performance import evaluate_policy, uniform_policy

        return evaluate_policy(uniform_policy(rep.net("teacher").config), rep.spec.name, episodes=cfg.episodes,
                               seed=cfg.seed, deterministic=False)

    rows = {**perf["policies"], "uniform random actions (chance)": rep.cache(
        "performance-chance", {"task": rep.spec.name, "episodes": cfg.episodes, "seed": cfg.seed}, chance)}
    rep.md += [f"Greedy actions, episode k resets with seed {cfg.seed}+k; the last row is the chance level "
               "(actions drawn uniformly at random):", "", *_cmd_block(cmds),
               "| Policy | success_rate | mean_return | std_return | mean_length | episodes |",
               "|---|---:|---:|---:|---:|---:|"]
    for r, v in rows.items():
        sr = "—" if v["success_rate"] is None else f"{v['success_rate']:.3f}"
        rep.md.append(f"| {r} | {sr} | {v['mean_return']:.3f} | {v['std_return']:.3f} "
                      f"| {v['mean_length']:.1f} | {v['episodes']} |")
    step_key = "step" if metric == "success_rate" else "step_return"
    curves = {r: (c[step_key], c[metric]) for r, c in perf["curves"].items()}
    rep.md.append("")
    if any(len(steps) for steps, _ in curves.values()):
        figures.performance_chart(curves, perf["policies"]["teacher"][metric], rep.figdir / "performance.png",
                                  metric=metric)
        logs = ", ".join(f"`{display_path(metrics_path(pipe.run_dir(r)))}`" for r in curves if curves[r][0])
        rep.md += [f"Students' `eval/{metric}` over training, read from {logs} (written by `digr distill` "
                   f"during training, with its own evaluation episodes); the dotted line is the teacher's "
                   f"{metric} from the table above.", "", "![performance](figures/performance.png)", ""]
    else:
        rep.md += ["*No training curve: the students' metrics logs have no evaluated rows.*", ""]
    rep.done("performance")
    rep.summary["performance"] = {r: v[metric] for r, v in perf["policies"].items()}


def _robustness(rep: _Report) -> None:
    from digr.evaluation import figures

    cfg, spec, metric = rep.cfg, rep.spec, rep.metric
    rep.md += ["## Robustness to observation attacks (paper Figure 8)", ""]
    try:  # owned by the attacks work; the report works without it
        from digr.attacks import ATTACK_NAMES, resolve_attack_name
        from digr.evaluation import robustness as rob
    except ImportError as exc:
        rep.skip("robustness", f"digr.evaluation.robustness is not available ({exc})")
        return
    attacks = [resolve_attack_name(a) for a in (cfg.attacks or ATTACK_NAMES)]
    eps_list = list(rob.DEFAULT_EPS if cfg.eps is None else cfg.eps)
    sweeps: dict[str, list[dict[str, Any]]] = {}
    for r in rep.roles:
        key = {"kind": "robustness", "weights": rep.digests[r], "task": spec.name, "attacks": attacks,
               "eps": eps_list, "episodes": cfg.robustness_episodes, "seed": cfg.seed}
        sweeps[r] = rep.cache(f"robustness-{_cache_slug(r)}", key, lambda r=r: rob.robustness_sweep(
            rep.net(r), spec.name, attacks=attacks, eps_values=eps_list, episodes=cfg.robustness_episodes,
            seed=cfg.seed, workers=cfg.workers))
    figures.robustness_chart(sweeps, rep.figdir / "robustness.png", metric=metric)
    rep.md += [f"Every observation attacked inside the L-inf eps-ball (eps in grey levels of 255), greedy "
               f"actions, {cfg.robustness_episodes} episodes per point (episode k resets with seed "
               f"{cfg.seed}+k). `{metric}` per point; each table is printed by the loops above it (one JSON "
               "line per eps, one loop per column).", "", "![robustness](figures/robustness.png)", ""]
    eps_args = " ".join(_fmt_eps(e) for e in eps_list)
    for attack in attacks:
        loops = [f"for EPS in {eps_args}; do\n  "
                 + rep.command("evaluate", "robustness", "--policy", rep.paths[r], "--task", spec.name,
                               "--attack", attack)
                 + ' --eps "$EPS" '
                 + shlex.join(["--episodes", str(cfg.robustness_episodes), "--seed", str(cfg.seed), "--json"])
                 + "\ndone" for r in rep.roles]
        rep.md += [f"### {attack}", "", *_cmd_block(loops),
                   "| eps | " + " | ".join(rep.roles) + " |", "|---:|" + "---:|" * len(rep.roles)]
        for e in eps_list:
            cells = []
            for r in rep.roles:
                hit = [x for x in sweeps[r] if x["attack"] == attack and abs(x["eps"] - e) < 1e-12]
                cells.append(f"{hit[0][metric]:.3f}" if hit else "—")
            rep.md.append(f"| {_fmt_eps(e)} | " + " | ".join(cells) + " |")
        rep.md.append("")
    rep.done("robustness")
    rep.summary["robustness"] = {
        r: [{"attack": x["attack"], "eps": x["eps"], metric: x[metric]} for x in rows]
        for r, rows in sweeps.items()}


def _panels(rep: _Report) -> None:
    from digr.evaluation import figures
    from digr.evaluation.saliency_benchmark import build_method
    from digr.models.cnn import to_tensor

    cfg, spec = rep.cfg, rep.spec
    rep.md += ["## Saliency maps (paper Figure 3)", ""]
    n = cfg.panel_states
    png = rep.figdir / "saliency_panels.png"
    cols = [("GB perturbation\n(teacher)", "teacher", "perturbation"), ("VG (teacher)", "teacher", "vanilla")]
    if "digr" in rep.roles:
        cols.append(("VG (DIGR)", "digr", "vanilla"))
    # One more column per extra student: extended students are judged by their maps too.
    cols += [(textwrap.fill(f"VG ({s.label})", 22), s.label, "vanilla") for s in rep.pipe.students]
    key = {"kind": "panels", "weights": {r: rep.digests[r] for _, r, _ in cols}, "states": n,
           "seed": cfg.seed, "settings": {m: cfg.settings.get(m, {}) for _, _, m in cols},
           "columns": [c[0] for c in cols]}

    def compute() -> dict[str, Any]:
        obs = _benchmark_obs(spec.name, n, cfg.seed)
        x = to_tensor(obs, spec.obs_shape)
        maps = [(title, build_method(rep.net(r), m, task=spec.name, settings=cfg.settings.get(m))
                 .attribute(x).numpy()) for title, r, m in cols]
        figures.saliency_panels(obs, maps, png)
        return {"states": list(range(n)), "seed": cfg.seed, "file": str(png.relative_to(rep.pipe.dir))}

    rep.cache("panels", key, compute, files=[png])
    names = ", ".join(c[0].replace("\n", " ") for c in cols)
    rep.md += [f"Benchmark states 0..{n - 1} (`reset(seed={cfg.seed}+k)`), each map divided by its max; "
               f"columns: {names}.", "", "![saliency panels](figures/saliency_panels.png)", ""]
    rep.done("panels")


def _gif(rep: _Report) -> None:
    from digr.evaluation import figures

    cfg, spec = rep.cfg, rep.spec
    rep.md += ["## One episode with the DIGR student's saliency", ""]
    if "digr" not in rep.roles:
        rep.skip("gif", "no DIGR student in this pipeline folder")
        return
    gif = rep.figdir / "digr_episode.gif"
    key = {"kind": "gif", "weights": rep.digests["digr"], "task": spec.name, "seed": cfg.seed,
           "max_frames": cfg.gif_frames, "fps": cfg.gif_fps}

    def compute() -> dict[str, Any]:
        frames, stats = _episode_frames(rep.net("digr"), spec.name, seed=cfg.seed, max_frames=cfg.gif_frames)
        figures.write_gif(frames, gif, fps=cfg.gif_fps)
        return stats

    ep = rep.cache("gif", key, compute, files=[gif])
    cut = f", first {ep['frames']} frames shown" if ep["frames"] < ep["length"] + 1 else ""
    sr = "" if ep["success"] is None else f", success {str(ep['success']).lower()}"
    cmd = rep.command("evaluate", "performance", "--policy", rep.paths["digr"], "--task", spec.name,
                      "--episodes", "1", "--seed", str(cfg.seed), "--json")
    rep.md += [f"The DIGR student acting greedily in episode `reset(seed={cfg.seed})`, its eq. 2 "
               f"vanilla-gradient map overlaid on every frame ({cfg.gif_fps:g} fps{cut}). The same episode "
               "is episode 0 of:", "", *_cmd_block([cmd]),
               f"(return {ep['return']:.3f}, length {ep['length']}{sr}.)", "",
               "![DIGR episode](figures/digr_episode.gif)", ""]
    rep.done("gif")


SECTION_WRITERS: dict[str, Callable[[_Report], None]] = {
    "agreement": _agreement, "table1": _table1, "timing": _timing, "performance": _performance, "robustness": _robustness,
    "panels": _panels, "gif": _gif,
}


def _check_config(cfg: ReportConfig) -> None:
    unknown = [s for s in cfg.sections if s not in SECTIONS]
    if unknown:
        raise DigrError(f"unknown report section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    for name in ("states", "episodes", "robustness_episodes", "batch_size", "repeats", "panel_states",
                 "gif_frames", "agreement_states"):
        check_int(name, getattr(cfg, name))
    check_int("seed", cfg.seed, minimum=0)
    if not cfg.timing_max_seconds > 0 or not cfg.gif_fps > 0:
        raise DigrError("timing_max_seconds and gif_fps must be > 0")


def write_report(directory: str | Path, config: ReportConfig | None = None, *,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure what is missing and write ``DIR/report.md`` (+ ``table1.md``, ``figures/``, ``eval/``).

    Sections are written in the order of :data:`SECTIONS` (those in ``config.sections``). Returns a
    summary: ``report`` (path), ``sections`` (``written`` / ``skipped: why``), ``cached`` and
    ``computed`` (cache entry names), the headline numbers and the ``config``.
    """
    cfg = config or ReportConfig()
    _check_config(cfg)
    rep = _Report(load_pipeline(directory), cfg, log or (lambda msg: None))
    _header(rep)
    for name in SECTIONS:
        if name in cfg.sections:
            SECTION_WRITERS[name](rep)
    rep.pipe.dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(rep.pipe.dir / REPORT_NAME, "\n".join(rep.md).rstrip() + "\n")
    rep.summary["cached"] = rep.cache.hits
    rep.summary["computed"] = rep.cache.computed
    rep.summary["config"] = json.loads(json.dumps(asdict(cfg)))
    return rep.summary


__all__ = ["PIPELINE_LAYOUT", "PIPELINE_JSON", "ROLES", "ROLE_DIRS", "EVAL_DIR", "FIGURES_DIR", "REPORT_NAME",
           "SECTIONS", "JsonCache", "Pipeline", "ReportConfig", "load_pipeline", "performance_kept",
           "read_metrics", "training_curve", "write_report", "report_command"]
