"""Real-time saliency lag (paper section 4.3, Figure 6): which map is on screen at each frame.

The paper's driving camera delivers a frame every 0.05 s (20 fps). A saliency method that needs
``T`` seconds per map cannot explain every frame as it arrives: the viewer sees, with frame ``t``,
the map of an older frame -- the perturbation map "shows saliency behind the vehicle because of
the computation delay" (Figure 6), while DIGR's vanilla gradient keeps up.

This module measures that instead of assuming it:

1. :func:`record_frames` rolls out seeded episodes greedily and keeps ``N`` frames: the stream
   goes on into the next episode (seeds ``seed``, ``seed + 1``, ...) when one ends, as a camera
   does -- Red-Fetch-Green's teacher finishes an episode in 2-12 steps, fewer frames than one
   perturbation map takes -- unless ``one_episode`` stops it at the end of the first.
2. :func:`time_maps` computes every frame's map at batch 1 and times each call (after one
   untimed warm-up call, as a deployed explainer would be warm; the clock is read after a
   device sync on a GPU).
3. :func:`schedule` replays the measured per-frame compute times on a real-time clock:

   * frame ``k`` arrives at ``k / fps``;
   * one worker computes maps back to back; whenever it is free it starts the *newest* frame that
     has arrived (frames it could not keep up with are skipped, as a real-time system would), or
     waits for the next frame if it has already done the newest one;
   * the display tick of frame ``k`` is read at ``k / fps + deadline`` and shows the newest map
     finished by then. :func:`realtime_lag` uses ``deadline = 1 / fps``: frame ``k`` is on screen
     until frame ``k + 1`` replaces it, so a map computed within one frame period is shown with
     its own frame (lag 0), and a map finishing exactly on the next arrival still counts.

   The lag at tick ``k`` is ``k - shown[k]`` frames; ticks before the first map is finished show
   none (``shown = -1``, "blank").

Reported per method (:meth:`LagStats.to_json`): median / p90 compute ms, mean and max lag over the
ticks that show a map, blank ticks, the fraction of frames whose own map is ever shown within the
recorded ticks, and the lag with which the first map appears (also when that lies beyond the last
recorded frame, so a map slower than the whole clip still gets a number). The maps' compute time
is measured alone: in a deployment the policy's own forward pass shares the machine as well.

:func:`digr.figures.lag.lag_figure` draws the Figure 6 layout: the state row on top, one row per method, columns
consecutive ticks, each panel the frame of that tick with the map *shown at that tick* overlaid
and the lag written on it, and the colour bar on the right.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from digr.envs import get_task, make_env
from digr.errors import DigrError
from digr.evaluation.settings import LagConfig, check_fps
from digr.evaluation.timing import (
    NO_GRAD_METHODS,  # run under torch.no_grad, as when timed
    sync_device,
)

DEFAULT_FPS = LagConfig.fps
"""Frames per second of the real-time stream: the paper's camera takes one image every 0.05 s."""
DEFAULT_FRAMES = LagConfig.frames
"""Frames recorded from the episode (fewer if it ends sooner)."""
DEFAULT_COLUMNS = LagConfig.columns
"""Consecutive ticks shown in the figure."""


@dataclass(frozen=True)
class LagRow:
    """One row of the figure: a saliency method on a policy."""

    key: str
    """Stable JSON key, e.g. ``perturbation``, ``vanilla``, ``digr_vanilla``."""
    label: str
    """Row title in the figure, e.g. ``GB perturbation (teacher)``."""
    method: str
    """Saliency registry name (:data:`digr.saliency.METHODS`)."""
    policy: torch.nn.Module
    """The policy whose map is computed (``(B, C, H, W)`` input matching the task)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Method settings, over the paper's defaults for the task
    (:func:`digr.saliency.presets.default_settings`)."""


# ----------------------------------------------------------------------------------- schedule
def _as_times(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise DigrError(f"{name} must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DigrError(f"{name} must be finite")
    return arr


def worker_finish_times(arrival_times: Sequence[float], compute_times: Sequence[float]) -> np.ndarray:
    """When each frame's map is finished by one worker that always takes the newest frame.

    ``arrival_times: (N,)`` non-decreasing, ``compute_times: (N,)`` >= 0, in one unit (seconds,
    ms...). Whenever the worker is free at time ``w`` it starts the newest frame ``j`` with
    ``arrival_times[j] <= w`` that is newer than the last one it started, or, if there is none,
    waits for the next arrival. Returns ``(N,)`` float64: the finish time of each frame's map,
    ``inf`` for frames skipped.
    """
    arrival = _as_times("arrival_times", arrival_times)
    compute = _as_times("compute_times", compute_times)
    if arrival.shape != compute.shape:
        raise DigrError(f"arrival_times and compute_times differ in length: {arrival.size} vs {compute.size}")
    if np.any(np.diff(arrival) < 0):
        raise DigrError("arrival_times must be non-decreasing")
    if np.any(compute < 0):
        raise DigrError("compute_times must be >= 0")
    n = arrival.size
    finish = np.full(n, np.inf)
    free = -np.inf
    nxt = 0  # frames before nxt are done or skipped
    while nxt < n:
        start = max(free, arrival[nxt])  # idle until the next frame arrives if none is waiting
        j = int(np.searchsorted(arrival, start, side="right")) - 1  # newest frame arrived by then
        finish[j] = start + compute[j]
        free = finish[j]
        nxt = j + 1
    return finish


def schedule(arrival_times: Sequence[float], compute_times: Sequence[float], *, deadline: float = 0.0
             ) -> np.ndarray:
    """The frame whose map is shown at each display tick of a single-worker real-time explainer.

    ``arrival_times: (N,)`` non-decreasing, ``compute_times: (N,)`` >= 0, ``deadline`` >= 0, all in
    one unit. The worker runs as in :func:`worker_finish_times`; tick ``k`` is read at
    ``arrival_times[k] + deadline`` and shows the newest map finished by then (a map finishing
    exactly at the tick counts). Returns ``(N,)`` int64: the index of the frame whose map is shown
    at each tick, ``-1`` where no map is finished yet. The lag at tick ``k`` is ``k - shown[k]``.
    """
    try:
        ok = math.isfinite(float(deadline)) and float(deadline) >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise DigrError(f"deadline must be a finite number >= 0, got {deadline!r}")
    finish = worker_finish_times(arrival_times, compute_times)
    ticks = np.asarray(arrival_times, dtype=np.float64) + deadline
    done = np.flatnonzero(np.isfinite(finish))  # started frames: their finish times increase with j
    pos = np.searchsorted(finish[done], ticks, side="right") - 1
    return np.where(pos >= 0, done[np.maximum(pos, 0)], -1).astype(np.int64)


@dataclass(frozen=True)
class LagStats:
    """The replayed real-time schedule of one method on ``N`` frames."""

    fps: float
    """Frame rate of the stream."""
    compute_ms: np.ndarray
    """``(N,)`` measured milliseconds of each frame's map."""
    finish_s: np.ndarray
    """``(N,)`` seconds after frame 0 at which each map is finished; ``inf`` where skipped."""
    shown: np.ndarray
    """``(N,)`` int: frame whose map is shown at each tick, ``-1`` before the first map."""

    @property
    def lags(self) -> np.ndarray:
        """``(N,)`` int: ``k - shown[k]`` frames at tick ``k``, ``-1`` where no map is shown."""
        k = np.arange(self.shown.size)
        return np.where(self.shown >= 0, k - self.shown, -1)

    @property
    def first_map_lag(self) -> int:
        """Lag (frames) of the tick at which the first map appears, counting ticks past the clip."""
        # frame 0 arrives at 0; tick k is read at (k + 1) / fps (deadline = one period)
        k = math.ceil(self.finish_s[0] * self.fps - 1 - 1e-9)
        return max(int(k), 0)

    def to_json(self) -> dict[str, Any]:
        """Plain numbers: the per-method figures of the lag report."""
        lags = self.lags[self.shown >= 0]
        shown_frames = np.unique(self.shown[self.shown >= 0])
        ms = self.compute_ms
        return {
            "median_ms": float(np.median(ms)),
            "p90_ms": float(np.percentile(ms, 90)),
            "max_ms": float(ms.max()),
            "mean_lag_frames": float(lags.mean()) if lags.size else None,
            "max_lag_frames": int(lags.max()) if lags.size else None,
            "blank_ticks": int((self.shown < 0).sum()),
            "shown_fraction": float(shown_frames.size / self.shown.size),
            "first_map_lag_frames": self.first_map_lag,
            "shown": [int(s) for s in self.shown],
            "compute_ms": [round(float(t), 3) for t in ms],
        }


def realtime_lag(compute_s: Sequence[float], *, fps: float = DEFAULT_FPS) -> LagStats:
    """Replay measured per-frame compute seconds ``(N,)`` on a ``fps`` stream (see :func:`schedule`)."""
    fps = check_fps(fps)
    compute = _as_times("compute_s", compute_s)
    arrival = np.arange(compute.size) / fps
    period = 1.0 / fps
    return LagStats(fps=fps, compute_ms=compute * 1e3, finish_s=worker_finish_times(arrival, compute),
                    shown=schedule(arrival, compute, deadline=period))


# ----------------------------------------------------------------------------- measurement
def record_frames(policy: torch.nn.Module, task: str, *, frames: int, seed: int = 0,
                  one_episode: bool = False, device: torch.device | str = "cpu"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``frames`` observations that ``policy`` acts on greedily, and the episode of each.

    Episode ``e`` is reset with ``seed + e``; when one ends the next one starts, until ``frames``
    observations are kept (the terminal observation, which nobody acts on, is not kept). With
    ``one_episode`` the stream stops at the end of the first episode, possibly short. Returns
    ``(N, H, W, C) uint8`` observations and ``(N,) int64`` episode numbers (0, 0, ..., 1, ...).
    The env is the task's camera stream (:attr:`TaskSpec.stream_env_kwargs`): on highway a frame
    every 0.05 s, the policy's action applied once per simulated second.
    """
    from digr.models.cnn import to_tensor

    spec = get_task(task)
    env = make_env(spec, **spec.stream_env_kwargs)
    kept: list[np.ndarray] = []
    episode: list[int] = []
    e = 0
    try:
        obs, _ = env.reset(seed=seed)
        while len(kept) < frames:
            kept.append(np.asarray(obs).copy())
            episode.append(e)
            with torch.no_grad():
                action = int(policy(to_tensor(obs[None], spec.obs_shape).to(device)).argmax(-1)[0])
            obs, _, term, trunc, _ = env.step(action)
            if term or trunc:
                if one_episode:
                    break
                e += 1
                obs, _ = env.reset(seed=seed + e)
    finally:
        env.close()
    return np.stack(kept), np.asarray(episode, dtype=np.int64)


def time_maps(method, obs: torch.Tensor, *, device: torch.device | str = "cpu"
              ) -> tuple[np.ndarray, np.ndarray]:
    """Every frame's map at batch 1 and the seconds it took.

    ``method``: a :class:`~digr.saliency.SaliencyMethod`; ``obs: (N, C, H, W)`` float in ``[0, 1]``
    on ``device``. One untimed warm-up call on frame 0 comes first (one-off costs such as the
    perturbation mask cache are not part of a running explainer). Returns maps
    ``(N, H, W) float32`` in ``[0, 1]`` and seconds ``(N,) float64``.
    """
    dev = torch.device(device)
    grad = torch.no_grad() if method.name in NO_GRAD_METHODS else torch.enable_grad()

    def one(x: torch.Tensor) -> torch.Tensor:
        with grad:
            return method.attribute(x).detach()

    one(obs[:1])
    maps, secs = [], []
    for k in range(obs.shape[0]):
        sync_device(dev)
        t0 = time.perf_counter()
        m = one(obs[k:k + 1])
        sync_device(dev)
        secs.append(time.perf_counter() - t0)
        maps.append(m[0].float().cpu().numpy())
    return np.stack(maps), np.asarray(secs)


@dataclass(frozen=True)
class LagRowResult:
    """One row's measurement: its maps and its replayed schedule."""

    row: LagRow
    """What was measured."""
    settings: dict[str, Any]
    """The method's resolved settings."""
    maps: np.ndarray
    """``(N, H, W) float32`` in ``[0, 1]``: the map of every frame."""
    stats: LagStats
    """The real-time replay."""


@dataclass(frozen=True)
class LagResult:
    """The frames of one episode and every row's maps and lag."""

    task: str
    config: LagConfig
    frames: np.ndarray
    """``(N, H, W, C) uint8`` recorded observations."""
    episode: np.ndarray
    """``(N,) int``: the episode of each frame (episode ``e`` was reset with ``seed + e``)."""
    rows: tuple[LagRowResult, ...]

    def to_json(self) -> dict[str, Any]:
        """Everything but the images: settings and per-method figures keyed by :attr:`LagRow.key`."""
        from digr.evaluation.timing import machine_name

        dev = torch.device(self.config.device)
        return {
            "task": self.task, "fps": self.config.fps, "frame_ms": 1e3 / self.config.fps,
            "frames_requested": self.config.frames, "frames": int(self.frames.shape[0]),
            "episodes": int(self.episode[-1]) + 1,
            "episode_starts": [int(k) for k in np.flatnonzero(np.diff(self.episode, prepend=-1))],
            "seed": self.config.seed, "device": str(dev), "torch_threads": torch.get_num_threads(),
            "machine": machine_name(dev), "batch": 1,
            "methods": {r.row.key: {"label": r.row.label, "method": r.row.method,
                                    "settings": _plain(r.settings), **r.stats.to_json()} for r in self.rows},
        }


def measure_lag(rows: Sequence[LagRow], task: str, *, driver: torch.nn.Module, config: LagConfig = LagConfig()
                ) -> LagResult:
    """Record a greedy stream of ``driver`` (:func:`record_frames`) and measure every row's
    real-time lag on its frames.

    All rows explain the same frames (the driver's, as in Figure 6 where every saliency type is
    shown on one sequence of states). Policies are moved to ``config.device`` and put in eval mode.
    """
    from digr.evaluation.saliency_benchmark import resolve_device
    from digr.models.cnn import to_tensor
    from digr.saliency.presets import build_method

    config.validate()
    spec = get_task(task)
    if not rows:
        raise DigrError("measure_lag needs at least one row")
    for name, net in [("driver", driver)] + [(r.label, r.policy) for r in rows]:
        if tuple(net.config.obs_shape) != tuple(spec.obs_shape):
            raise DigrError(f"{name} expects observations {tuple(net.config.obs_shape)}, task "
                            f"{spec.name!r} gives {spec.obs_shape}")
    dev = resolve_device(config.device)
    driver = driver.to(dev).eval()
    frames, episode = record_frames(driver, spec.name, frames=config.frames, seed=config.seed,
                                    one_episode=config.one_episode, device=dev)
    obs = to_tensor(frames, spec.obs_shape).to(dev)
    results = []
    for row in rows:
        policy = row.policy.to(dev).eval()
        method = build_method(policy, row.method, task=spec.name, settings=row.settings)
        maps, secs = time_maps(method, obs, device=dev)
        results.append(LagRowResult(row=row, settings=dict(method.settings), maps=maps,
                                    stats=realtime_lag(secs, fps=config.fps)))
    return LagResult(task=spec.name, config=config, frames=frames, episode=episode, rows=tuple(results))


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else repr(v)) for k, v in d.items()}


def default_start(n: int, columns: int) -> int:
    """First tick of the figure: the last ``columns`` ticks, where the schedule has settled."""
    return max(n - columns, 0)



__all__ = ["LagConfig", "LagRow", "LagRowResult", "LagResult", "LagStats", "schedule", "worker_finish_times",
           "realtime_lag", "record_frames", "time_maps", "measure_lag",
           "check_fps", "default_start", "DEFAULT_FPS", "DEFAULT_FRAMES", "DEFAULT_COLUMNS"]
