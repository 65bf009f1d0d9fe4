"""The Red-Fetch-Green saliency benchmark (paper section 4.4, Figure 7, Table 1).

States
    State ``k`` of a benchmark with seed ``S`` is ``env.reset(seed=S + k)`` of the
    ``red-fetch-green`` environment, optionally followed by ``m_k`` random moves
    (``m_k ~ U{0..moves}``, each a turn left / turn right / forward, drawn from
    ``np.random.default_rng([S, k])``; never a pickup, so nothing is carried and the episode never
    ends). The default is ``moves=0``: MiniGrid's reset already places the agent on a uniformly
    random free tile with a uniformly random heading, and the three objects on random tiles, so
    reset states cover every position and heading; moves only add states reached by walking. The
    states are regenerated on the fly, batch by batch; nothing is stored.

Ground truth (Figure 7)
    ``important`` = pixels of the agent's tile and of the green target's tile (2 tiles = 128 px);
    ``unimportant`` = pixels of empty floor tiles (32 tiles = 2048 px in the 8x8 room); walls and
    the two distractors belong to neither set. Masks come from ``info["masks"]``.

Metrics, for a method's maps (each map in ``[0, 1]``, divided by its own max)
    ``important``: mean over states of the *sum* of saliency over the important pixels (the
    paper's unit: GB perturbation 86.11 of at most 128); ``unimportant``: the same over empty
    floor pixels; ``important_per_pixel`` / ``unimportant_per_pixel``: those sums divided by the
    pixel counts; ``auc``: pixel-level ROC AUC, important pixels positive and unimportant pixels
    negative, pooled over all states, rank based with ties counted one half (Mann-Whitney U / (P N)).

Streaming AUC
    Maps are computed ``batch_size`` states at a time and only counts are kept: each value goes
    into one of ``AUC_BINS + 1`` bins, bin 0 holding exact zeros and bin ``b >= 1`` the interval
    ``((b - 1) / AUC_BINS, b / AUC_BINS]``. The AUC from the bin counts treats two values in the
    same bin as tied, so it differs from the exact AUC only through (positive, negative) pairs in
    the same bin ``b >= 1`` (exact zeros really are ties), each off by at most 1/2::

        |auc_hist - auc_exact| <= 0.5 * sum_{b >= 1} P_b N_b / (P N)   ("auc_error_bound")

    The bound is computed from the same counts and reported with every result; ``auc="exact"``
    keeps every value instead (float32, for small runs and tests).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch

from digr.envs import get_task, make_env
from digr.errors import DigrError, check_int
from digr.evaluation.settings import SaliencyBenchmarkConfig
from digr.saliency.presets import build_method

if TYPE_CHECKING:
    from digr.saliency import SaliencyMethod

IMPORTANT = ("agent", "target")
"""Mask names whose union is the important region (``digr.envs.red_fetch_green.MASK_NAMES``)."""
UNIMPORTANT = ("empty",)
"""Mask names whose union is the unimportant region."""
MOVE_ACTIONS = (0, 1, 2)
"""Random moves: turn left, turn right, forward (never pickup)."""

AUC_BINS = 1 << 16
"""Histogram bins over ``(0, 1]`` for the streaming AUC (plus one bin for exact zeros)."""
DEFAULT_STATES = SaliencyBenchmarkConfig.states
"""States of the full benchmark (paper section 4.4)."""
DEFAULT_BATCH = SaliencyBenchmarkConfig.batch_size
"""States per saliency call."""
MAX_MOVES = 300
"""Upper limit of ``moves`` (the episode is truncated at 320 steps)."""


# ------------------------------------------------------------------------------------------- states
@dataclass(frozen=True)
class StateBatch:
    """A batch of benchmark states with their ground-truth regions."""

    obs: np.ndarray
    """``(B, H, W, C) uint8`` raw observations (the env's layout)."""
    important: np.ndarray
    """``(B, H, W) bool``: agent and target tiles."""
    unimportant: np.ndarray
    """``(B, H, W) bool``: empty floor tiles."""
    index: np.ndarray
    """``(B,) int64``: state indices ``k`` within the benchmark."""


def check_task(task: str) -> str:
    """The task name if it has ground-truth masks, else a :class:`DigrError`."""
    spec = get_task(task)
    if not spec.has_masks:
        raise DigrError(f"the saliency benchmark needs ground-truth masks, which only "
                        f"{', '.join(masked_tasks())} provides; got task {spec.name!r}")
    return spec.name


def masked_tasks() -> list[str]:
    """The preset tasks whose environment provides ground-truth masks (``TaskSpec.has_masks``)."""
    from digr.envs import TASKS

    return [name for name, spec in TASKS.items() if spec.has_masks]


def regions(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(important, unimportant)`` ``(H, W) bool`` from ``info["masks"]: (5, H, W) bool``."""
    from digr.envs.red_fetch_green import MASK_NAMES

    idx = {n: i for i, n in enumerate(MASK_NAMES)}
    important = np.any(masks[[idx[n] for n in IMPORTANT]], axis=0)
    unimportant = np.any(masks[[idx[n] for n in UNIMPORTANT]], axis=0)
    return important, unimportant


def benchmark_states(task: str = "red-fetch-green", *, states: int, seed: int = 0, moves: int = 0,
                     batch_size: int = DEFAULT_BATCH, start: int = 0) -> Iterator[StateBatch]:
    """Yield states ``start .. states - 1`` of the benchmark in batches of ``batch_size``.

    State ``k`` is ``reset(seed=seed + k)`` followed by ``U{0..moves}`` random moves drawn from
    ``np.random.default_rng([seed, k])`` (see the module docstring); the same arguments always
    give the same states, whatever the batch size.
    """
    spec = get_task(check_task(task))
    states = check_int("states", states, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    moves = check_int("moves", moves, minimum=0)
    if moves > MAX_MOVES:
        raise DigrError(f"moves must be <= {MAX_MOVES} (episodes are truncated at 320 steps), got {moves}")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    env = make_env(spec)
    try:
        for b0 in range(start, states, batch_size):
            obs, imp, unimp, idx = [], [], [], []
            for k in range(b0, min(b0 + batch_size, states)):
                o, info = env.reset(seed=seed + k)
                if moves:
                    rng = np.random.default_rng([seed, k])
                    for a in rng.choice(MOVE_ACTIONS, size=int(rng.integers(0, moves + 1))):
                        o, _, term, trunc, info = env.step(int(a))
                        if term or trunc:  # cannot happen without pickup within MAX_MOVES steps
                            raise DigrError(f"benchmark state {k}: episode ended during random moves")
                i, u = regions(info["masks"])
                obs.append(o)
                imp.append(i)
                unimp.append(u)
                idx.append(k)
            yield StateBatch(obs=np.stack(obs), important=np.stack(imp), unimportant=np.stack(unimp),
                             index=np.asarray(idx, dtype=np.int64))
    finally:
        env.close()


# ---------------------------------------------------------------------------------------------- AUC
def auc_from_counts(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC from counts of positives and negatives per *ordered* value (or bin).

    ``pos, neg: (K,)`` non-negative integer counts, index ``j`` being the ``j``-th smallest value.
    ``AUC = sum_j pos_j (N_{<j} + neg_j / 2) / (P N)``: the probability that a random positive
    scores above a random negative, ties counting one half. Summed in exact integer arithmetic.
    """
    pos = np.asarray(pos, dtype=np.int64)
    neg = np.asarray(neg, dtype=np.int64)
    p, n = int(pos.sum()), int(neg.sum())
    if p == 0 or n == 0:
        raise DigrError(f"AUC needs at least one positive and one negative value, got {p} and {n}")
    below = np.concatenate([[0], np.cumsum(neg)[:-1]])
    # 2 U in int64: exact, and 2 U <= 2 P N, about 5e13 for the full benchmark (10k states x 128
    # important x 2048 unimportant pixels), far below 2^63.
    twice_u = int(np.dot(pos, 2 * below + neg))
    return twice_u / (2.0 * p * n)


def auc_exact(pos: np.ndarray, neg: np.ndarray) -> float:
    """Exact rank-based ROC AUC of values ``pos`` (positives) vs ``neg`` (negatives), ties = 1/2."""
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise DigrError(f"AUC needs at least one positive and one negative value, got {pos.size} and "
                        f"{neg.size}")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise DigrError("AUC values contain NaN or infinite values")
    values, inverse = np.unique(np.concatenate([pos, neg]), return_inverse=True)
    pc = np.bincount(inverse[:pos.size], minlength=values.size)
    nc = np.bincount(inverse[pos.size:], minlength=values.size)
    return auc_from_counts(pc, nc)


def histogram_bins(values: np.ndarray, bins: int = AUC_BINS) -> np.ndarray:
    """Bin index of each value in ``[0, 1]``: 0 for exact zeros, ``ceil(v * bins)`` otherwise."""
    v = np.asarray(values, dtype=np.float64)
    return np.clip(np.ceil(v * bins), 0, bins).astype(np.int64)


def auc_histogram(pos_hist: np.ndarray, neg_hist: np.ndarray) -> tuple[float, float]:
    """``(auc, error_bound)`` from bin counts made with :func:`histogram_bins`.

    ``|auc - auc_exact| <= error_bound = 0.5 * sum_{b >= 1} P_b N_b / (P N)``: only pairs sharing
    a bin of positive width can be mis-ordered, each by at most one half.
    """
    pos_hist = np.asarray(pos_hist, dtype=np.int64)
    neg_hist = np.asarray(neg_hist, dtype=np.int64)
    auc = auc_from_counts(pos_hist, neg_hist)
    same = int(np.dot(pos_hist[1:], neg_hist[1:]))
    return auc, 0.5 * same / (float(pos_hist.sum()) * float(neg_hist.sum()))


# -------------------------------------------------------------------------------------- statistics
class SaliencyStats:
    """Streaming Table 1 statistics: feed batches of maps and masks, read :meth:`result`.

    ``auc="histogram"`` keeps ``AUC_BINS + 1`` counts per region (a few MiB whatever the number of
    states); ``auc="exact"`` keeps every important/unimportant value (float32).
    """

    def __init__(self, *, auc: str = "histogram", bins: int = AUC_BINS) -> None:
        if auc not in ("histogram", "exact"):
            raise DigrError(f"auc must be 'histogram' or 'exact', got {auc!r}")
        self.auc_mode = auc
        self.bins = check_int("bins", bins, minimum=1)
        self.states = 0
        self.sum_important = 0.0
        self.sum_unimportant = 0.0
        self.n_important = 0
        self.n_unimportant = 0
        self.pos_hist = np.zeros(self.bins + 1, dtype=np.int64)
        self.neg_hist = np.zeros(self.bins + 1, dtype=np.int64)
        self._pos: list[np.ndarray] = []
        self._neg: list[np.ndarray] = []

    def update(self, maps: np.ndarray | torch.Tensor, important: np.ndarray, unimportant: np.ndarray) -> None:
        """Add ``maps: (B, H, W)`` in ``[0, 1]`` with their ``(B, H, W) bool`` regions."""
        if isinstance(maps, torch.Tensor):
            maps = maps.detach().cpu().numpy()
        maps = np.asarray(maps, dtype=np.float32)
        important = np.asarray(important, dtype=bool)
        unimportant = np.asarray(unimportant, dtype=bool)
        if maps.ndim != 3 or maps.shape != important.shape or maps.shape != unimportant.shape:
            raise DigrError(f"maps {maps.shape} and masks {important.shape}/{unimportant.shape} must all be "
                            "(B, H, W) of the same shape")
        if not np.isfinite(maps).all():
            raise DigrError("saliency maps contain NaN or infinite values")
        if maps.size and (maps.min() < 0 or maps.max() > 1 + 1e-6):
            raise DigrError(f"saliency maps must lie in [0, 1], got [{maps.min():.3g}, {maps.max():.3g}]")
        if (important & unimportant).any():
            raise DigrError("a pixel is both important and unimportant")
        pos, neg = maps[important], maps[unimportant]
        self.states += maps.shape[0]
        self.sum_important += float(pos.sum(dtype=np.float64))
        self.sum_unimportant += float(neg.sum(dtype=np.float64))
        self.n_important += pos.size
        self.n_unimportant += neg.size
        if self.auc_mode == "exact":
            self._pos.append(pos.copy())
            self._neg.append(neg.copy())
        else:
            self.pos_hist += np.bincount(histogram_bins(pos, self.bins), minlength=self.bins + 1)
            self.neg_hist += np.bincount(histogram_bins(neg, self.bins), minlength=self.bins + 1)

    def result(self) -> dict[str, Any]:
        """``important``, ``unimportant`` (mean per-state sums), per-pixel means, ``auc``,
        ``auc_error_bound`` (0 for exact), ``auc_method``, ``states`` and mean pixel counts."""
        if self.states == 0:
            raise DigrError("no states were evaluated")
        if self.auc_mode == "exact":
            auc = auc_exact(np.concatenate(self._pos), np.concatenate(self._neg))
            bound = 0.0
        else:
            auc, bound = auc_histogram(self.pos_hist, self.neg_hist)
        return {
            "important": self.sum_important / self.states,
            "unimportant": self.sum_unimportant / self.states,
            "auc": auc,
            "auc_error_bound": bound,
            "auc_method": self.auc_mode if self.auc_mode == "exact" else f"histogram-{self.bins}",
            "important_per_pixel": self.sum_important / max(self.n_important, 1),
            "unimportant_per_pixel": self.sum_unimportant / max(self.n_unimportant, 1),
            "important_pixels": self.n_important / self.states,
            "unimportant_pixels": self.n_unimportant / self.states,
            "states": self.states,
        }


def evaluate_saliency(
    policy: torch.nn.Module,
    method: "str | SaliencyMethod",
    *,
    task: str = "red-fetch-green",
    states: int = DEFAULT_STATES,
    seed: int = 0,
    moves: int = 0,
    batch_size: int = DEFAULT_BATCH,
    settings: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    auc: str = "histogram",
) -> dict[str, Any]:
    """Table 1 metrics of saliency ``method`` on ``policy`` over ``states`` benchmark states.

    ``method``: a registry name (built with :func:`digr.saliency.presets.default_settings` overridden by ``settings``)
    or a ready :class:`~digr.saliency.SaliencyMethod` on ``policy`` (``settings`` must then be
    empty), so methods outside the registry can be benchmarked too. ``device`` is where the policy
    and the observations go (statistics are kept on the CPU). Returns the metrics of
    :meth:`SaliencyStats.result` plus ``method``, ``settings``, ``task``, ``seed``, ``moves``,
    ``batch_size``, ``device`` and ``seconds`` (wall time of the whole evaluation).
    """
    from digr.models.cnn import to_tensor

    task = check_task(task)
    spec = get_task(task)
    if tuple(policy.config.obs_shape) != tuple(spec.obs_shape):
        raise DigrError(f"policy expects observations {tuple(policy.config.obs_shape)}, task {task!r} "
                        f"gives {spec.obs_shape}")
    dev = resolve_device(device)
    policy = policy.to(dev).eval()
    if isinstance(method, str):
        m = build_method(policy, method, task=task, settings=settings)
    else:
        if settings:
            raise DigrError("settings apply to a method given by name, not to a ready method object")
        m = method
    stats = SaliencyStats(auc=auc)
    t0 = time.perf_counter()
    for batch in benchmark_states(task, states=states, seed=seed, moves=moves, batch_size=batch_size):
        obs = to_tensor(batch.obs, spec.obs_shape).to(dev)
        maps = m.attribute(obs)
        stats.update(maps, batch.important, batch.unimportant)
    seconds = time.perf_counter() - t0
    return {**stats.result(), "method": m.name, "settings": _jsonable(m.settings), "task": task,
            "seed": int(seed), "moves": int(moves), "batch_size": int(batch_size), "device": str(dev),
            "seconds": seconds}


def resolve_device(device: str | torch.device) -> torch.device:
    """``torch.device`` for ``"cpu"`` / ``"cuda"``; :class:`DigrError` if CUDA is asked for but absent."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DigrError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DigrError("device 'cuda' was requested but CUDA is not available (this torch is "
                        f"{torch.__version__})")
    return dev


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else repr(v)) for k, v in d.items()}


__all__ = ["AUC_BINS", "DEFAULT_STATES", "StateBatch", "SaliencyStats", "auc_exact",
           "auc_from_counts", "auc_histogram", "histogram_bins", "benchmark_states",
           "check_task", "evaluate_saliency", "masked_tasks", "regions", "resolve_device"]
