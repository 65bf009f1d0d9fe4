"""CARLA adapter against a fake ``carla`` module (no server, no carla package needed).

The fake implements only the calls the adapter makes. Its world is a straight road along +x:
the ego moves at ``20 * throttle`` m/s (``0`` when braking), sideways by ``steer * speed``, and
hits an obstacle when its x passes ``world.obstacle_x``. Camera frames are BGRA with
B = frame number, G = int(ego x), R = 200, so the tests can check colour order and timing.
"""

from __future__ import annotations

import copy
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from digr.envs.carla import DEFAULT_ACTIONS, CarlaDrivingEnv
from digr.errors import DigrError


# -- the fake carla module --------------------------------------------------------------------
class Location:
    def __init__(self, x=0.0, y=0.0, z=0.0):
        self.x, self.y, self.z = float(x), float(y), float(z)


class Rotation:
    def __init__(self, pitch=0.0, yaw=0.0, roll=0.0):
        self.pitch, self.yaw, self.roll = pitch, yaw, roll


class Transform:
    def __init__(self, location=None, rotation=None):
        self.location = location or Location()
        self.rotation = rotation or Rotation()

    def get_forward_vector(self):
        return Location(1.0, 0.0, 0.0)  # the fake road runs along +x


class VehicleControl:
    def __init__(self, throttle=0.0, steer=0.0, brake=0.0):
        self.throttle, self.steer, self.brake = throttle, steer, brake


class Attribute:
    def __init__(self, value):
        self.value = value

    def as_int(self):
        return int(self.value)


class Blueprint:
    def __init__(self, id, **attrs):
        self.id = id
        self.attributes = {k: Attribute(v) for k, v in attrs.items()}

    def has_attribute(self, key):
        return key in self.attributes

    def get_attribute(self, key):
        return self.attributes[key]

    def set_attribute(self, key, value):
        self.attributes[key] = Attribute(value)


class Library:
    def __init__(self):
        self.bps = [Blueprint("vehicle.tesla.model3", number_of_wheels=4, role_name="autopilot"),
                    Blueprint("vehicle.audi.tt", number_of_wheels=4),
                    Blueprint("vehicle.yamaha.yzf", number_of_wheels=2),
                    Blueprint("sensor.camera.rgb"), Blueprint("sensor.other.collision")]

    def find(self, id):
        return next(copy.deepcopy(b) for b in self.bps if b.id == id)

    def filter(self, pattern):
        return [b for b in self.bps if b.id.startswith(pattern.rstrip("*"))]


class Actor:
    def __init__(self, world, bp, transform, parent=None):
        self.world, self.type_id, self.parent = world, bp.id, parent
        self.attributes = {k: a.value for k, a in bp.attributes.items()}
        self.location = copy.deepcopy(transform.location)
        self.speed = 0.0
        self.control = VehicleControl()
        self.callback = None
        self.alive = True
        self.autopilot = None

    # vehicles
    def get_location(self):
        return copy.deepcopy(self.location)

    def get_velocity(self):
        return Location(self.speed, 0.0, 0.0)

    def apply_control(self, control):
        self.control = control

    def set_autopilot(self, on, port):
        self.autopilot = (on, port)

    # sensors
    def listen(self, callback):
        self.callback = callback

    @property
    def is_listening(self):
        return self.callback is not None

    def stop(self):
        self.callback = None

    def destroy(self):
        self.alive = False
        self.world.actors.remove(self)
        return True


class Map:
    def __init__(self, name):
        self.name = f"Carla/Maps/{name}"

    def get_spawn_points(self):
        return [Transform(Location(x=10.0 * i, y=3.5 * (i % 3))) for i in range(8)]

    def get_waypoint(self, location):
        return SimpleNamespace(transform=Transform(Location(location.x, 0.0)))


class Settings:
    def __init__(self):
        self.synchronous_mode = False
        self.fixed_delta_seconds = None


class World:
    def __init__(self, town="Town10HD"):
        self.map = Map(town)
        self.settings = Settings()
        self.actors: list[Actor] = []
        self.frame = 100
        self.obstacle_x = float("inf")
        self.camera_works = True
        self.library = Library()

    def get_map(self):
        return self.map

    def get_settings(self):
        return copy.deepcopy(self.settings)

    def apply_settings(self, settings):
        self.settings = copy.deepcopy(settings)

    def get_blueprint_library(self):
        return self.library

    def try_spawn_actor(self, bp, transform):
        taken = any(a.parent is None and abs(a.location.x - transform.location.x) < 1e-6
                    and abs(a.location.y - transform.location.y) < 1e-6 for a in self.actors)
        if taken:
            return None
        actor = Actor(self, bp, transform)
        self.actors.append(actor)
        return actor

    def spawn_actor(self, bp, transform, attach_to=None):
        actor = Actor(self, bp, transform, parent=attach_to)
        self.actors.append(actor)
        return actor

    def tick(self):
        assert self.settings.synchronous_mode, "tick() outside synchronous mode"
        dt = self.settings.fixed_delta_seconds
        self.frame += 1
        for car in [a for a in self.actors if a.type_id.startswith("vehicle.")]:
            c = car.control
            car.speed = 0.0 if c.brake > 0 else 20.0 * c.throttle
            car.location.x += car.speed * dt
            car.location.y += c.steer * car.speed * dt
        for s in [a for a in self.actors if a.callback is not None]:
            ego = s.parent
            if s.type_id == "sensor.camera.rgb" and self.camera_works:
                w, h = int(s.attributes["image_size_x"]), int(s.attributes["image_size_y"])
                px = np.array([self.frame % 256, int(ego.location.x) % 256, 200, 255], np.uint8)
                s.callback(SimpleNamespace(frame=self.frame, width=w, height=h,
                                           raw_data=np.tile(px, (h, w, 1)).tobytes()))
            if s.type_id == "sensor.other.collision" and ego.location.x >= self.obstacle_x:
                s.callback(SimpleNamespace(frame=self.frame, other_actor=SimpleNamespace(
                    type_id="static.prop.barrier")))
        return self.frame


class TrafficManager:
    def __init__(self, port):
        self.port, self.sync, self.seed = port, False, None

    def set_synchronous_mode(self, on):
        self.sync = on

    def set_random_device_seed(self, seed):
        self.seed = seed

    def get_port(self):
        return self.port


class Client:
    world = None  # set by the fixture: the server's one world

    def __init__(self, host, port):
        self.host, self.port, self.timeout = host, port, None
        self.loaded = []

    def set_timeout(self, seconds):
        self.timeout = seconds

    def get_server_version(self):
        return "0.9.15"

    def get_world(self):
        return self.world

    def load_world(self, town):
        self.loaded.append(town)
        Client.world = World(town)
        return Client.world

    def get_trafficmanager(self, port):
        return TrafficManager(port)


class DeadClient(Client):
    def get_server_version(self):
        raise RuntimeError("time-out of 10000ms while waiting for the simulator, make sure the "
                           "simulator is ready and connected to localhost:2000\nsecond line")


fake_carla = SimpleNamespace(Client=Client, Transform=Transform, Location=Location,
                             Rotation=Rotation, VehicleControl=VehicleControl)


@pytest.fixture
def make_env():
    Client.world = World()
    made = []

    def make(**kw):
        env = CarlaDrivingEnv(carla_module=fake_carla, n_traffic=3, timeout_s=0.5, **kw)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


# -- tests ----------------------------------------------------------------------------------
def test_importing_the_module_does_not_import_carla():
    # digr.envs.carla is imported at the top of this file; carla is only needed on construction.
    assert "carla" not in sys.modules or sys.modules["carla"] is None


def test_missing_carla_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "carla", None)  # makes `import carla` fail
    with pytest.raises(DigrError, match="carla client package") as err:
        CarlaDrivingEnv()
    assert "\n" not in str(err.value)


def test_no_server_is_a_one_line_error():
    with pytest.raises(DigrError) as err:
        CarlaDrivingEnv(carla_module=fake_carla, client_factory=DeadClient, host="sim.local",
                        port=2001, timeout_s=2)
    msg = str(err.value)
    assert "\n" not in msg
    assert "no CARLA server answered at sim.local:2001 within 2 s" in msg


def test_world_set_up_synchronous_on_the_highway_town(make_env):
    env = make_env()
    assert env.world.map.name.endswith("Town04")  # loaded because the server had Town10HD
    assert env.world.settings.synchronous_mode is True
    assert env.world.settings.fixed_delta_seconds == 0.05
    assert env.traffic_manager.sync is True
    assert env.action_space.n == len(DEFAULT_ACTIONS) == 5
    assert env.observation_space.shape == (128, 128, 3)


def test_reset_spawns_ego_sensors_and_traffic(make_env):
    env = make_env()
    obs, info = env.reset(seed=0)
    assert obs.shape == (128, 128, 3) and obs.dtype == np.uint8 and obs in env.observation_space
    # BGRA -> RGB: R is the constant 200, B the frame number of the tick that produced it.
    assert (obs[..., 0] == 200).all() and (obs[..., 2] == info["frame"] % 256).all()
    types = sorted(a.type_id for a in env.world.actors)
    assert types.count("sensor.camera.rgb") == 1 and types.count("sensor.other.collision") == 1
    cars = [a for a in env.world.actors if a.type_id.startswith("vehicle.")]
    assert len(cars) == 4  # ego + 3 traffic cars, never the motorbike
    assert all(a.autopilot == (True, 8000) for a in cars if a is not env.ego)
    assert env.ego.attributes["role_name"] == "hero"
    cam = next(a for a in env.world.actors if a.type_id == "sensor.camera.rgb")
    assert cam.attributes["image_size_x"] == "128" and cam.parent is env.ego
    assert info["success"] is False and info["collision"] is False


def test_same_seed_same_spawns(make_env):
    env = make_env()
    env.reset(seed=3)
    first = [(a.type_id, a.location.x, a.location.y) for a in env.world.actors]
    seed_tm = env.traffic_manager.seed
    env.reset(seed=3)
    assert [(a.type_id, a.location.x, a.location.y) for a in env.world.actors] == first
    assert env.traffic_manager.seed == seed_tm
    # Reset replaced the actors instead of piling them up.
    assert len(env.world.actors) == len(first)


def test_reward_is_forward_progress_per_tick(make_env):
    env = make_env()
    env.reset(seed=0)
    _, r_straight, *_ = env.step(1)  # throttle 0.5 -> 10 m/s for 0.05 s
    _, r_fast, *_ = env.step(3)  # throttle 1.0 -> 20 m/s
    _, r_brake, *_, info = env.step(4)
    assert r_straight == pytest.approx(0.5) and r_fast == pytest.approx(1.0) and r_brake == 0.0
    assert info["progress"] == pytest.approx(1.5)
    # Steering moves the car sideways, which is not forward progress.
    _, r_left, *_ = env.step(0)
    assert r_left == pytest.approx(0.5)
    assert env.ego.control.steer == -0.1


def test_collision_terminates_with_penalty(make_env):
    env = make_env(collision_penalty=50.0)
    env.reset(seed=0)
    env.world.obstacle_x = env.ego.location.x + 1.5
    rewards, term = [], False
    for _ in range(5):
        _, r, term, trunc, info = env.step(3)
        rewards.append(r)
        if term:
            break
    assert term and not trunc
    assert len(rewards) == 2 and rewards[-1] == pytest.approx(1.0 - 50.0)
    assert info["collision"] is True and info["collided_with"] == "static.prop.barrier"
    assert info["success"] is False


def test_time_limit_without_collision_is_success(make_env):
    env = make_env(max_steps=3)
    env.reset(seed=0)
    out = []
    for _ in range(3):
        _, _, term, trunc, info = env.step(1)
        out.append((term, trunc, info["success"]))
    assert out == [(False, False, False), (False, False, False), (False, True, True)]


def test_silent_camera_is_a_clear_error(make_env):
    env = make_env()
    env.world.camera_works = False
    with pytest.raises(DigrError, match="no camera image within 0.5 s"):
        env.reset(seed=0)


def test_close_destroys_actors_and_restores_settings(make_env):
    env = make_env(render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert np.array_equal(env.render(), obs)
    world = env.world
    env.close()
    assert world.actors == []
    assert world.settings.synchronous_mode is False and world.settings.fixed_delta_seconds is None
    assert env.traffic_manager.sync is False
    with pytest.raises(DigrError, match="closed"):
        env.reset()


@pytest.mark.parametrize("kw", [dict(image_size=4), dict(max_steps=0), dict(actions=[(1.0, 0.0)])])
def test_bad_arguments_raise_digr_error(kw):
    with pytest.raises(DigrError):
        CarlaDrivingEnv(carla_module=fake_carla, **kw)
