"""Red-Fetch-Green: the MiniGrid fetch task of the DIGR paper (section 2), seen from above."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from minigrid.core.grid import Grid
from minigrid.core.world_object import Ball, Key, WorldObj
from minigrid.envs.fetch import FetchEnv

TILE = 8
"""Pixels per grid tile in the observation."""

MASK_NAMES = ("agent", "target", "distractors", "walls", "empty")
"""Order of the ground-truth masks in ``info["masks"]``."""

MINIMAL_ACTIONS = (0, 1, 2, 3)
"""left, right, forward, pickup: drop/toggle/done change nothing in this task."""


class RedFetchGreenEnv(FetchEnv):
    """The red agent must pick up the green object in an 8x8 room with two distractors.

    ## Description
    An 8x8 MiniGrid room (6x6 walkable floor inside the walls) holds the red agent, one green
    target and a yellow and a blue distractor. Each object is independently a key or a ball.
    Unlike ``MiniGrid-Fetch`` the target colour is fixed, so the task is solvable from pixels
    alone; the paper explains policies that see the full room.

    ## Observation
    ``Box(0, 255, (64, 64, 3), uint8)``: the whole room rendered at 8 pixels per tile, without
    the agent's view-cone highlight. The agent is the red triangle pointing in its heading.

    ## Action Space
    ``Discrete(4)`` by default: 0 turn left, 1 turn right, 2 move forward, 3 pick up.
    With ``action_set="full"`` the 7 MiniGrid actions (drop, toggle, done are no-ops here).

    ## Rewards
    +1 for picking up the green object, -1 for picking up any other object, 0 otherwise.

    ## Termination
    The episode terminates on any pickup and is truncated after ``max_steps`` (320) steps.

    ## Info
    ``info["success"]``: bool, True on the step that picks up the green object.
    ``info["masks"]``: ``(5, 64, 64) bool`` per-pixel ground-truth masks in the order of
    :data:`MASK_NAMES` (agent, target, distractors, walls, empty floor). Each is a union of
    whole tiles; the saliency benchmark uses agent+target as important and empty as
    unimportant.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        *,
        max_steps: int = 320,
        action_set: str = "minimal",
        render_mode: str | None = "rgb_array",
        **kwargs: Any,
    ) -> None:
        if action_set not in ("minimal", "full"):
            raise ValueError(f"action_set must be 'minimal' or 'full', got {action_set!r}")
        super().__init__(size=8, numObjs=3, max_steps=max_steps, render_mode=render_mode, **kwargs)
        self.action_set = action_set
        self._actions = MINIMAL_ACTIONS if action_set == "minimal" else tuple(range(7))
        self.action_space = gym.spaces.Discrete(len(self._actions))
        self.observation_space = gym.spaces.Box(0, 255, (8 * TILE, 8 * TILE, 3), np.uint8)
        self.target: WorldObj | None = None
        self.distractors: list[WorldObj] = []

    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        objs = []
        for color in ("green", "yellow", "blue"):
            cls = Key if self._rand_int(0, 2) == 0 else Ball
            obj = cls(color)
            self.place_obj(obj)
            objs.append(obj)
        self.place_agent()
        self.target, self.distractors = objs[0], objs[1:]
        self.targetType, self.targetColor = self.target.type, "green"
        self.mission = f"fetch the green {self.target.type}"

    def gen_obs(self) -> np.ndarray:
        # The egocentric view MiniGrid computes by default is never used: render the room only.
        return self.grid.render(TILE, self.agent_pos, self.agent_dir, highlight_mask=None)

    def masks(self) -> np.ndarray:
        """Ground-truth masks, ``(5, 64, 64) bool`` in :data:`MASK_NAMES` order."""
        tiles = np.zeros((5, self.height, self.width), dtype=bool)
        tiles[3] = True
        tiles[3, 1:-1, 1:-1] = False  # walls are the border of the room only
        tiles[4, 1:-1, 1:-1] = True
        ax, ay = self.agent_pos
        tiles[0, ay, ax] = True
        for k, obj in ((1, self.target), *((2, d) for d in self.distractors)):
            if obj is not None and obj.cur_pos is not None and obj.cur_pos[0] >= 0:
                tiles[k, obj.cur_pos[1], obj.cur_pos[0]] = True
        tiles[4] &= ~(tiles[0] | tiles[1] | tiles[2])
        return tiles.repeat(TILE, axis=1).repeat(TILE, axis=2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, _ = super().reset(seed=seed, options=options)
        return obs, {"success": False, "masks": self.masks()}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r} for {self.action_space}")
        obs, _, terminated, truncated, _ = MiniGridEnvStep(self, self._actions[int(action)])
        reward, success = 0.0, False
        if self.carrying is not None:
            success = self.carrying is self.target
            reward = 1.0 if success else -1.0
            terminated = True
        return obs, reward, terminated, truncated, {"success": success, "masks": self.masks()}


def MiniGridEnvStep(env: RedFetchGreenEnv, action: int):
    """MiniGrid's own step, skipping FetchEnv's mission-string reward logic."""
    from minigrid.minigrid_env import MiniGridEnv

    return MiniGridEnv.step(env, action)
