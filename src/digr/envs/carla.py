"""CARLA highway driving from a 128x128 front camera (paper section 4): an adapter to a user's server.

Needs a running CARLA server (0.9.x, e.g. ``./CarlaUE4.sh -RenderOffScreen``) and the
``digr[carla]`` extra (the ``carla`` client package, matching the server's version). Nothing
here touches ``carla`` until :class:`CarlaDrivingEnv` is constructed, so the rest of digr
imports and runs without it.
"""

from __future__ import annotations

import queue
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

from digr.errors import DigrError

DEFAULT_ACTIONS: tuple[tuple[float, float, float], ...] = (
    (0.5, -0.1, 0.0),
    (0.5, 0.0, 0.0),
    (0.5, 0.1, 0.0),
    (1.0, 0.0, 0.0),
    (0.0, 0.0, 0.5),
)
"""``(throttle, steer, brake)`` per discrete action: steer left, straight, steer right,
full throttle, brake. Steering is gentle (0.1 of full lock) because at highway speed a lane
change takes about a second of it."""

ACTION_NAMES = ("LEFT", "STRAIGHT", "RIGHT", "FASTER", "BRAKE")
"""Names of :data:`DEFAULT_ACTIONS`."""


def _import_carla():
    try:
        import carla
    except ImportError:
        raise DigrError("the CARLA env needs the carla client package (pip install 'digr[carla]', "
                        "same version as the server) and a running CARLA server") from None
    return carla


class CarlaDrivingEnv(gym.Env):
    """Drive along a CARLA highway from a front camera without colliding.

    ## Description
    Connects to a CARLA server at ``host:port`` (it must already be running; this env never
    starts one), loads ``town`` (``Town04`` has the highway loop) unless it is already loaded,
    and switches the world to synchronous mode with ``fixed_delta_seconds`` 0.05: every
    :meth:`step` applies one control and advances the simulation by exactly one 0.05 s tick,
    so the camera delivers a frame every 0.05 s of simulated time (20 fps), as in the paper.
    On reset the ego car (``vehicle_blueprint``) is spawned at a spawn point drawn with the
    env's seeded generator (from ``spawn_points`` when given: pass the indices of highway
    spawn points of the map to stay on the highway), ``n_traffic`` vehicles on autopilot
    (traffic manager in synchronous mode, seeded) at other spawn points, and a collision
    sensor. :meth:`close` destroys the actors and restores the world's previous settings.
    CARLA itself is not bit-for-bit deterministic; seeding fixes the spawn choices and the
    traffic manager's random device only.

    ## Observation
    ``Box(0, 255, (image_size, image_size, 3), uint8)``: RGB image of a camera 1.5 m ahead of
    the car's centre and 2.4 m up, looking forward (``fov`` degrees), taken at the tick.

    ## Action Space
    ``Discrete(len(actions))``; by default 5 (:data:`DEFAULT_ACTIONS`): 0 steer left (throttle
    0.5, steer -0.1), 1 straight (throttle 0.5), 2 steer right (throttle 0.5, steer 0.1),
    3 full throttle, 4 brake 0.5. Each is held for one tick.

    ## Rewards
    Forward progress in metres during the tick: the car's displacement projected on the
    driving direction of the lane it started the tick in (road waypoint), so driving along
    the road at 20 m/s earns about 1 per step and driving backwards or across is not paid.
    A collision costs ``collision_penalty`` (default 100) on the step it happens.

    ## Termination
    Terminated on the first collision (collision sensor); truncated after ``max_steps`` steps
    (1000 = 50 s).

    ## Info
    ``info["success"]``: bool, True on the last step of an episode truncated without a
    collision (False on every other step). ``collision`` (bool), ``collided_with`` (type id of
    the other actor, or ``None``), ``speed`` (m/s), ``progress`` (metres this episode),
    ``frame`` (CARLA frame number).

    ``carla_module`` (the imported ``carla`` package or a stand-in with the same calls) and
    ``client_factory`` (``(host, port) -> client``) exist for tests; by default ``carla`` is
    imported here and ``carla.Client`` is used.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int = 2000,
        timeout_s: float = 10.0,
        town: str = "Town04",
        image_size: int = 128,
        fov: float = 90.0,
        fixed_delta_seconds: float = 0.05,
        max_steps: int = 1000,
        n_traffic: int = 30,
        spawn_points: Sequence[int] | None = None,
        actions: Sequence[tuple[float, float, float]] = DEFAULT_ACTIONS,
        collision_penalty: float = 100.0,
        vehicle_blueprint: str = "vehicle.tesla.model3",
        traffic_manager_port: int = 8000,
        render_mode: str | None = None,
        carla_module: Any = None,
        client_factory: Callable[[str, int], Any] | None = None,
    ) -> None:
        if image_size < 8:
            raise DigrError(f"image_size must be >= 8, got {image_size}")
        if fixed_delta_seconds <= 0 or timeout_s <= 0 or max_steps < 1 or n_traffic < 0:
            raise DigrError("fixed_delta_seconds and timeout_s must be > 0, max_steps >= 1, "
                            "n_traffic >= 0")
        if not actions or any(len(a) != 3 for a in actions):
            raise DigrError("actions must be a non-empty list of (throttle, steer, brake)")
        self.carla = carla_module if carla_module is not None else _import_carla()
        self.host, self.port, self.timeout_s = host, int(port), float(timeout_s)
        self.image_size, self.fov = int(image_size), float(fov)
        self.fixed_delta_seconds, self.max_steps = float(fixed_delta_seconds), int(max_steps)
        self.n_traffic = int(n_traffic)
        self.spawn_indices = None if spawn_points is None else [int(i) for i in spawn_points]
        self.actions = tuple(tuple(float(x) for x in a) for a in actions)
        self.collision_penalty = float(collision_penalty)
        self.vehicle_blueprint = vehicle_blueprint
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(len(self.actions))

        factory = client_factory or self.carla.Client
        where = f"{host}:{port}"
        try:
            self.client = factory(host, self.port)
            self.client.set_timeout(self.timeout_s)
            self.server_version = self.client.get_server_version()  # the first call that waits
            self.world = self.client.get_world()
            if self.world.get_map().name.split("/")[-1] != town:
                self.world = self.client.load_world(town)
            self.traffic_manager = self.client.get_trafficmanager(traffic_manager_port)
        except RuntimeError as exc:
            raise DigrError(f"no CARLA server answered at {where} within {self.timeout_s:g} s "
                            f"(start one, e.g. ./CarlaUE4.sh -RenderOffScreen): "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        self._original_settings = self.world.get_settings()
        settings = self.world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = self.fixed_delta_seconds
        self.world.apply_settings(settings)
        self.traffic_manager.set_synchronous_mode(True)
        self.map = self.world.get_map()
        self._actors: list[Any] = []
        self._images: queue.Queue = queue.Queue()
        self._collisions: list[Any] = []
        self._last_rgb = np.zeros(self.observation_space.shape, np.uint8)
        self.ego = None
        self._frame = 0
        self._closed = False

    # -- actors ---------------------------------------------------------------------------
    def _destroy_actors(self) -> None:
        for actor in reversed(self._actors):
            # ``Sensor.is_listening`` is a property in older CARLA releases, a method in newer.
            listening = getattr(actor, "is_listening", False)
            if callable(listening):
                listening = listening()
            if listening:
                actor.stop()
            actor.destroy()
        self._actors = []
        self.ego = None

    def _spawn(self) -> None:
        carla = self.carla
        points = self.map.get_spawn_points()
        if not points:
            raise DigrError(f"map {self.map.name} has no spawn points")
        candidates = self.spawn_indices if self.spawn_indices is not None else range(len(points))
        candidates = [i for i in candidates if 0 <= i < len(points)]
        if not candidates:
            raise DigrError(f"no valid spawn point index among {self.spawn_indices} "
                            f"({len(points)} on {self.map.name})")
        library = self.world.get_blueprint_library()
        ego_bp = library.find(self.vehicle_blueprint)
        if ego_bp.has_attribute("role_name"):
            ego_bp.set_attribute("role_name", "hero")
        order = [candidates[i] for i in self.np_random.permutation(len(candidates))]
        for ego_idx in order:
            self.ego = self.world.try_spawn_actor(ego_bp, points[ego_idx])
            if self.ego is not None:
                break
        if self.ego is None:
            raise DigrError("could not spawn the ego vehicle: every spawn point is occupied")
        self._actors.append(self.ego)

        cam_bp = library.find("sensor.camera.rgb")
        for key, value in (("image_size_x", self.image_size), ("image_size_y", self.image_size),
                           ("fov", self.fov), ("sensor_tick", 0.0)):
            cam_bp.set_attribute(key, str(value))
        cam_tf = carla.Transform(carla.Location(x=1.5, z=2.4))
        camera = self.world.spawn_actor(cam_bp, cam_tf, attach_to=self.ego)
        self._actors.append(camera)
        self._images = queue.Queue()
        camera.listen(self._images.put)

        col_bp = library.find("sensor.other.collision")
        sensor = self.world.spawn_actor(col_bp, carla.Transform(), attach_to=self.ego)
        self._actors.append(sensor)
        self._collisions = []
        sensor.listen(self._collisions.append)

        others = [int(i) for i in self.np_random.permutation(len(points)) if i != ego_idx]
        # Cars only: bicycles and motorbikes on a highway make odd traffic.
        traffic_bps = [bp for bp in library.filter("vehicle.*")
                       if not bp.has_attribute("number_of_wheels")
                       or bp.get_attribute("number_of_wheels").as_int() == 4]
        tm_port = self.traffic_manager.get_port()
        spawned = 0
        for i in others:
            if spawned >= self.n_traffic or not traffic_bps:
                break
            bp = traffic_bps[int(self.np_random.integers(len(traffic_bps)))]
            car = self.world.try_spawn_actor(bp, points[i])
            if car is not None:
                car.set_autopilot(True, tm_port)
                self._actors.append(car)
                spawned += 1

    # -- simulation -----------------------------------------------------------------------
    def _tick(self) -> np.ndarray:
        """Advance one fixed step and return the camera image of that frame, ``(H, W, 3)`` RGB."""
        frame = self.world.tick()
        while True:
            try:
                image = self._images.get(timeout=self.timeout_s)
            except queue.Empty:
                raise DigrError(f"the CARLA server at {self.host}:{self.port} sent no camera "
                                f"image within {self.timeout_s:g} s") from None
            if image.frame >= frame:
                break
        self._frame = image.frame
        bgra = np.frombuffer(image.raw_data, dtype=np.uint8).reshape(image.height, image.width, 4)
        self._last_rgb = np.ascontiguousarray(bgra[:, :, 2::-1])
        return self._last_rgb

    def _speed(self) -> float:
        v = self.ego.get_velocity()
        return float(np.sqrt(v.x * v.x + v.y * v.y + v.z * v.z))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self._closed:
            raise DigrError("this CARLA env was closed")
        self._destroy_actors()
        self.traffic_manager.set_random_device_seed(int(self.np_random.integers(2**31 - 1)))
        self._spawn()
        obs = self._tick()
        self._steps = 0
        self._progress = 0.0
        return obs, self._info(False, None)

    def step(self, action):
        throttle, steer, brake = self.actions[int(action)]
        before = self.ego.get_location()
        forward = self.map.get_waypoint(before).transform.get_forward_vector()
        self.ego.apply_control(self.carla.VehicleControl(throttle=throttle, steer=steer, brake=brake))
        obs = self._tick()
        after = self.ego.get_location()
        # Eq.: r = (x_t+1 - x_t) . d_lane - penalty * collided, d_lane the lane's unit direction.
        progress = (after.x - before.x) * forward.x + (after.y - before.y) * forward.y
        self._progress += progress
        self._steps += 1
        collided = bool(self._collisions)
        other = None
        if collided:
            actor = getattr(self._collisions[0], "other_actor", None)
            other = getattr(actor, "type_id", None)
        reward = float(progress) - (self.collision_penalty if collided else 0.0)
        terminated = collided
        truncated = self._steps >= self.max_steps and not terminated
        info = self._info(collided, other)
        info["success"] = bool(truncated)
        return obs, reward, terminated, truncated, info

    def _info(self, collided: bool, other: str | None) -> dict[str, Any]:
        return {"success": False, "collision": collided, "collided_with": other,
                "speed": self._speed(), "progress": float(getattr(self, "_progress", 0.0)),
                "frame": int(self._frame)}

    def render(self) -> np.ndarray | None:
        return self._last_rgb.copy() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._destroy_actors()
            self.traffic_manager.set_synchronous_mode(False)
            self.world.apply_settings(self._original_settings)
        except RuntimeError:  # server already gone: nothing left to clean up
            pass
