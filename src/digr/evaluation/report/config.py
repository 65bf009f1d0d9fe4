"""What a report measures (:class:`ReportConfig`) and the command that regenerates it."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digr.errors import DigrError, check_int
from digr.evaluation.settings import check_surrogate_softplus

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
    surrogate_softplus: float = 50.0
    """BETA > 0 (default 50): every ReLU policy is attacked through its own gradient and through its
    smooth twin's (the same weights, softplus units of that beta; ``digr evaluate robustness
    --surrogate-softplus``), which a masked ReLU gradient cannot hide from, and each point reports
    the lower of the two (a smooth policy is its own twin). 0: the own gradient only, the paper's
    setting, which overstates ReLU students whose gradient is masked (results/recipe-ablation.md,
    session 19)."""
    workers: int = 1
    """Ray CPUs for the robustness sweep's points (1: one after the other in this process, no Ray;
    more needs ``pip install 'digr[ray]'``); the results, and so the cache keys, do not depend on it."""
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
    """Most frames in the episode GIF (the episodes' numbers are for the whole episodes)."""
    gif_min_frames: int = 30
    """The GIF plays further episodes (the next seeds) until it shows at least this many frames."""
    gif_fps: float = 5.0
    """Frames per second of the episode GIF."""
    agreement_states: int = 100
    """Held-out teacher states for the map-agreement section (:mod:`digr.evaluation.agreement`)."""
    sections: tuple[str, ...] = SECTIONS
    """Sections to include (default: all, in :data:`SECTIONS` order)."""


GOAL_CC, GOAL_SHARE = 0.7, 0.8
"""Map agreement a DIGR student should reach (cc, share)."""


def fmt_eps(eps: float) -> str:
    """``k/255`` when eps is a whole number of grey levels (as the CLI accepts), else the float."""
    k = eps * 255.0
    if abs(k - round(k)) < 1e-9:
        return "0" if round(k) == 0 else f"{int(round(k))}/255"
    return repr(float(eps))


OPTION_FIELDS = ("states", "agreement_states", "episodes", "robustness_episodes", "surrogate_softplus", "workers",
                 "seed", "batch_size", "repeats", "timing_max_seconds", "device", "panel_states", "gif_frames",
                 "gif_min_frames", "gif_fps")
"""The :class:`ReportConfig` fields that are plain options of ``digr report`` (``--eps``,
``--attacks``, ``--setting``, ``--sections`` and ``--threads`` fill the rest); shared by the CLI and
:func:`report_command`, which quotes them."""
OPTION_FLAGS = {"timing_max_seconds": "--max-seconds"}
"""Options not named ``--field-name``."""


def report_command(directory: Path, cfg: ReportConfig) -> str:
    """The ``digr report`` command line for ``cfg`` (non-default options only)."""
    from digr.evaluation.table1 import display_path

    d = ReportConfig()
    parts = ["digr", "report", display_path(directory)]
    for name in (*(f for f in OPTION_FIELDS if f != "workers"), "threads"):  # workers: not in the results
        flag = OPTION_FLAGS.get(name, "--" + name.replace("_", "-"))
        v = getattr(cfg, name)
        if v != getattr(d, name):
            parts += [flag, str(v)]
    if cfg.eps is not None:
        parts += ["--eps", *(fmt_eps(e) for e in cfg.eps)]
    if cfg.attacks is not None:
        parts += ["--attacks", *cfg.attacks]
    for method, sets in cfg.settings.items():
        for k, v in sets.items():
            parts += ["--setting", f"{method}.{k}={v if isinstance(v, str) else json.dumps(v)}"]
    if tuple(cfg.sections) != SECTIONS:
        parts += ["--sections", *cfg.sections]
    return shlex.join(parts)



def check_config(cfg: ReportConfig) -> None:
    unknown = [s for s in cfg.sections if s not in SECTIONS]
    if unknown:
        raise DigrError(f"unknown report section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    for name in ("states", "episodes", "robustness_episodes", "batch_size", "repeats", "panel_states",
                 "gif_frames", "gif_min_frames", "agreement_states"):
        check_int(name, getattr(cfg, name))
    check_int("seed", cfg.seed, minimum=0)
    check_surrogate_softplus(cfg.surrogate_softplus)
    if not cfg.timing_max_seconds > 0 or not cfg.gif_fps > 0:
        raise DigrError("timing_max_seconds and gif_fps must be > 0")
