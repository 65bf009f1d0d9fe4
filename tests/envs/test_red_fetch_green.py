import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import digr.envs  # noqa: F401  (registers the ids)
from digr.envs.red_fetch_green import MASK_NAMES, RedFetchGreenEnv

DIRS = {(1, 0): 0, (0, 1): 1, (-1, 0): 2, (0, -1): 3}  # MiniGrid: 0 right, 1 down, 2 left, 3 up


def test_api_and_spaces():
    env = gym.make("digr/RedFetchGreen-v0")
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert env.action_space.n == 4
    assert info["masks"].shape == (len(MASK_NAMES), 64, 64)
    assert gym.make("digr/RedFetchGreen-Full-v0").action_space.n == 7


def _episode(seed, actions):
    env = gym.make("digr/RedFetchGreen-v0")
    obs, _ = env.reset(seed=seed)
    frames = [obs]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        frames.append(obs)
        if term or trunc:
            break
    return np.stack(frames)


def test_same_seed_same_episode():
    acts = [2, 0, 2, 2, 1, 2, 3, 2, 2, 0, 2]
    np.testing.assert_array_equal(_episode(7, acts), _episode(7, acts))
    assert not np.array_equal(_episode(7, acts)[0], _episode(8, acts)[0])


def test_masks_partition_the_image_and_match_the_pixels():
    env = RedFetchGreenEnv()
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        m = info["masks"]
        assert (m.sum(0) == 1).all(), "masks must partition the image"
        assert m[0].sum() == 64 and m[1].sum() == 64 and m[2].sum() == 128
        red = obs[m[0]]
        assert ((red[:, 0] == 255) & (red[:, 1] == 0)).sum() >= 10, "agent tile holds the red triangle"
        outside = obs[~m[0]]
        assert not ((outside[:, 0] == 255) & (outside[:, 1] == 0) & (outside[:, 2] == 0)).any()
        assert (obs[m[1]][:, 1] > 150).any(), "target tile is green"
        assert obs[m[4]].max() <= 100, "empty floor is black with grey grid lines"
        # objects: green target plus a yellow and a blue distractor, keys or balls
        assert env.target.color == "green"
        assert sorted(d.color for d in env.distractors) == ["blue", "yellow"]
        assert {env.target.type, *(d.type for d in env.distractors)} <= {"key", "ball"}


def _face(env, obj):
    """Put the agent on a free tile next to ``obj`` facing it; return False if none is free."""
    ox, oy = obj.cur_pos
    for (dx, dy), d in DIRS.items():
        x, y = ox - dx, oy - dy
        if 1 <= x <= 6 and 1 <= y <= 6 and env.grid.get(x, y) is None:
            env.agent_pos, env.agent_dir = (x, y), d
            return True
    return False


@pytest.mark.parametrize("which,reward,success", [("target", 1.0, True), ("distractor", -1.0, False)])
def test_pickup_rewards_and_termination(which, reward, success):
    env = RedFetchGreenEnv()
    for seed in range(20):
        env.reset(seed=seed)
        obj = env.target if which == "target" else env.distractors[0]
        if _face(env, obj):
            break
    _, r, term, trunc, info = env.step(3)
    assert (r, term, trunc, info["success"]) == (reward, True, False, success)


def test_truncation_after_320_steps():
    env = RedFetchGreenEnv()
    env.reset(seed=0)
    for t in range(320):
        _, r, term, trunc, _ = env.step(0)  # turning in place never ends the episode
        assert r == 0.0 and not term
    assert trunc


def test_invalid_action_is_rejected():
    env = RedFetchGreenEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(4)
