"""Task names used on the command line, their environments and per-task defaults.

Everything task-specific lives here and in the env modules: the rest of digr reads a
:class:`TaskSpec` and never branches on a task name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from digr.errors import DigrError


@dataclass(frozen=True)
class TaskSpec:
    """Static description of one task."""

    name: str
    """Name used with ``--task``."""
    env_id: str
    """Gymnasium id of the training/evaluation environment."""
    obs_shape: tuple[int, int, int]
    """Observation shape the policy sees, ``(C, H, W)`` (channels include stacked frames)."""
    n_actions: int
    """Size of the discrete action space."""
    convs: tuple[tuple[int, int, int, int], ...]
    """Policy CNN layers as ``(out_channels, kernel, stride, padding)``."""
    hidden: int
    """Width of the policy's first linear layer."""
    perturbation_radius: int
    """Gaussian-blur perturbation mask radius in pixels (paper appendix A)."""
    dataset_size: int
    """Perturbation-saliency dataset size (paper Table 3)."""
    ppo: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`digr.rl.config.PPOConfig` (paper Table 2)."""
    distill: dict[str, Any] = field(default_factory=dict)
    """Overrides of the DIGR config (paper Table 3)."""
    has_success: bool = True
    """Whether ``info["success"]`` defines a success rate for this task."""
    extra: str | None = None
    """pip extra that provides the environment, for the error message when it is missing."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments passed to ``gym.make`` for training and evaluation."""
    train_env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``gym.make`` keyword arguments for teacher training only (Breakout: a lost life
    ends the episode and rewards are clipped); evaluation, datasets and students see
    ``env_kwargs`` alone."""
    stream_env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``gym.make`` keyword arguments for the real-time camera stream of ``digr evaluate
    lag`` (Figure 6): highway renders a frame every 0.05 s while still deciding once per
    simulated second; the other tasks' frames are their steps."""
    pool: str = "flatten"
    """Policy head input: ``flatten`` or ``max`` (see :class:`digr.models.PolicyConfig`)."""


TASKS: dict[str, TaskSpec] = {
    "red-fetch-green": TaskSpec(
        name="red-fetch-green",
        env_id="digr/RedFetchGreen-v0",
        obs_shape=(3, 64, 64),
        n_actions=4,
        # The stride-8 first layer reads each 8-pixel tile as one cell of the 8x8 room; 5x5 and
        # 7x7 layers give every cell a view of the whole room, and a global max over cells (pool)
        # reads "what is where relative to the agent" wherever the agent stands. With the usual
        # flattened head PPO needed ~4x more steps (results/red-fetch-green/README.md).
        convs=((16, 8, 8, 0), (32, 5, 1, 2), (32, 7, 1, 3)),
        hidden=256,
        pool="max",
        perturbation_radius=4,
        dataset_size=1000,
        ppo=dict(
            learning_rate=1e-3, n_envs=16, n_steps=128, n_epochs=4, n_minibatches=8,
            gamma=0.99, gae_lambda=0.95, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
            clip_range=0.2, total_timesteps=10_000_000, frame_stack=1,
        ),
        # Table 3 as printed (eq. 4 with eq. 2's max-normalised map). The "mean" normaliser with
        # alpha 10 gives less spiky maps (Table 1 important 15.9 vs 1.9) but a student 16x more
        # sensitive to its input that PGD at 1/255 already breaks (results/red-fetch-green/README.md).
        distill=dict(alpha=0.01, learning_rate=1e-3, optimizer="adam", threshold=0.1),
    ),
    "breakout": TaskSpec(
        name="breakout",
        env_id="digr/Breakout-v0",
        obs_shape=(2, 84, 84),
        n_actions=4,
        convs=((32, 8, 4, 0), (64, 4, 2, 0), (64, 3, 1, 0)),
        hidden=512,
        perturbation_radius=8,
        dataset_size=10_000,
        ppo=dict(
            learning_rate=2e-4, n_envs=8, n_steps=128, n_epochs=4, n_minibatches=4,
            gamma=0.99, gae_lambda=0.95, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
            clip_range=0.2, total_timesteps=20_000_000, frame_stack=2,
        ),
        distill=dict(alpha=0.01, learning_rate=1e-3, optimizer="adam", threshold=0.1),
        has_success=False,
        extra="atari",
        train_env_kwargs={"training": True},
    ),
    "highway": TaskSpec(
        name="highway",
        env_id="digr/Highway-v0",
        obs_shape=(1, 128, 128),
        n_actions=5,
        convs=((32, 8, 4, 0), (64, 4, 2, 0), (64, 3, 1, 0)),
        hidden=512,
        perturbation_radius=5,
        dataset_size=2500,
        ppo=dict(
            learning_rate=2e-4, n_envs=1, n_steps=1000, n_epochs=4, n_minibatches=4,
            gamma=0.999, gae_lambda=0.95, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
            clip_range=0.2, total_timesteps=1_000_000, frame_stack=1,
        ),
        distill=dict(alpha=1.0, learning_rate=2e-4, optimizer="rmsprop", threshold=0.1),
        extra="driving",
        stream_env_kwargs={"camera_fps": 20},
    ),
}


def get_task(name: str) -> TaskSpec:
    """The :class:`TaskSpec` for ``name``; :class:`DigrError` listing the known names otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise DigrError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}") from None


def register_envs() -> None:
    """Register digr's Gymnasium ids (idempotent)."""
    if "digr/RedFetchGreen-v0" not in gym.registry:
        gym.register(
            id="digr/RedFetchGreen-v0",
            entry_point="digr.envs.red_fetch_green:RedFetchGreenEnv",
        )
        gym.register(
            id="digr/RedFetchGreen-Full-v0",
            entry_point="digr.envs.red_fetch_green:RedFetchGreenEnv",
            kwargs={"action_set": "full"},
        )
    # Entry points are lazy strings: ale-py, highway-env and carla load only in gym.make.
    if "digr/Breakout-v0" not in gym.registry:
        gym.register(id="digr/Breakout-v0", entry_point="digr.envs.atari:make_breakout",
                     kwargs={"training": False})
        gym.register(id="digr/Breakout-Train-v0", entry_point="digr.envs.atari:make_breakout",
                     kwargs={"training": True})
    if "digr/Highway-v0" not in gym.registry:
        gym.register(id="digr/Highway-v0", entry_point="digr.envs.highway:HighwayImageEnv")
    if "digr/CarlaHighway-v0" not in gym.registry:
        gym.register(id="digr/CarlaHighway-v0", entry_point="digr.envs.carla:CarlaDrivingEnv")


def make_env(task: str | TaskSpec, *, training: bool = False, **kwargs: Any) -> gym.Env:
    """One environment of ``task`` whose observations are ``(H, W, C)`` uint8.

    The channel-last layout is Stable-Baselines3's convention; :func:`digr.models.to_tensor`
    converts to the policy's ``(B, C, H, W)`` float input. ``training=True`` adds the task's
    training-only settings (teacher training); everything else uses the evaluation env.
    """
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    extra = spec.train_env_kwargs if training else {}
    try:
        return gym.make(spec.env_id, **{**spec.env_kwargs, **extra, **kwargs})
    except (ImportError, gym.error.Error) as exc:
        hint = f" (install it with: pip install 'digr[{spec.extra}]')" if spec.extra else ""
        raise DigrError(f"cannot create the {spec.name} environment: {exc}{hint}") from None
