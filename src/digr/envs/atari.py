"""Breakout with the standard Atari preprocessing and the paper's 2-frame stack (Table 2).

Needs the ``digr[atari]`` extra (``ale-py``, whose wheels ship the Breakout ROM, and
``opencv-python-headless`` for the 84x84 resize).
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from digr.errors import DigrError

GAME_ID = "ALE/Breakout-v5"
"""The underlying ale-py environment (created with ``frameskip=1``; the wrapper skips frames)."""

SCREEN_SIZE = 84
"""Side of the square grayscale frame after preprocessing."""

NOOP, FIRE = 0, 1
"""Indices of the NOOP and FIRE actions in Breakout's minimal action set."""


def _import_ale():
    try:
        import ale_py
    except ImportError:
        raise DigrError("Breakout needs ale-py: pip install 'digr[atari]'") from None
    gym.register_envs(ale_py)
    return ale_py


class FireOnLifeLoss(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Press FIRE after ``reset`` and after every lost life, so the ball is always in play.

    Breakout only relaunches the ball on FIRE. With the usual ``FireResetEnv`` (fire on reset
    only) plus episodic life, training never shows the agent a dead ball, but evaluation does
    (no episodic life there) and a greedy policy can then wait forever. Firing on every life
    loss, in training and evaluation alike, keeps the two state distributions the same. The
    FIRE step's reward is added to the step that lost the life and its frame replaces it.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._lives = 0

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(FIRE)
        if terminated or truncated:  # cannot happen in Breakout; kept so reset never ends a game
            obs, info = self.env.reset(**kwargs)
        self._lives = self.env.unwrapped.ale.lives()
        return obs, info

    def step(self, action: int):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self.env.unwrapped.ale.lives()
        if lives < self._lives and not (terminated or truncated):
            obs, r2, terminated, truncated, info = self.env.step(FIRE)
            reward = float(reward) + float(r2)
        self._lives = lives
        return obs, reward, terminated, truncated, info


class EpisodicLife(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Training only: a lost life ends the episode; the next ``reset`` continues the same game.

    This is the DQN/Stable-Baselines3 ``EpisodicLifeEnv`` convention (value targets stop at a
    life loss, yet later lives and emptier walls stay reachable), not Gymnasium's
    ``terminal_on_life_loss``, whose next ``reset`` starts a new game. Unlike SB3's wrapper, a
    ``reset`` that does not follow a lost life (first reset, game over, a reset in mid-episode,
    or any ``reset(seed=...)``) starts a new game, so seeded resets stay reproducible.
    ``info["game_over"]`` tells whether the whole game ended.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._life_lost = False
        self._lives = 0

    def step(self, action: int):
        obs, reward, terminated, truncated, info = self.env.step(action)
        game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        info = {**info, "game_over": bool(game_over)}
        self._life_lost = not game_over and 0 < lives < self._lives
        if self._life_lost:
            terminated = True
        self._lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if self._life_lost and seed is None:
            # Continue the game: one no-op step moves past the lost-life frame.
            obs, _, terminated, truncated, info = self.env.step(NOOP)
            if terminated or truncated:
                obs, info = self.env.reset(options=options)
        else:
            obs, info = self.env.reset(seed=seed, options=options)
        self._life_lost = False
        self._lives = self.env.unwrapped.ale.lives()
        return obs, info


class ClipReward(gym.RewardWrapper, gym.utils.RecordConstructorArgs):
    """Training only: reward -> sign(reward) (Mnih et al. 2015), so brick rows weigh the same."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.RewardWrapper.__init__(self, env)

    def reward(self, reward: SupportsFloat) -> float:
        return float(np.sign(float(reward)))


class ChannelLast(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """``(K, H, W)`` stacked frames -> ``(H, W, K)`` uint8, digr's env observation layout."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        k, h, w = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 255, (h, w, k), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(np.asarray(observation), 0, -1))


def make_breakout(
    *,
    training: bool,
    frame_stack: int = 2,
    noop_max: int = 30,
    repeat_action_probability: float = 0.25,
    clip_reward: bool | None = None,
    max_episode_steps: int | None = None,
    render_mode: str | None = None,
) -> gym.Env:
    """Breakout with standard Atari preprocessing; observations ``(84, 84, frame_stack)`` uint8.

    ## Description
    ``ALE/Breakout-v5`` (ale-py, ROM included) created with ``frameskip=1`` and wrapped in
    Gymnasium's ``AtariPreprocessing`` (Machado et al. 2018): up to ``noop_max`` random no-ops
    after reset, the action repeated for 4 frames, the maximum of the last two frames,
    converted to grayscale and resized to 84x84 (area interpolation). FIRE is pressed
    automatically after reset and after every lost life (:class:`FireOnLifeLoss`). Sticky
    actions (``repeat_action_probability``, v5 default 0.25) make the emulator stochastic; all
    randomness comes from the generator seeded by ``reset(seed=...)``.

    With ``training=True`` a lost life ends the episode (:class:`EpisodicLife`, the next
    ``reset`` continues the game) and rewards are clipped to their sign; evaluation
    (``training=False``) plays whole games with the raw score.

    ## Observation
    ``Box(0, 255, (84, 84, frame_stack), uint8)``: the last ``frame_stack`` preprocessed
    frames, oldest first, channel-last (the paper uses a stack of 2, Table 2). After a reset
    the first frame is repeated.

    ## Action Space
    ``Discrete(4)``: 0 NOOP, 1 FIRE, 2 RIGHT, 3 LEFT (Breakout's minimal action set).

    ## Rewards
    Points of the bricks hit during the 4 frames (1, 4 or 7 by row); with ``clip_reward``
    (default: ``training``) their sign.

    ## Termination
    Terminated when the last life is lost (``training``: when any life is lost). Truncated by
    the emulator after 108,000 frames (27,000 steps), or by a ``TimeLimit`` of
    ``max_episode_steps`` steps when given.

    ## Info
    ale-py's ``lives``, ``episode_frame_number`` and ``frame_number``; with ``training`` also
    ``game_over`` (bool, the whole game ended, not only a life).
    """
    if frame_stack < 1:
        raise DigrError(f"frame_stack must be >= 1, got {frame_stack}")
    if noop_max < 0:
        raise DigrError(f"noop_max must be >= 0, got {noop_max}")
    if not 0.0 <= repeat_action_probability <= 1.0:
        raise DigrError(f"repeat_action_probability must be in [0, 1], got {repeat_action_probability}")
    _import_ale()
    try:
        from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TimeLimit
    except ImportError as exc:  # pragma: no cover - gymnasium>=1.0 has them
        raise DigrError(f"Breakout needs gymnasium>=1.0: {exc}") from None
    clip = training if clip_reward is None else clip_reward
    # Grayscale emulator frames: AtariPreprocessing reads the screen itself, so an RGB
    # observation per skipped frame would be converted and thrown away.
    env = gym.make(
        GAME_ID, frameskip=1, obs_type="grayscale", full_action_space=False,
        repeat_action_probability=repeat_action_probability, render_mode=render_mode,
    )
    try:
        env = AtariPreprocessing(
            env, noop_max=noop_max, frame_skip=4, screen_size=SCREEN_SIZE,
            terminal_on_life_loss=False, grayscale_obs=True, grayscale_newaxis=False,
        )
    except gym.error.DependencyNotInstalled:
        raise DigrError("Breakout needs opencv: pip install 'digr[atari]'") from None
    env = FireOnLifeLoss(env)
    if training:
        env = EpisodicLife(env)
    if clip:
        env = ClipReward(env)
    if max_episode_steps is not None:
        env = TimeLimit(env, max_episode_steps=max_episode_steps)
    env = FrameStackObservation(env, frame_stack)
    return ChannelLast(env)


def make_breakout_vector(
    num_envs: int,
    *,
    training: bool,
    frame_stack: int = 2,
    num_threads: int = 0,
    repeat_action_probability: float = 0.25,
):
    """ale-py's C++ vector env (``AtariVectorEnv``) with the settings of :func:`make_breakout`.

    Returns a Gymnasium ``VectorEnv`` whose observations are ``(num_envs, frame_stack, 84, 84)``
    uint8 (channel-first, as ale-py gives them; transpose to ``(N, 84, 84, K)`` for digr's
    policies). Same preprocessing knobs (noop 30, skip 4 with max-pool, 84x84 grayscale,
    episodic life and reward clipping when ``training``, FIRE on reset). Unlike
    :class:`FireOnLifeLoss` it fires only on (episodic-life) resets: with ``training=False`` a
    lost life leaves the ball dead until the policy presses FIRE (checked with ale-py 0.12.1).
    """
    _import_ale()
    try:
        from ale_py.vector_env import AtariVectorEnv
    except ImportError:
        raise DigrError("ale-py's vector env needs ale-py>=0.12.1: pip install -U 'digr[atari]'") from None

    return AtariVectorEnv(
        game="breakout", num_envs=num_envs, num_threads=num_threads,
        repeat_action_probability=repeat_action_probability,
        img_height=SCREEN_SIZE, img_width=SCREEN_SIZE, grayscale=True, stack_num=frame_stack,
        frameskip=4, maxpool=True, noop_max=30, episodic_life=training,
        reward_clipping=training, use_fire_reset=True,
    )
