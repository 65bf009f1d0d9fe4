"""Breakout env: layout, frame stack, seeding, life handling, API check (tiny step budgets)."""

import warnings

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

from digr.envs.atari import ClipReward, make_breakout, make_breakout_vector  # noqa: E402
from digr.errors import DigrError  # noqa: E402

NO_FIRE = (0, 2, 3)  # NOOP, RIGHT, LEFT: the policy never launches the ball itself


@pytest.mark.parametrize("training", [False, True])
def test_observation_layout(training):
    env = make_breakout(training=training)
    obs, info = env.reset(seed=0)
    assert env.observation_space == gym.spaces.Box(0, 255, (84, 84, 2), np.uint8)
    assert env.action_space == gym.spaces.Discrete(4)
    assert obs.shape == (84, 84, 2) and obs.dtype == np.uint8 and obs.flags.c_contiguous
    assert obs in env.observation_space
    assert info["lives"] == 5
    # The frame is a real screen: the brick rows and walls are drawn.
    assert len(np.unique(obs)) > 3


def test_frame_stack_is_channel_last_oldest_first():
    env = make_breakout(training=False, frame_stack=3)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (84, 84, 3)
    # After reset the first frame is repeated.
    assert np.array_equal(obs[..., 0], obs[..., 2])
    for a in (2, 2, 3, 0):
        nxt, *_ = env.step(a)
        # The stack shifts by one frame: what was newest is now second newest.
        assert np.array_equal(nxt[..., :-1], obs[..., 1:])
        obs = nxt


def _rollout(seed, steps, *, training=False):
    env = make_breakout(training=training)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    frames, rewards = [obs], []
    for _ in range(steps):
        obs, r, term, trunc, _ = env.step(int(rng.integers(4)))
        frames.append(obs)
        rewards.append(r)
        if term or trunc:
            break
    return np.stack(frames), rewards


def test_same_seed_same_episode():
    a, ra = _rollout(7, 60)
    b, rb = _rollout(7, 60)
    assert np.array_equal(a, b) and ra == rb


def test_eval_fires_after_each_lost_life_until_game_over():
    # Without FireOnLifeLoss a policy that never presses FIRE would stall after the first lost
    # life (ale-py's C++ vector env does); here the ball is relaunched and the game ends.
    env = make_breakout(training=False)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    lives_seen = []
    for _ in range(2000):
        _, _, term, trunc, info = env.step(int(rng.choice(NO_FIRE)))
        lives_seen.append(info["lives"])
        if term or trunc:
            break
    assert term and not trunc
    assert info["lives"] == 0
    assert sorted(set(lives_seen), reverse=True) == [5, 4, 3, 2, 1, 0]


def test_training_life_loss_ends_episode_but_not_the_game():
    env = make_breakout(training=True)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(1000):
        _, _, term, trunc, info = env.step(int(rng.choice(NO_FIRE)))
        if term or trunc:
            break
    assert term and info["lives"] == 4 and info["game_over"] is False
    # reset continues the same game (one life fewer) instead of starting a new one.
    _, info = env.reset()
    assert info["lives"] == 4
    for _ in range(1000):
        _, _, term, trunc, info = env.step(int(rng.choice(NO_FIRE)))
        if term or trunc:
            break
    assert term and info["lives"] == 3


def test_seeded_reset_starts_a_new_game_even_after_a_lost_life():
    env = make_breakout(training=True)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(1000):
        _, _, term, _, info = env.step(int(rng.choice(NO_FIRE)))
        if term:
            break
    assert info["lives"] == 4
    _, info = env.reset(seed=0)
    assert info["lives"] == 5


@pytest.mark.parametrize("training", [False, True])
def test_gymnasium_env_checker(training):
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unwrapped.*")
        check_env(make_breakout(training=training), skip_render_check=True)


def test_clip_reward_keeps_the_sign():
    class Fixed(gym.Env):
        observation_space = gym.spaces.Discrete(1)
        action_space = gym.spaces.Discrete(1)

        def __init__(self):
            self.rewards = [0.0, 4.0, 7.0, -2.0, 1.0]

        def reset(self, *, seed=None, options=None):
            return 0, {}

        def step(self, action):
            return 0, self.rewards.pop(0), False, False, {}

    env = ClipReward(Fixed())
    env.reset()
    assert [env.step(0)[1] for _ in range(5)] == [0.0, 1.0, 1.0, -1.0, 1.0]


def test_time_limit_truncates():
    env = make_breakout(training=False, max_episode_steps=5)
    env.reset(seed=0)
    out = [env.step(0)[3] for _ in range(5)]
    assert out == [False] * 4 + [True]


@pytest.mark.parametrize("kw", [dict(frame_stack=0), dict(noop_max=-1),
                                dict(repeat_action_probability=1.5)])
def test_bad_arguments_raise_digr_error(kw):
    with pytest.raises(DigrError):
        make_breakout(training=False, **kw)


def test_ale_vector_env_matches_settings():
    venv = make_breakout_vector(2, training=False, num_threads=1)
    obs, info = venv.reset(seed=0)
    assert obs.shape == (2, 2, 84, 84) and obs.dtype == np.uint8
    assert venv.single_action_space == gym.spaces.Discrete(4)
    obs, *_ = venv.step(np.zeros(2, dtype=np.int64))
    assert obs.shape == (2, 2, 84, 84)
    venv.close()


@pytest.mark.parametrize("env_id", ["digr/Breakout-v0", "digr/Breakout-Train-v0"])
def test_registered_ids(env_id):
    import digr.envs  # noqa: F401 - registers digr's ids

    if env_id not in gym.registry:
        pytest.skip(f"{env_id} not registered (see notes/envs-registry-patch.md)")
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (84, 84, 2) and obs.dtype == np.uint8
    env.step(0)
