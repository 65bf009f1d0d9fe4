"""Real-time saliency lag (Figure 6): the schedule on hand-computed cases, the CLI end to end."""

import json

import numpy as np
import pytest
import torch

from digr.cli.main import main
from digr.errors import DigrError
from digr.evaluation.lag import (
    LagConfig,
    LagRow,
    measure_lag,
    realtime_lag,
    record_frames,
    schedule,
    worker_finish_times,
)
from digr.models import PolicyConfig, PolicyNet, save_policy

TASK = "red-fetch-green"
TINY_RFG = PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((4, 8, 8, 0), (8, 3, 1, 1)), hidden=16)


def tiny(seed=0):
    torch.manual_seed(seed)
    return PolicyNet(TINY_RFG).eval()


# ------------------------------------------------------------------------------- schedule
def test_schedule_120ms_maps_at_50ms_frames():
    arrival = np.arange(8) * 50  # ms
    compute = np.full(8, 120)
    # By hand: frame 0 runs 0-120; at 120 the newest arrived frame is 2 (at 100): 120-240; at 240
    # frame 4 (at 200): 240-360; at 360 frame 7 (at 350): 360-480. Frames 1, 3, 5, 6 are skipped.
    finish = worker_finish_times(arrival, compute)
    np.testing.assert_array_equal(finish, [120, np.inf, 240, np.inf, 360, np.inf, np.inf, 480])
    # Ticks at the arrivals (0, 50, ..., 350): newest map finished by then.
    np.testing.assert_array_equal(schedule(arrival, compute), [-1, -1, -1, 0, 0, 2, 2, 2])
    # Ticks one frame period later (50, ..., 400), as realtime_lag reads them.
    np.testing.assert_array_equal(schedule(arrival, compute, deadline=50), [-1, -1, 0, 0, 2, 2, 2, 4])


def test_schedule_fast_maps_keep_up_and_worker_waits_for_frames():
    arrival = np.arange(5) * 50
    compute = [20, 20, 20, 20, 20]
    np.testing.assert_array_equal(schedule(arrival, compute, deadline=50), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(schedule(arrival, compute), [-1, 0, 1, 2, 3])  # ready 20 ms late
    # A slow map in the middle: frame 1 runs 50-180, frame 3 (at 150) 180-190, then the idle
    # worker waits for frame 4 (200-210). Ticks at 50, 100, ..., 250: a map finishing exactly at
    # the tick counts (frame 0 at 50); frame 1's map (180) is superseded by frame 3's (190) before
    # the tick at 200, so it is never shown.
    compute = [50, 130, 10, 10, 10]
    np.testing.assert_array_equal(worker_finish_times(arrival, compute), [50, 180, np.inf, 190, 210])
    np.testing.assert_array_equal(schedule(arrival, compute, deadline=50), [0, 0, 0, 3, 4])


def test_realtime_lag_figures():
    stats = realtime_lag(np.full(8, 0.12), fps=20)
    np.testing.assert_array_equal(stats.shown, [-1, -1, 0, 0, 2, 2, 2, 4])
    np.testing.assert_array_equal(stats.lags, [-1, -1, 2, 3, 2, 3, 4, 3])
    out = stats.to_json()
    assert out["mean_lag_frames"] == pytest.approx((2 + 3 + 2 + 3 + 4 + 3) / 6)
    assert out["max_lag_frames"] == 4 and out["blank_ticks"] == 2
    assert out["shown_fraction"] == pytest.approx(3 / 8)  # frames 0, 2, 4
    assert out["first_map_lag_frames"] == 2 and out["median_ms"] == pytest.approx(120)
    skipped = realtime_lag([0.05, 0.13, 0.01, 0.01, 0.01], fps=20).to_json()  # the case above, in s
    assert skipped["shown"] == [0, 0, 0, 3, 4] and skipped["shown_fraction"] == pytest.approx(3 / 5)
    fast = realtime_lag([0.002] * 4, fps=20).to_json()
    assert fast["max_lag_frames"] == 0 and fast["shown_fraction"] == 1.0 and fast["blank_ticks"] == 0
    # slower than the whole clip: nothing shown, but the first map's lag is still known (2.0 s)
    slow = realtime_lag([2.0] * 3, fps=20).to_json()
    assert slow["mean_lag_frames"] is None and slow["blank_ticks"] == 3
    assert slow["first_map_lag_frames"] == 39  # shown at the tick read at 40 * 50 ms = 2.0 s


@pytest.mark.parametrize("call,msg", [
    (lambda: realtime_lag([0.1], fps=0), "fps must be"),
    (lambda: realtime_lag([0.1], fps=-20), "fps must be"),
    (lambda: realtime_lag([0.1], fps=float("nan")), "fps must be"),
    (lambda: realtime_lag([], fps=20), "non-empty"),
    (lambda: schedule([0, 50], [10]), "differ in length"),
    (lambda: schedule([50, 0], [10, 10]), "non-decreasing"),
    (lambda: schedule([0, 50], [10, -1]), ">= 0"),
    (lambda: schedule([0, 50], [10, 10], deadline=-1), "deadline"),
    (lambda: LagConfig(frames=0).validate(), r"frames must be an integer in \[1, 100000\]"),
    (lambda: LagConfig(fps=0.0).validate(), "fps must be"),
])
def test_bad_input_raises(call, msg):
    with pytest.raises(DigrError, match=msg):
        call()


# ----------------------------------------------------------------------------- measurement
class _TwoStepEnv:
    """Episodes of two steps; the frame encodes (reset seed, step) in its first two pixels."""

    def reset(self, *, seed):
        self.seed, self.t = seed, 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 0.0, self.t == 2, False, {}

    def _obs(self):
        obs = np.zeros((64, 64, 3), np.uint8)
        obs[0, 0, 0], obs[0, 1, 0] = self.seed, self.t
        return obs

    def close(self):
        pass


def test_record_frames_goes_on_into_the_next_episode(monkeypatch):
    import digr.evaluation.lag as lag

    monkeypatch.setattr(lag, "make_env", lambda spec: _TwoStepEnv())
    frames, episode = record_frames(tiny(), TASK, frames=5, seed=7)
    # (seed, step) of each frame: episodes of 2 frames (the terminal observation is not kept)
    assert [tuple(f[0, :2, 0]) for f in frames] == [(7, 0), (7, 1), (8, 0), (8, 1), (9, 0)]
    assert episode.tolist() == [0, 0, 1, 1, 2]
    frames, episode = record_frames(tiny(), TASK, frames=5, seed=7, one_episode=True)
    assert [tuple(f[0, :2, 0]) for f in frames] == [(7, 0), (7, 1)] and episode.tolist() == [0, 0]


def test_measure_lag_maps_follow_the_schedule():
    teacher, student = tiny(0), tiny(1)
    rows = [LagRow(key="perturbation", label="p", method="perturbation", policy=teacher,
                   settings={"stride": 8}),
            LagRow(key="digr_vanilla", label="v", method="vanilla", policy=student)]
    result = measure_lag(rows, TASK, driver=teacher, config=LagConfig(frames=3, seed=1))
    frames, episode = record_frames(teacher, TASK, frames=3, seed=1)
    np.testing.assert_array_equal(result.frames, frames)  # greedy + seeded: reproducible
    np.testing.assert_array_equal(result.episode, episode)
    assert result.frames.shape[1:] == (64, 64, 3) and result.frames.dtype == np.uint8
    for r in result.rows:
        assert r.maps.shape == (result.frames.shape[0], 64, 64)
        assert r.maps.min() >= 0 and r.maps.max() <= 1
        np.testing.assert_array_equal(r.stats.shown, realtime_lag(r.stats.compute_ms / 1e3, fps=20).shown)
    assert result.rows[0].settings["radius"] == 4 and result.rows[0].settings["stride"] == 8
    with pytest.raises(DigrError, match="expects observations"):
        measure_lag(rows, "highway", driver=teacher, config=LagConfig(frames=1))


def test_cli_end_to_end(tmp_path, capsys):
    teacher = save_policy(tiny(0), tmp_path / "teacher", task=TASK)
    student = save_policy(tiny(1), tmp_path / "student", task=TASK)
    out = tmp_path / "lag"
    rc = main(["evaluate", "lag", "--task", TASK, "--policy", str(teacher), "--student", str(student),
               "--frames", "4", "--stride", "8", "--columns", "3", "--out", str(out), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["methods"]) == {"perturbation", "vanilla", "digr_vanilla"}
    n = report["frames"]
    assert 1 <= n <= 4 and report["fps"] == 20.0
    for m in report["methods"].values():
        assert len(m["shown"]) == len(m["compute_ms"]) == n
        assert all(-1 <= s <= k for k, s in enumerate(m["shown"]))
        assert m["median_ms"] > 0 and 0 <= m["shown_fraction"] <= 1
    assert report["methods"]["perturbation"]["settings"]["stride"] == 8
    assert (out / "lag.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "lag.json").read_text()) == report
    assert sorted(p.name for p in out.iterdir()) == ["lag.json", "lag.png"]  # no temporary files left


@pytest.mark.parametrize("extra,msg", [(["--fps", "0"], "fps must be"), (["--frames", "0"], "--frames: must be > 0"),
                                       (["--fps", "-5"], "fps must be")])
def test_cli_bad_input_is_one_line(tmp_path, capsys, extra, msg):
    teacher = save_policy(tiny(0), tmp_path / "teacher", task=TASK)
    try:
        rc = main(["evaluate", "lag", "--task", TASK, "--policy", str(teacher), *extra])
    except SystemExit as exc:  # argparse's own checks (the --frames type) exit with 2
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("digr: error: ") and msg in err and err.count("\n") == 1
