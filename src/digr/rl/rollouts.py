"""States from a policy's own sampled rollouts: the states of a DIGR dataset and the held-out states
of map agreement."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from digr.envs import get_task, make_env
from digr.models.cnn import PolicyNet, to_tensor


def collect_states(teacher: PolicyNet, task: str, n: int, *, rng: np.random.Generator, keep_prob: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` states from ``teacher``'s sampled rollouts.

    Returns ``states: (n, C, H, W) uint8`` and the teacher's ``probs: (n, A) float32``.

    Episodes reset with seeds drawn from ``rng``; actions are sampled from the teacher's
    distribution with ``rng``; each visited state is kept with probability ``keep_prob``, and
    only if it is not already among the kept ones.
    """
    spec = get_task(task)
    env = make_env(spec)
    states: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    seen: set[bytes] = set()
    visited = 0
    try:
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        while len(states) < n:
            x = to_tensor(obs[None], spec.obs_shape)
            with torch.no_grad():
                p = torch.softmax(teacher(x), -1)[0].double().numpy()
            visited += 1
            if rng.random() < keep_prob:
                key = hashlib.blake2b(obs.tobytes(), digest_size=16).digest()
                # A policy stuck against a wall repeats one frame; keep each state once per shard
                # (unless the env seems to have too few distinct states to ever fill the shard).
                if key not in seen or visited > 100 * n:
                    seen.add(key)
                    states.append(np.ascontiguousarray(np.transpose(obs, (2, 0, 1)), dtype=np.uint8))
                    probs.append(p.astype(np.float32))
            # Inverse-CDF sampling in float64 with our own generator: no global randomness.
            a = min(int(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right")), len(p) - 1)
            obs, _, term, trunc, _ = env.step(a)
            if term or trunc:
                obs, _ = env.reset(seed=int(rng.integers(2**31)))
    finally:
        env.close()
    return np.stack(states), np.stack(probs)


__all__ = ["collect_states"]
