"""The report being written (:class:`Report`), its header and helpers shared by the sections."""

from __future__ import annotations

import platform
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from digr.evaluation.report.cache import JsonCache
from digr.evaluation.report.config import ReportConfig, report_command
from digr.evaluation.report.folder import EVAL_DIR, FIGURES_DIR, REPORT_NAME, ROLES, Pipeline


def cmd_block(cmds: Sequence[str]) -> list[str]:
    return ["```sh", *cmds, "```", ""]


def benchmark_obs(task: str, n: int, seed: int) -> np.ndarray:
    """``(n, H, W, C) uint8``: the first ``n`` saliency-benchmark states (any task: reset states)."""
    from digr.envs import get_task, make_env
    from digr.evaluation.saliency_benchmark import benchmark_states

    if get_task(task).has_masks:
        return next(iter(benchmark_states(task, states=n, seed=seed, batch_size=n))).obs
    env = make_env(get_task(task))
    try:
        return np.stack([env.reset(seed=seed + k)[0] for k in range(n)])
    finally:
        env.close()


def episode_frames(student, task: str, *, seed: int, max_frames: int,
                    min_frames: int = 1) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Greedy episodes ``reset(seed=seed + k)``, k = 0, 1, ..., of ``student`` with its eq. 2
    vanilla map on each frame, until ``min_frames`` frames are shown (a task whose episodes take a
    few steps would otherwise give a GIF of three frames); at most ``max_frames`` frames.

    The episodes are episodes 0..k-1 of ``evaluate_policy(student, task, episodes=k, seed=seed)``;
    the returned stats are per episode (``episodes``) plus the frames shown.
    """
    import torch

    from digr.envs import get_task, make_env
    from digr.figures import overlay
    from digr.models.cnn import to_tensor
    from digr.saliency import vanilla_gradient

    spec = get_task(task)
    env = make_env(spec)
    frames: list[np.ndarray] = []
    episodes: list[dict[str, Any]] = []

    def add_frame(obs: np.ndarray) -> torch.Tensor:
        x = to_tensor(np.asarray(obs)[None], spec.obs_shape)
        if len(frames) < max_frames:
            frames.append(overlay(obs, vanilla_gradient(student, x)[0].numpy()))
        return x

    try:
        while not episodes or len(frames) < min(min_frames, max_frames):
            obs, _ = env.reset(seed=seed + len(episodes))
            ret, length, success = 0.0, 0, False
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
            episodes.append({"return": ret, "length": length,
                             "success": success if spec.has_success else None})
    finally:
        env.close()
    return frames, {"episodes": episodes, "frames": len(frames)}


class Report:
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


def header(rep: Report) -> None:
    import torch

    from digr import __version__

    cfg, pipe = rep.cfg, rep.pipe
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rep.md += [
        f"# DIGR report: {rep.spec.name}", "",
        "Regenerate this report (results cached in `eval/` are reused while checkpoints and options are "
        "unchanged; delete `eval/` to measure everything again):", "",
        *cmd_block([report_command(pipe.dir, cfg)]),
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
                   *cmd_block([f"# {k}\n{v}" for k, v in commands.items()])]
    rep.md.append("")
