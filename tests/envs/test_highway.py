"""Highway image env: headless frames, orientation, seeding, success/crash, fast neighbour search."""

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("highway_env")

from highway_env.road.road import Road, RoadNetwork  # noqa: E402
from highway_env.vehicle.kinematics import Vehicle  # noqa: E402

from digr.envs import highway as hw  # noqa: E402
from digr.envs.highway import HighwayImageEnv  # noqa: E402


@pytest.fixture(scope="module")
def env():
    e = HighwayImageEnv()
    yield e
    e.close()


def test_observation_layout(env):
    obs, info = env.reset(seed=0)
    assert env.observation_space == gym.spaces.Box(0, 255, (128, 128, 1), np.uint8)
    assert env.action_space == gym.spaces.Discrete(5)
    assert obs.shape == (128, 128, 1) and obs.dtype == np.uint8 and obs in env.observation_space
    assert info["success"] is False


def test_gymnasium_env_checker():
    from gymnasium.utils.env_checker import check_env

    check_env(HighwayImageEnv(), skip_render_check=True)


def _is_drawn(obs):
    # Background, road, lane marks and vehicles: several grey levels, not one flat colour.
    return obs.max() > 0 and len(np.unique(obs)) >= 4


@pytest.mark.parametrize("driver", ["dummy", "offscreen", None])
def test_frames_are_not_black_under_any_headless_driver(monkeypatch, driver):
    # highway-env turns drawing off under SDL_VIDEODRIVER=dummy (black frames).
    if driver is None:
        monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    else:
        monkeypatch.setenv("SDL_VIDEODRIVER", driver)
    e = HighwayImageEnv()
    obs, _ = e.reset(seed=1)
    assert _is_drawn(obs)
    obs, *_ = e.step(1)
    assert _is_drawn(obs)


def test_road_points_up(env):
    obs, _ = env.reset(seed=2)
    img = obs[..., 0]
    bright = img >= 250  # the continuous white road edges
    # Road edges are continuous lines along the driving direction: full-height columns, and no
    # row is mostly white.
    assert bright.mean(axis=0).max() > 0.95
    assert bright.mean(axis=1).max() < 0.5


def _rollout(seed, steps, **kw):
    e = HighwayImageEnv(**kw)
    obs, _ = e.reset(seed=seed)
    rng = np.random.default_rng(5)
    out = [obs]
    rewards = []
    for _ in range(steps):
        obs, r, term, trunc, _ = e.step(int(rng.integers(5)))
        out.append(obs)
        rewards.append(r)
        if term or trunc:
            break
    e.close()
    return np.stack(out), rewards


def test_same_seed_same_episode():
    a, ra = _rollout(3, 6)
    b, rb = _rollout(3, 6)
    assert np.array_equal(a, b) and ra == rb
    c, _ = _rollout(4, 0)
    assert not np.array_equal(a[0], c[0])


def test_fast_road_gives_the_same_episode():
    a, ra = _rollout(11, 8, fast_road=True)
    b, rb = _rollout(11, 8, fast_road=False)
    assert np.array_equal(a, b) and ra == rb


def test_fast_neighbour_search_agrees_with_highway_env(monkeypatch):
    checked = []
    fast = hw._NeighbourCacheRoad.neighbour_vehicles

    def compare(self, vehicle, lane_index=None):
        got = fast(self, vehicle, lane_index)
        want = Road.neighbour_vehicles(self, vehicle, lane_index)
        assert got[0] is want[0] and got[1] is want[1]
        checked.append(self._cache is not None)
        return got

    monkeypatch.setattr(hw._NeighbourCacheRoad, "neighbour_vehicles", compare)
    e = HighwayImageEnv()
    e.reset(seed=0)
    for a in (3, 0, 1, 2, 4):
        e.step(a)
    assert sum(checked) > 100  # the cached path ran, for every IDM decision


class _Probe(Vehicle):
    """Asks the road for its neighbours on every lane during ``Road.act``."""

    results: list = []

    def act(self, action=None):
        for lane in self.road.network.lanes_list():
            idx = self.road.network.get_closest_lane_index(lane.position(0, 0))
            self.results.append((self.road.neighbour_vehicles(self, idx),
                                 Road.neighbour_vehicles(self.road, self, idx)))


def test_neighbour_ties_break_like_highway_env():
    road = hw._NeighbourCacheRoad(network=RoadNetwork.straight_road_network(3),
                                  np_random=np.random.RandomState(0))
    # Lane 1 (y = 4): two vehicles level ahead, two level behind, one far off-road.
    xy = [(50, 4), (60, 4), (60, 4), (40, 4), (40, 4), (55, 4.5), (55, 30)]
    road.vehicles = [_Probe(road, np.array(p, float), 0.0, 20.0) for p in xy]
    _Probe.results = []
    road.act()
    assert len(_Probe.results) == 3 * len(xy)
    for got, want in _Probe.results:
        assert got[0] is want[0] and got[1] is want[1]
    ego_lane1 = _Probe.results[1]  # vehicle 0, lane 1
    assert ego_lane1[0][0] is road.vehicles[5]  # nearest ahead: x = 55 (0.5 m off-centre)
    assert ego_lane1[0][1] is road.vehicles[3]  # level pair behind: the first one wins


def _crash_setup(e):
    """Reset ``e`` and park a stopped vehicle 6 m ahead in the ego's lane (25 m/s: unavoidable)."""
    e.reset(seed=0)
    ego = e.unwrapped.vehicle
    other = next(v for v in e.unwrapped.road.vehicles if v is not ego)
    other.position = ego.position + np.array([6.0, 0.0])
    other.heading, other.speed = ego.heading, 0.0


def test_crash_terminates_without_success():
    e = HighwayImageEnv()
    _crash_setup(e)
    obs, _, term, trunc, info = e.step(1)
    assert term and info["crashed"] is True and info["success"] is False
    assert obs.shape == (128, 128, 1)


def test_time_limit_without_crash_is_success():
    e = HighwayImageEnv(config={"duration": 3, "vehicles_count": 0})
    e.reset(seed=0)
    flags = []
    for _ in range(3):
        _, _, term, trunc, info = e.step(1)
        flags.append((term, trunc, info["success"], info["crashed"]))
    assert flags == [(False, False, False, False)] * 2 + [(False, True, True, False)]


def test_reward_is_highway_envs_unnormalised_sum():
    """Speed pays, survival alone does not (the normalised default taught a teacher to brake)."""
    e = HighwayImageEnv(config={"duration": 4, "vehicles_count": 0})
    assert e.config["normalize_reward"] is False and e.config["right_lane_reward"] == 0.0
    e.reset(seed=0)
    for action in (3, 3, 4, 4):  # FASTER twice, then SLOWER twice
        _, r, _, _, info = e.step(action)
        terms = info["rewards"]
        assert r == pytest.approx(0.4 * terms["high_speed_reward"] * terms["on_road_reward"])
        assert 0.0 <= r <= 0.4
    fast = HighwayImageEnv(config={"duration": 4, "vehicles_count": 0})
    fast.reset(seed=0)
    slow = HighwayImageEnv(config={"duration": 4, "vehicles_count": 0})
    slow.reset(seed=0)
    r_fast = sum(fast.step(3)[1] for _ in range(4))
    r_slow = sum(slow.step(4)[1] for _ in range(4))
    assert r_fast > r_slow + 0.5  # 30 vs 20 m/s target: the speed term differs by up to 0.4 per step
    crawl = HighwayImageEnv(config={"duration": 8, "vehicles_count": 0})
    crawl.reset(seed=0)
    last = [crawl.step(4)[1] for _ in range(8)][-1]
    assert last == pytest.approx(0.0, abs=1e-3)  # braked to 20 m/s: surviving alone earns nothing


def test_crash_step_reward_is_negative_and_normalisation_can_be_restored():
    e = HighwayImageEnv(config={"vehicles_count": 1})
    _crash_setup(e)
    _, r, term, _, info = e.step(1)
    assert term and info["crashed"]
    assert r == pytest.approx(0.4 * info["rewards"]["high_speed_reward"] - 0.25)
    n = HighwayImageEnv(config={"normalize_reward": True, "duration": 2, "vehicles_count": 0})
    n.reset(seed=0)
    assert 0.5 < n.step(1)[1] <= 1.0  # highway-env's [0, 1] scale: survival alone pays


@pytest.mark.parametrize("kw", [dict(image_size=4), dict(scaling=0.0)])
def test_bad_arguments_raise_digr_error(kw):
    from digr.errors import DigrError

    with pytest.raises(DigrError):
        HighwayImageEnv(**kw)


def test_registered_id():
    import digr.envs  # noqa: F401 - registers digr's ids

    if "digr/Highway-v0" not in gym.registry:
        pytest.skip("digr/Highway-v0 not registered (see notes/envs-registry-patch.md)")
    e = gym.make("digr/Highway-v0")
    obs, _ = e.reset(seed=0)
    assert obs.shape == (128, 128, 1) and _is_drawn(obs)


def test_a_process_with_a_highway_env_still_stops_on_sigterm():
    """SDL's default signal handlers would swallow SIGTERM/SIGINT (seen: `kill` ignored by training)."""
    import os
    import signal
    import subprocess
    import sys

    code = ("import time\nfrom digr.envs import make_env\nenv = make_env('highway')\nenv.reset(seed=0)\n"
            "print('ready', flush=True)\ntime.sleep(60)\n")
    env = {k: v for k, v in os.environ.items() if k != "SDL_NO_SIGNAL_HANDLERS"}
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == -signal.SIGTERM
    finally:
        if p.poll() is None:
            p.kill()


def test_camera_stream_frames_every_fps_and_decides_once_per_second():
    e = HighwayImageEnv(config={"vehicles_count": 0, "duration": 2}, camera_fps=4)
    assert e.config["simulation_frequency"] == 4 and e.config["policy_frequency"] == 4
    e.reset(seed=0)
    decisions, frames, lanes = [], 0, []
    trunc = False
    while not trunc:
        _, _, term, trunc, info = e.step(0)  # LANE_LEFT every frame: only decision frames count
        decisions.append(info["decision"])
        lanes.append(e.unwrapped.vehicle.target_lane_index[2])
        frames += 1
        assert not term
    assert frames == 8  # 2 simulated seconds at 4 frames per second
    assert decisions == [True, False, False, False] * 2
    # Two decisions: the target lane moves left at most once per decision.
    assert lanes[0] - lanes[-1] <= 2 and lanes[1] == lanes[3]


def test_camera_stream_matches_the_1hz_env_with_the_same_physics_rate():
    """Frame k*fps of the stream is the 1 Hz env's step k when both simulate at fps Hz."""
    one = HighwayImageEnv(config={"simulation_frequency": 4, "duration": 3})
    cam = HighwayImageEnv(config={"duration": 3}, camera_fps=4)
    o1, _ = one.reset(seed=3)
    oc, _ = cam.reset(seed=3)
    np.testing.assert_array_equal(o1, oc)
    for action in (3, 0, 4):
        o1 = one.step(action)[0]
        for _ in range(4):
            oc = cam.step(action)[0]
        np.testing.assert_array_equal(o1, oc)


@pytest.mark.parametrize("fps", [0, 2.5, True])
def test_bad_camera_fps_raises(fps):
    from digr.errors import DigrError

    with pytest.raises(DigrError):
        HighwayImageEnv(camera_fps=fps)
