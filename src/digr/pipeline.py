"""The main job: teacher -> saliency dataset -> DIGR and distill-only students -> report.

One folder holds one pipeline run (:data:`LAYOUT`). Every stage writes its output through a
resumable library call, so rerunning the same command skips finished stages and continues an
interrupted one where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

from digr import __version__
from digr.distill.config import DEFAULT_RECIPE
from digr.errors import DigrError
from digr.io import atomic_write_json
from digr.parallel import ParallelConfig

LAYOUT = {
    "pipeline.json": "task, preset, seed, teacher path, per-stage wall times",
    "teacher/": "teacher training run (only when no --teacher is given)",
    "dataset/": "the teacher's perturbation-saliency dataset (digr dataset)",
    "digr/": "DIGR student run (digr distill)",
    "distill-only/": "policy-distillation-only student run (digr distill --no-igr)",
    "eval/": "cached evaluation results (JSON) used by the report",
    "report.md": "the report with figures (digr report)",
}
"""What a pipeline folder holds."""


@dataclass(frozen=True)
class PipelineConfig:
    """Budgets of one pipeline run. ``full`` uses the paper's sizes; ``demo`` fits 15 minutes."""

    recipe: str = DEFAULT_RECIPE
    """The DIGR student's named recipe (:func:`digr.distill.config.recipe_settings`: ``smooth``,
    the default, ``relu`` or ``paper``); the distill-only baseline is always the paper's KL alone."""
    teacher_timesteps: int | None = None
    """PPO steps when the teacher is trained here (None: the task's Table 2 value)."""
    teacher_stop_at_success: float | None = 0.99
    """Stop teacher training once the running success rate reaches this."""
    dataset_size: int | None = None
    """States in the saliency dataset (None: Table 3)."""
    dataset_stride: int | None = None
    """Pixel stride of the dataset's perturbation centres (None: 1, the full-resolution map).
    The map's cost falls with its square (one forward pass per centre); stride 2 is a map of
    half the resolution, repeated over each 2x2 block."""
    student_steps: int | None = None
    """Updates for each student (None: the distill config's default)."""
    student_eval_every: int | None = None
    """Updates between the students' success-rate evaluations (None: default)."""
    student_eval_episodes: int | None = None
    """Episodes per student evaluation during training (None: default)."""
    report_states: int | None = None
    """Saliency-benchmark states in the report (None: the report's default, 10k)."""
    report_stride: int | None = None
    """Pixel stride of the perturbation and SARFA rows of the report's Table 1 and panels (None:
    1). The committed Red-Fetch-Green report uses 2."""
    agreement_states: int | None = None
    """Held-out states for the report's map-agreement section (None: the report's default, 100)."""
    report_episodes: int | None = None
    """Episodes for the performance figures (None: the report's default)."""
    robustness_episodes: int | None = None
    """Episodes per robustness point (None: the report's default, 50)."""
    robustness_eps: tuple[float, ...] | None = None
    """Robustness eps sweep (None: the report's default)."""
    robustness_attacks: tuple[str, ...] | None = None
    """Attacks in the robustness sweep (None: all four)."""
    report_sections: tuple[str, ...] | None = None
    """Report sections to write (None: all)."""
    threads: int | None = None
    """torch CPU threads for the report's measurements (None: torch's default)."""
    seed: int = 0
    """Seed of every stage."""


PRESETS: dict[str, PipelineConfig] = {
    "full": PipelineConfig(),
    # The demo shows the default recipe working in under 15 minutes on an idle 2-core machine
    # (one torch thread, so it does not collapse under load): 1,000 updates of the warm-started
    # smooth student make its map agree (cc 0.77, share 0.74-0.75 on 50 held-out states, success
    # 1.00); the dataset's and the report's perturbation maps at stride 2 cost a quarter of the
    # exact ones, and the student trained on stride-2 maps agrees as well with the exact map
    # (results/red-fetch-green/README.md, "the demo").
    "demo": PipelineConfig(dataset_size=256, dataset_stride=2, student_steps=1000, student_eval_every=1000,
                           student_eval_episodes=20, report_states=100, report_stride=2, agreement_states=50,
                           report_episodes=50, robustness_episodes=10, robustness_eps=(0.0, 4 / 255)),
}
"""Named budgets for ``--preset``."""


class Pipeline:
    """A resumable pipeline run in ``out`` (see :data:`LAYOUT`)."""

    def __init__(self, task: str, out: str | Path, *, teacher: str | Path | None = None,
                 config: PipelineConfig = PRESETS["full"], preset: str = "custom",
                 log: Callable[[str], None] = print, show_progress: bool = True,
                 parallel: ParallelConfig | None = None) -> None:
        from digr.distill.config import check_recipe
        from digr.envs import get_task

        check_recipe(config.recipe)  # now, not after the teacher and the dataset
        self.parallel = parallel or ParallelConfig()  # where the dataset's shards run (default: serially)
        self.spec = get_task(task)
        self.out = Path(out)
        self.config = config
        self.preset = preset
        self.log = log
        self.show_progress = show_progress
        self.state_path = self.out / "pipeline.json"
        self.state = self._load_state(teacher)

    def _load_state(self, teacher: str | Path | None) -> dict[str, Any]:
        if self.state_path.exists():
            try:
                state = json.loads(self.state_path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DigrError(f"{self.state_path} is corrupt ({exc})") from None
            if (not isinstance(state, dict) or not isinstance(state.get("teacher"), str)
                    or not isinstance(state.get("stages"), dict)):
                raise DigrError(f"{self.state_path} is not a pipeline state (task, teacher, stages); "
                                "use another --out")
            if state.get("task") != self.spec.name:
                raise DigrError(f"{self.out} holds a pipeline for task {state.get('task')!r}, "
                                f"not {self.spec.name!r}; use another --out")
            from digr.models.checkpoint import resolve

            if teacher is not None and Path(state["teacher"]).resolve() != resolve(teacher).resolve():
                raise DigrError(f"{self.out} was made with teacher {state['teacher']}, not {teacher}; "
                                "use another --out")
            return state
        from digr.io import claim_folder

        claim_folder(self.out, "pipeline")
        if teacher is not None:
            from digr.models.checkpoint import load_policy, resolve

            load_policy(teacher, task=self.spec.name)  # fail now, not after an hour
            teacher_path = str(resolve(teacher).resolve())  # absolute: pipeline.json paths are DIR-relative
        else:
            teacher_path = "teacher"
        return {"digr_version": __version__, "task": self.spec.name, "preset": self.preset,
                "config": asdict(self.config), "teacher": teacher_path,
                "teacher_trained_here": teacher is None, "stages": {}}

    @property
    def teacher_path(self) -> Path:
        """The teacher checkpoint (``pipeline.json`` stores it relative to the folder or absolute)."""
        return self.out / self.state["teacher"]  # an absolute path stays absolute

    def _save_state(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.state_path, self.state)

    def _stage(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        done = self.state["stages"].get(name)
        if done and done.get("complete"):
            self.log(f"[{name}] done already ({done.get('wall_s', 0):.0f} s), skipped")
            return done
        self.log(f"[{name}] running")
        t0 = time.time()
        result = fn()
        prev = (done or {}).get("wall_s", 0.0)
        rec = {"complete": True, "wall_s": round(prev + time.time() - t0, 1), "result": result}
        self.state["stages"][name] = rec
        self._save_state()
        self.log(f"[{name}] finished in {rec['wall_s']:.0f} s")
        return rec

    # -- stages -------------------------------------------------------------------------------
    def teacher(self) -> dict[str, Any]:
        from digr.rl.config import PPOConfig
        from digr.rl.train import train_teacher

        if not self.state["teacher_trained_here"]:
            return {"teacher": str(self.teacher_path), "trained": False}
        cfg = PPOConfig.for_task(self.spec, total_timesteps=self.config.teacher_timesteps,
                                 stop_at_success=self.config.teacher_stop_at_success, seed=self.config.seed)
        stats = train_teacher(self.spec.name, self.out / "teacher", cfg, show_progress=self.show_progress)
        return {"teacher": str(self.teacher_path), "trained": True, "stats": stats}

    def dataset(self) -> dict[str, Any]:
        from digr.distill.config import DatasetConfig
        from digr.distill.dataset import build_dataset

        cfg = DatasetConfig.for_task(self.spec, size=self.config.dataset_size, stride=self.config.dataset_stride,
                                     seed=self.config.seed)
        manifest = build_dataset(self.teacher_path, self.spec.name, self.out / "dataset", cfg,
                                 show_progress=self.show_progress, parallel=self.parallel)
        return {"count": manifest.get("count"), "size": cfg.size}

    def student(self, kind: str) -> dict[str, Any]:
        from digr.distill.config import DistillConfig
        from digr.distill.trainer import train_student

        c = self.config
        # DIGR uses the configured recipe (the default unless told); the baseline is the paper's
        # "policy distillation only": the teacher's architecture, freshly initialised, the KL alone.
        cfg = DistillConfig.for_task(
            self.spec, recipe=c.recipe if kind == "digr" else "paper", steps=c.student_steps, eval_every=c.student_eval_every,
            eval_episodes=c.student_eval_episodes, seed=c.seed,
            use_igr=(kind == "digr"))
        dataset = self.out / "dataset" if kind == "digr" else None
        return train_student(self.teacher_path, dataset, self.spec.name, self.out / kind, cfg,
                             show_progress=self.show_progress)

    def report(self) -> dict[str, Any]:
        from digr.evaluation.report import ReportConfig, write_report

        c = self.config
        kw = {k: v for k, v in dict(states=c.report_states, agreement_states=c.agreement_states,
                                    episodes=c.report_episodes,
                                    robustness_episodes=c.robustness_episodes, eps=c.robustness_eps,
                                    attacks=c.robustness_attacks, sections=c.report_sections,
                                    threads=c.threads, seed=c.seed).items()
              if v is not None}
        if c.report_stride is not None:
            kw["settings"] = {"perturbation": {"stride": c.report_stride}, "sarfa": {"stride": c.report_stride}}
        summary = write_report(self.out, ReportConfig(**kw), log=self.log)
        return {"report": str(summary["report"]), "sections": summary.get("sections")}

    def run(self) -> dict[str, Any]:
        self._save_state()
        self._stage("teacher", self.teacher)
        self._stage("dataset", self.dataset)
        self._stage("digr", lambda: self.student("digr"))
        self._stage("distill-only", lambda: self.student("distill-only"))
        self._stage("report", self.report)
        return self.state


def preset_config(name: str, **overrides: Any) -> PipelineConfig:
    """The named preset with ``overrides`` (``None`` values ignored)."""
    if name not in PRESETS:
        raise DigrError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    known = {f.name for f in fields(PipelineConfig)}
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None and k in known})
