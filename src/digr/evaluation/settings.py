"""Settings of the ``digr evaluate`` measurements and of ``digr saliency`` / ``digr export``.

One frozen dataclass per measurement. The library's functions take their defaults from these
(:func:`digr.evaluation.performance.evaluate_policy` and the others), and the command line builds
its options and their ``--help`` from the same fields and docstrings
(:func:`digr.cli.fields.add_fields`), so a default or a description is written once. Paths
(checkpoints, output folders) are arguments of a command, not settings, and stay out of these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from digr.errors import MAX_EPISODES, MAX_STATES, DigrError, check_int, check_softplus_beta

C = TypeVar("C")


def check_surrogate_softplus(beta: Any) -> float:
    """``beta`` as a float if it is 0 or in ``(0, digr.errors.MAX_SOFTPLUS_BETA]``, else :class:`DigrError`."""
    return check_softplus_beta("surrogate_softplus", beta, zero="the policy's own gradient")


def from_options(cls: type[C], **values: Any) -> C:
    """``cls`` with the given fields over its defaults (``None``: keep the default), validated."""
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise DigrError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))}")
    cfg = replace(cls(), **{k: v for k, v in values.items() if v is not None})
    return cfg.validate() if hasattr(cfg, "validate") else cfg


def _check_device(device: str) -> None:
    if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise DigrError(f"device must be cpu, cuda or cuda:N, got {device!r}")


@dataclass(frozen=True)
class PerformanceConfig:
    """``digr evaluate performance``: success rate and return over seeded episodes."""

    episodes: int = 100
    """Episodes to run; episode ``k`` resets its env with ``seed + k``."""
    seed: int = 0
    """Seed of episode 0 (episode ``k`` uses ``seed + k``)."""
    deterministic: bool = True
    """Greedy (argmax) actions; False samples each action from the policy."""

    def validate(self) -> "PerformanceConfig":
        check_int("episodes", self.episodes, maximum=MAX_EPISODES)
        check_int("seed", self.seed, minimum=0)
        return self


@dataclass(frozen=True)
class AttackedRollouts:
    """What every robustness measurement shares: the episodes, the attacks' own settings and the
    gradient they follow (:class:`RobustnessConfig`, :class:`RobustnessSweepConfig`)."""

    episodes: int = 50
    """Episodes under attack per point (the paper's number); episode ``k`` resets with ``seed + k``."""
    seed: int = 0
    """Seed of episode 0; also seeds the attack's random start."""
    attack_steps: int | None = None
    """Iterations of pgd / mi-fgsm / mad (None: the attack's own, 10; fgsm is one step)."""
    step_size: float | None = None
    """Step size of pgd / mi-fgsm / mad in the pixel scale (None: the attack's own)."""
    surrogate_softplus: float = 0.0
    """0: the attack follows the policy's own gradient (the paper's setting). BETA > 0: it follows
    the gradient of the policy's smooth twin (same weights, every ReLU a softplus of that beta;
    e.g. 50) while the policy acts, which a ReLU network's masked gradient cannot hide from."""

    def _check_rollouts(self) -> None:
        check_int("episodes", self.episodes, maximum=MAX_EPISODES)
        check_int("seed", self.seed, minimum=0)
        if self.attack_steps is not None:
            check_int("attack_steps", self.attack_steps)
        if self.step_size is not None and not (math.isfinite(self.step_size) and self.step_size > 0):
            raise DigrError(f"step_size must be a finite number > 0, got {self.step_size}")
        check_surrogate_softplus(self.surrogate_softplus)

    def attack_settings(self) -> dict[str, Any]:
        """The attack's own keyword settings (``steps``, ``alpha``) that are set."""
        return {k: v for k, v in (("steps", self.attack_steps), ("alpha", self.step_size)) if v is not None}


@dataclass(frozen=True)
class RobustnessConfig(AttackedRollouts):
    """``digr evaluate robustness``: greedy rollouts with every observation attacked (section 4.6)."""

    attack: str | None = None
    """Attack name: fgsm | pgd | mi-fgsm | mad (required)."""
    eps: float | None = None
    """L-inf radius in the [0, 1] pixel scale, 0 <= eps <= 1 (e.g. 0.0314 or 8/255; required)."""

    def validate(self) -> "RobustnessConfig":
        from digr.attacks import check_eps, resolve_attack_name

        if self.attack is None or self.eps is None:
            raise DigrError("name the attack and its radius: --attack NAME --eps E")
        resolve_attack_name(self.attack)
        check_eps(self.eps)
        self._check_rollouts()
        return self


@dataclass(frozen=True)
class RobustnessSweepConfig(AttackedRollouts):
    """``digr evaluate robustness-sweep``: every ``(attack, eps)`` point of Figure 8 for one policy,
    the same rollouts as ``digr evaluate robustness`` point by point (and as the report's sweep)."""

    attacks: tuple[str, ...] = ("fgsm", "pgd", "mi-fgsm", "mad")
    """Attacks, comma-separated on the command line (default: all four)."""
    eps: tuple[float, ...] = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)
    """Radii in the [0, 1] pixel scale, comma-separated, fractions such as 8/255 accepted (default:
    0, the clean policy, then 1, 2, 4, 8 and 16 grey levels: the report's sweep)."""
    workers: int = 1
    """Points rolled out at once, as Ray tasks on a local Ray (more than 1 needs ``digr[ray]``)."""

    def validate(self) -> "RobustnessSweepConfig":
        from digr.attacks import check_eps, resolve_attack_name

        if not self.attacks or not self.eps:
            raise DigrError("a sweep needs at least one attack and one eps")
        for name in self.attacks:
            resolve_attack_name(name)
        for e in self.eps:
            check_eps(e)
        self._check_rollouts()
        check_int("workers", self.workers, maximum=4096)
        if self.attack_settings() and "fgsm" in map(resolve_attack_name, self.attacks):
            # refused before any point runs, not when the sweep reaches fgsm
            raise DigrError("attack 'fgsm' takes no setting (--attack-steps, --step-size); sweep it "
                            "apart from the iterative attacks")
        return self


@dataclass(frozen=True)
class AgreementConfig:
    """``digr evaluate agreement``: a policy's gradient map against the teacher's perturbation map."""

    states: int = 100
    """Held-out states, from the teacher's own sampled rollouts on a seed stream no dataset uses."""
    seed: int = 0
    """Seed of the held-out rollouts."""
    radius: float | None = None
    """Perturbation radius of the reference maps in pixels (None: the task's, appendix A)."""

    def validate(self) -> "AgreementConfig":
        check_int("states", self.states, maximum=MAX_STATES)
        check_int("seed", self.seed, minimum=0)
        if self.radius is not None and not (math.isfinite(self.radius) and self.radius > 0):
            raise DigrError(f"radius must be > 0, got {self.radius}")
        return self


@dataclass(frozen=True)
class SaliencyBenchmarkConfig:
    """``digr evaluate saliency``: Table 1 metrics on Red-Fetch-Green's ground-truth masks."""

    states: int = 10_000
    """Benchmark states (the paper's number); state ``k`` is ``env.reset(seed=seed + k)``."""
    seed: int = 0
    """Seed of state 0."""
    moves: int = 0
    """Up to this many seeded random moves after each reset (0: the reset states)."""
    batch_size: int = 64
    """States per saliency call."""
    exact_auc: bool = False
    """Keep every pixel value for an exact AUC instead of the 65,536-bin histogram (whose error
    bound is reported)."""
    device: str = "cpu"
    """Where the maps are computed: cpu | cuda."""

    def validate(self) -> "SaliencyBenchmarkConfig":
        check_int("states", self.states, maximum=MAX_STATES)
        check_int("seed", self.seed, minimum=0)
        check_int("moves", self.moves, minimum=0)
        check_int("batch_size", self.batch_size)
        _check_device(self.device)
        return self


@dataclass(frozen=True)
class TimingConfig:
    """``digr evaluate timing``: milliseconds per saliency map at batch 1 (Figure 1b)."""

    repeats: int = 20
    """Timed calls per method (fewer for slow ones, at least 3)."""
    max_seconds: float = 8.0
    """About how long the timed calls of one method may take."""
    seed: int = 0
    """The timed observation is ``env.reset(seed=seed)``."""
    device: str = "cpu"
    """Where the maps are computed: cpu | cuda."""

    def validate(self) -> "TimingConfig":
        check_int("repeats", self.repeats)
        check_int("seed", self.seed, minimum=0)
        if not (math.isfinite(self.max_seconds) and self.max_seconds > 0):
            raise DigrError(f"max_seconds must be > 0, got {self.max_seconds}")
        _check_device(self.device)
        return self


SCORES = ("kl", "greydanus")
"""Perturbation scores of ``digr saliency``."""


@dataclass(frozen=True)
class ExplainConfig:
    """``digr saliency``: maps of a policy on states from its own greedy rollouts."""

    method: str = "all"
    """Saliency method(s), comma-separated, or 'all' (every method the policy supports)."""
    states: int = 8
    """States to explain: the first ones of greedy rollouts, episode ``k`` reset with ``seed + k``."""
    seed: int = 0
    """Seed of episode 0."""
    stride: int = 1
    """Grid stride of the perturbation family (1: every pixel)."""
    score: str = "kl"
    """Perturbation score: kl = KL(pi(s) || pi(s')) (eq. 3); greydanus = 0.5 ||logits - logits'||^2."""
    rows_per_panel: int = 4
    """States per PNG panel."""
    device: str = "cpu"
    """Where the maps are computed: cpu | cuda."""

    def validate(self) -> "ExplainConfig":
        check_int("states", self.states, maximum=MAX_STATES)
        check_int("seed", self.seed, minimum=0)
        check_int("stride", self.stride)
        check_int("rows_per_panel", self.rows_per_panel)
        if self.score not in SCORES:
            raise DigrError(f"score must be one of {', '.join(SCORES)}, got {self.score!r}")
        _check_device(self.device)
        return self


@dataclass(frozen=True)
class ExportConfig:
    """``digr export``: a policy for deployment."""

    format: str | None = None
    """onnx | torchscript (one call returns logits and the saliency map) | sb3 (a PPO zip); required."""

    def validate(self) -> "ExportConfig":
        from digr.deploy.export import EXPORT_FORMATS

        if self.format not in EXPORT_FORMATS:
            raise DigrError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {self.format!r}")
        return self


def check_fps(fps: Any) -> float:
    """``fps`` as a float; :class:`DigrError` unless it is a finite number > 0."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise DigrError(f"fps must be a number > 0, got {fps!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise DigrError(f"fps must be a finite number > 0, got {fps!r}")
    return value


@dataclass(frozen=True)
class LagConfig:
    """``digr evaluate lag``: how far a saliency map trails a real-time stream (Figure 9)."""

    frames: int = 12
    """Frames of the real-time stream (at most 100,000)."""
    one_episode: bool = False
    """Stop at the end of the first episode (fewer frames) instead of going on with the next."""
    fps: float = 20.0
    """Frame rate of the simulated real-time stream (20: the paper's 0.05 s camera); ``1 / fps``
    is both the frame spacing and the time a map has to be shown with its own frame."""
    seed: int = 0
    """Episode ``e`` of the stream is ``env.reset(seed=seed + e)``; the policy acts greedily, so
    the frames are reproducible."""
    device: str = "cpu"
    """Where the policies run and the maps are computed: cpu | cuda."""
    stride: int = 1
    """Grid stride of the teacher's perturbation map (1, as in the paper: every pixel)."""
    columns: int = 6
    """Consecutive ticks shown in the figure."""
    start: int | None = None
    """First tick of the figure (None: the last ``columns`` ticks)."""

    def validate(self) -> "LagConfig":
        """Return ``self``, or raise :class:`DigrError` naming the bad field."""
        check_int("frames", self.frames, maximum=100_000)
        check_fps(self.fps)
        check_int("seed", self.seed, minimum=0)
        check_int("stride", self.stride)
        check_int("columns", self.columns)
        _check_device(self.device)
        if self.start is not None:
            check_int("start", self.start, minimum=0)
            if self.start + min(self.columns, self.frames) > self.frames:
                raise DigrError(f"start {self.start} leaves fewer than {min(self.columns, self.frames)} "
                                f"of {self.frames} frames for the figure")
        return self


__all__ = ["AgreementConfig", "AttackedRollouts", "ExplainConfig", "ExportConfig", "LagConfig", "PerformanceConfig", "RobustnessConfig",
           "RobustnessSweepConfig",
           "SCORES", "SaliencyBenchmarkConfig", "TimingConfig", "check_fps", "from_options"]
