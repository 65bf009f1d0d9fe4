"""One contract for every task, derived ones included: what make_env gives is what the task's
spec and the policies built for it expect."""

import numpy as np
import pytest

from digr.envs import TASKS, get_task, make_env

NAMES = [*TASKS, "breakout+stack4", "red-fetch-green+stack2"]


@pytest.mark.parametrize("name", NAMES)
def test_env_matches_its_spec(name):
    spec = get_task(name)
    try:
        env = make_env(spec)
    except Exception as exc:  # noqa: BLE001 - an optional extra that is not installed
        pytest.skip(f"{name}: {exc}")
    try:
        c, h, w = spec.obs_shape
        assert env.observation_space.shape == (h, w, c) and env.observation_space.dtype == np.uint8
        assert env.action_space.n == spec.n_actions
        obs, info = env.reset(seed=0)
        again, _ = make_env(spec).reset(seed=0)
        assert obs.shape == (h, w, c) and obs.dtype == np.uint8
        assert np.array_equal(obs, again), "same seed, same first observation"
        for a in range(min(3, spec.n_actions)):
            obs, reward, terminated, truncated, info = env.step(a)
            assert obs.shape == (h, w, c) and np.isfinite(float(reward))
            assert isinstance(terminated, bool) and isinstance(truncated, bool)
            if spec.has_success:
                assert "success" in info
            if terminated or truncated:
                break
        assert 1 <= spec.perturbation_radius < min(h, w) and spec.dataset_size >= 1
        assert spec.action_names is None or len(spec.action_names) == spec.n_actions
        meanings = getattr(env.unwrapped, "get_action_meanings", None)
        if meanings is not None and spec.action_names is not None:  # the emulator's own names (Atari)
            assert tuple(meanings()) == spec.action_names
        assert spec.action_name(spec.n_actions) == f"action {spec.n_actions}"
    finally:
        env.close()
