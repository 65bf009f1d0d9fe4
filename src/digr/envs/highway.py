"""Highway driving from a top-down 128x128 grayscale image, rendered headless (highway-env).

Stands in for the paper's CARLA driving task (section 4) on machines without a CARLA server.
Needs the ``digr[driving]`` extra (``highway-env``, which brings ``pygame-ce``).
"""

from __future__ import annotations

import bisect
import os
from typing import Any

import gymnasium as gym
import numpy as np

from digr.errors import DigrError, check_int

try:
    import pygame
    from highway_env.envs.common.action import action_factory
    from highway_env.envs.common.observation import GrayscaleObservation
    from highway_env.envs.highway_env import HighwayEnvFast
    from highway_env.road.road import Road, RoadNetwork
    from highway_env.vehicle.objects import Landmark
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise DigrError(f"highway driving needs highway-env ({_exc}): pip install 'digr[driving]'") from None

GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)
"""RGB -> luma weights of the grayscale observation (ITU-R BT.601, as highway-env's example)."""

LANE_MARGIN = 1.0
"""Lateral slack (m) with which highway-env counts a vehicle as on a lane for neighbour search."""


def use_headless_video() -> None:
    """Point SDL at its ``offscreen`` driver unless a real driver was chosen.

    highway-env draws on pygame surfaces. With no display, SDL needs a headless driver; but
    highway-env's viewer disables all drawing when it sees ``SDL_VIDEODRIVER=dummy`` (every
    frame would be black), so ``dummy`` is replaced by ``offscreen`` as well.
    """
    if os.environ.get("SDL_VIDEODRIVER", "") in ("", "dummy"):
        os.environ["SDL_VIDEODRIVER"] = "offscreen"


def keep_process_signals() -> None:
    """Keep SDL from installing its SIGINT/SIGTERM handlers (unless the user set the hint).

    SDL's video init replaces them with handlers that only queue an SDL_QUIT event, which nothing
    here reads: a training or evaluation process would then ignore Ctrl-C and ``kill``.
    """
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")


class _NeighbourCacheRoad(Road):
    """A :class:`Road` whose neighbour search reuses lane projections while vehicles decide.

    Profiling ``highway-fast-v0`` with an image observation put ~43% of the step in
    ``Road.neighbour_vehicles``: each of the ~27 searches per simulation frame projects every
    vehicle onto a lane (``lane.local_coordinates``, a 2-element ``np.dot``). Positions cannot
    change during :meth:`act` (only :meth:`step` moves vehicles), so here each (lane, vehicle)
    projection is computed once per :meth:`act` with the very same lane methods, the on-lane
    vehicles are sorted by longitudinal coordinate, and a search is a bisection. The answer is
    identical to the parent's, ties included (checked against it in the tests); searches over
    connected lane segments, or outside :meth:`act`, use the parent's code.
    """

    _cache: dict | None = None

    def act(self) -> None:
        self._cache = {}
        self._others = [v for v in self.vehicles + self.objects if not isinstance(v, Landmark)]
        self._rank = {id(v): i for i, v in enumerate(self._others)}
        try:
            super().act()
        finally:
            self._cache = None

    def _lane_order(self, lane_index, lane) -> tuple[list[float], list[int], list[float]]:
        """Sorted (s, list index) of the objects on ``lane``, and every object's s."""
        hit = self._cache.get(lane_index)
        if hit is None:
            s_all, on = [], []
            for i, v in enumerate(self._others):
                s_v, lat_v = lane.local_coordinates(v.position)
                s_all.append(s_v)
                if lane.on_lane(v.position, s_v, lat_v, margin=LANE_MARGIN):
                    on.append((s_v, i))
            on.sort()
            hit = self._cache[lane_index] = ([x[0] for x in on], [x[1] for x in on], s_all)
        return hit

    def _has_connections(self, lane_index) -> bool:
        if not self.neighbour_vehicles_connected_lanes:
            return False
        _from, _to, _ = lane_index
        return bool(self.network.graph.get(_to)) or any(_from in d for d in self.network.graph.values())

    def neighbour_vehicles(self, vehicle, lane_index=None):
        lane_index = lane_index or vehicle.lane_index
        if self._cache is None or not lane_index or self._has_connections(lane_index):
            return super().neighbour_vehicles(vehicle, lane_index)
        lane = self.network.get_lane(lane_index)
        s_sorted, i_sorted, s_all = self._lane_order(lane_index, lane)
        me = self._rank.get(id(vehicle), -1)
        s = s_all[me] if me >= 0 else lane.local_coordinates(vehicle.position)[0]
        n = len(s_sorted)
        p = bisect.bisect_left(s_sorted, s)  # entries >= p have s_v >= s: the front candidates
        v_front = v_rear = None
        q = p
        while q < n and i_sorted[q] == me:
            q += 1
        if q < n:
            # The parent keeps the last (highest list index) of equal minima (``s_v <= s_front``).
            best, m = i_sorted[q], s_sorted[q]
            while q + 1 < n and s_sorted[q + 1] == m:
                q += 1
                if i_sorted[q] != me:
                    best = i_sorted[q]
            v_front = self._others[best]
        r = p - 1
        while r >= 0 and i_sorted[r] == me:
            r -= 1
        if r >= 0:
            # ... and the first (lowest list index) of equal maxima (``s_v > s_rear``).
            best, m = i_sorted[r], s_sorted[r]
            while r - 1 >= 0 and s_sorted[r - 1] == m:
                r -= 1
                if i_sorted[r] != me:
                    best = i_sorted[r]
            v_rear = self._others[best]
        return v_front, v_rear


class _TopDownGrayscale(GrayscaleObservation):
    """highway-env's grayscale render, returned as ``(H, W, 1)`` with the road pointing up."""

    def __init__(self, env, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        # highway-env's own check turns drawing off under SDL_VIDEODRIVER=dummy; drawing on an
        # offscreen surface needs no video driver, so keep it on.
        self.viewer.enabled = True
        self._weights = np.asarray(self.weights, dtype=float)
        # Rows run along the road (the surface's width), columns across it (its height).
        self.shape = (self.observation_shape[0], self.observation_shape[1], 1)

    def space(self) -> gym.spaces.Space:
        return gym.spaces.Box(0, 255, self.shape, np.uint8)

    def observe(self) -> np.ndarray:
        self.viewer.observer_vehicle = self.observer_vehicle
        self.viewer.display()
        # surfarray is indexed (x, y, rgb): x is the driving direction. Reversing x puts the road
        # ahead at the top of the image (row 0), like a driver's view; y (to the right of the
        # road direction, i.e. towards the rightmost lane) runs along the columns.
        rgb = pygame.surfarray.array3d(self.viewer.sim_surface)
        gray = np.dot(rgb, self._weights).clip(0, 255).astype(np.uint8)
        return np.ascontiguousarray(gray[::-1, :, None])


class HighwayImageEnv(HighwayEnvFast):
    """Drive fast on a 3-lane highway without colliding, seeing a top-down grayscale image.

    ## Description
    highway-env's ``highway-fast-v0`` (3 lanes, 20 other vehicles with IDM/MOBIL behaviour,
    simulation at 5 Hz, one decision per simulated second, 30 s episodes) rendered headless
    from above, centred on the ego vehicle, instead of its default kinematic feature vector.
    It is the repository's stand-in for the paper's CARLA highway (section 4): same 128x128
    image size and collision-terminated episodes. Rendering needs no display: SDL's
    ``offscreen`` driver is selected (see :func:`use_headless_video`). With ``fast_road`` the
    road's neighbour search reuses lane projections within each decision round
    (:class:`_NeighbourCacheRoad`): about 1.6x the steps per CPU-second of the stock env, with
    identical episodes.

    ## Observation
    ``Box(0, 255, (image_size, image_size, 1), uint8)``: grayscale (0.2989 R + 0.587 G +
    0.114 B) top-down view with the driving direction pointing up, the ego vehicle 30% of the
    height from the bottom, lanes left to right as seen by the driver, ``scaling`` pixels per
    metre (2.0: 19 m behind, 45 m ahead; vehicles are 10x4 pixels).

    ## Action Space
    ``Discrete(5)``, highway-env's meta-actions: 0 LANE_LEFT, 1 IDLE, 2 LANE_RIGHT, 3 FASTER,
    4 SLOWER (a low-level controller follows the chosen lane and target speed).

    ## Rewards
    Per decision: 0.4 x speed term (forward speed mapped from [20, 30] m/s to [0, 1], clipped)
    + ``collision_reward`` (-0.25) on the step that crashes; 0 when off the road. A 30 s
    episode at 30 m/s without a crash earns up to 12; braking to 20 m/s earns nothing, crash or
    not. A crash costs mostly what it ends: the speed reward of the remaining seconds.

    This is highway-env's reward with three of its defaults changed (pass them back in
    ``config`` to restore them): ``normalize_reward=False``, ``right_lane_reward=0`` and
    ``collision_reward=-0.25`` (highway-env: -1). Measured here with PPO teachers (Table 2
    settings, one env; ``results/highway/README.md``): normalised from [-1, 0.5] to [0, 1],
    every step survived is worth 0.67-1.0 whatever the speed, and the teacher settled on braking
    to 20 m/s and never changing lane (argmax SLOWER on every state by 20k steps); without
    normalisation the 0.1 rightmost-lane bonus still paid for surviving slowly (the same by 20k
    steps); with neither but the -1 crash, it drove flat out into the first slow car
    (argmax FASTER, 8.5 decisions per episode, unchanged from 20k to 78k steps), while with
    -0.25 its episodes were getting longer by 75k steps. Such constant policies' saliency and
    robustness say nothing about driving; the teacher has to weave or brake for traffic, which
    is the behaviour the paper's driving figures explain.

    ## Camera stream
    ``camera_fps=k`` (used by ``digr evaluate lag``, Figure 6): one ``step`` per camera frame,
    every ``1/k`` simulated seconds, physics at ``k`` Hz; the action passed is applied on the
    first frame of each decision period (``info["decision"]`` True) and ignored on the others,
    so the agent still decides once per simulated second, as it was trained, while the
    observations arrive like the paper's 0.05 s camera (``k = 20``). Rewards are per frame.

    ## Termination
    Terminated when the ego vehicle collides; truncated after ``duration`` simulated seconds
    (30 steps by default).

    ## Info
    ``info["success"]``: bool, True on the last step of an episode that ended by the time
    limit without a collision (False on every other step). highway-env's ``speed``,
    ``crashed``, ``action`` and ``rewards`` (the unweighted reward terms).
    """

    def __init__(
        self,
        config: dict | None = None,
        render_mode: str | None = None,
        *,
        image_size: int = 128,
        scaling: float = 2.0,
        fast_road: bool = True,
        camera_fps: int | None = None,
    ) -> None:
        if image_size < 8:
            raise DigrError(f"image_size must be >= 8, got {image_size}")
        if scaling <= 0:
            raise DigrError(f"scaling must be > 0, got {scaling}")
        config = dict(config or {})
        self._frames_per_decision = 1
        if camera_fps is not None:
            camera_fps = check_int("camera_fps", camera_fps)
            decision_hz = config.get("policy_frequency", self.default_config()["policy_frequency"])
            if camera_fps % decision_hz:
                raise DigrError(f"camera_fps ({camera_fps}) must be a multiple of the decision "
                                f"frequency ({decision_hz} Hz)")
            self._frames_per_decision = int(camera_fps) // int(decision_hz)
            # One env step per camera frame; the physics runs at the frame rate too.
            config.update(simulation_frequency=int(camera_fps), policy_frequency=int(camera_fps))
        self._frame = 0
        keep_process_signals()  # whatever the render mode
        if render_mode != "human":
            use_headless_video()
        self.fast_road = fast_road
        obs = {
            "type": "GrayscaleObservation", "observation_shape": (image_size, image_size),
            "stack_size": 1, "weights": list(GRAY_WEIGHTS), "scaling": scaling,
        }
        super().__init__(config={"observation": obs, **config}, render_mode=render_mode)

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        # See the class docstring, "Rewards": survival alone must not pay.
        config.update(normalize_reward=False, right_lane_reward=0.0, collision_reward=-0.25)
        return config

    def define_spaces(self) -> None:
        cfg = dict(self.config["observation"])
        if cfg.get("type") != "GrayscaleObservation":
            raise DigrError(f"HighwayImageEnv observes images; got observation config {cfg}")
        cfg.pop("type")
        # Called twice per reset by highway-env (to re-link the ego vehicle); one observation
        # object (and one pygame surface) serves the whole life of the env.
        if getattr(self, "_image_obs", None) is None:
            self._image_obs = _TopDownGrayscale(self, **cfg)
        self.observation_type = self._image_obs
        self.action_type = action_factory(self, self.config["action"])
        self.observation_space = self.observation_type.space()
        self.action_space = self.action_type.space()

    def _create_road(self) -> None:
        road_cls = _NeighbourCacheRoad if self.fast_road else Road
        self.road = road_cls(
            network=RoadNetwork.straight_road_network(self.config["lanes_count"], speed_limit=30),
            np_random=self.np_random,
            record_history=self.config["show_trajectories"],
            neighbour_vehicles_connected_lanes=self.config["neighbour_vehicles_connected_lanes"],
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        self._frame = 0
        info["success"] = False
        info["decision"] = True
        return obs, info

    def step(self, action):
        # With camera_fps, only every k-th frame's action is applied (k = fps / decision rate);
        # in between the ego vehicle keeps its target lane and speed, as it does between
        # decisions in the 1 Hz env (highway-env applies an action once per decision period).
        decision = self._frame % self._frames_per_decision == 0
        self._frame += 1
        obs, reward, terminated, truncated, info = super().step(action if decision else None)
        info["decision"] = decision
        # Success = the episode ran to its time limit without a collision (the paper's
        # driving success); a crash terminates, so it can never be a success.
        info["success"] = bool(truncated and not terminated and not self.vehicle.crashed)
        return obs, float(reward), terminated, truncated, info
