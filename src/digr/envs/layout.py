"""Observation wrappers that bring any image env to digr's layout: ``(H, W, C)`` uint8, with
stacked frames along the channels (oldest first).

Used by :func:`digr.envs.make_env` for tasks whose env gives another layout
(:attr:`TaskSpec.env_layout`) or whose policy reads stacked frames the env does not stack itself
(:attr:`TaskSpec.frame_stack`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class ChannelLast(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """``(C, H, W)`` (``layout="chw"``) or ``(H, W)`` (``"hw"``) uint8 frames -> ``(H, W, C)``."""

    def __init__(self, env: gym.Env, layout: str) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, layout=layout)
        gym.ObservationWrapper.__init__(self, env)
        if layout not in ("chw", "hw"):
            raise ValueError(f"layout must be 'chw' or 'hw', got {layout!r}")
        self.layout = layout
        shape = env.observation_space.shape
        new = (shape[1], shape[2], shape[0]) if layout == "chw" else (*shape, 1)
        self.observation_space = gym.spaces.Box(0, 255, new, np.uint8)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        return np.ascontiguousarray(obs.transpose(1, 2, 0) if self.layout == "chw" else obs[..., None])


class StackFrames(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The last ``k`` ``(H, W, C)`` frames concatenated along the channels ``(H, W, k * C)``,
    oldest first; after a reset the older slots are zeros. This is SB3's ``VecFrameStack`` with
    ``channels_order="last"``, so a policy trained behind it sees here what it saw in training."""

    def __init__(self, env: gym.Env, k: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, k=k)
        gym.Wrapper.__init__(self, env)
        h, w, c = env.observation_space.shape
        self.k, self.c = int(k), int(c)
        self.observation_space = gym.spaces.Box(0, 255, (h, w, c * self.k), np.uint8)
        self._stack = np.zeros(self.observation_space.shape, np.uint8)

    def _push(self, frame: np.ndarray) -> np.ndarray:
        self._stack = np.roll(self._stack, -self.c, axis=-1)
        self._stack[..., -self.c:] = frame
        return self._stack.copy()

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._stack[...] = 0
        return self._push(obs), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._push(obs), reward, terminated, truncated, info


__all__ = ["ChannelLast", "StackFrames"]
