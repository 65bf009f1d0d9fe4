"""Task names used on the command line, their environments and per-task defaults.

Everything task-specific lives here and in the env modules: the rest of digr reads a
:class:`TaskSpec` and never branches on a task name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
    """Policy CNN layers as ``(out_channels, kernel, stride, padding)`` of a teacher trained by
    ``digr train`` (a checkpoint always carries its own network)."""
    hidden: int
    """Width of the policy's first linear layer (as ``convs``)."""
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
    teacher_bar: float | None = None
    """Greedy score a teacher must reach to be worth explaining (success rate where
    ``has_success``, else mean return); the report flags a teacher below it. None: no bar."""
    has_masks: bool = False
    """Whether the env's ``info["masks"]`` holds ground-truth object masks (the saliency
    benchmark of Table 1 needs them)."""
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
    action_names: tuple[str, ...] | None = None
    """What each action does, for figures and tables (None: ``action k``); see :meth:`action_name`."""
    pool: str = "flatten"
    """Policy head input: ``flatten`` or ``max`` (see :class:`digr.models.PolicyConfig`)."""
    frame_channels: int | None = None
    """Channels of one frame (``None``: all of ``obs_shape[0]``, no stack). A checkpoint whose
    input has ``k`` times as many channels is run on the task with ``k`` stacked frames
    (:func:`task_for_obs`)."""
    stack_kwarg: str | None = None
    """``gym.make`` keyword with which the env stacks frames itself (Breakout: ``frame_stack``);
    ``None``: digr stacks them (:class:`digr.envs.layout.StackFrames`)."""
    frame_stack: int = 1
    """Frames digr stacks along the channels on top of the env (1: none; see ``stack_kwarg``)."""
    env_layout: str = "hwc"
    """What the env's observations are: ``hwc`` (channel-last, digr's and SB3's convention),
    ``chw`` (channel-first) or ``hw`` (one grey channel); the latter two are converted."""

    def action_name(self, action: int) -> str:
        """The name of ``action`` (``"action k"`` where the task names none)."""
        names = self.action_names or ()
        return names[action] if 0 <= action < len(names) else f"action {action}"


TASKS: dict[str, TaskSpec] = {
    "red-fetch-green": TaskSpec(
        name="red-fetch-green",
        has_masks=True,
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
        action_names=("left", "right", "forward", "pickup"),
        perturbation_radius=4,
        dataset_size=1000,
        teacher_bar=0.99,
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
        action_names=("NOOP", "FIRE", "RIGHT", "LEFT"),
        perturbation_radius=8,
        dataset_size=10_000,
        teacher_bar=150.0,
        ppo=dict(
            learning_rate=2e-4, n_envs=8, n_steps=128, n_epochs=4, n_minibatches=4,
            gamma=0.99, gae_lambda=0.95, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
            clip_range=0.2, total_timesteps=20_000_000, frame_stack=2,
        ),
        distill=dict(alpha=0.01, learning_rate=1e-3, optimizer="adam", threshold=0.1),
        has_success=False,
        extra="atari",
        train_env_kwargs={"training": True},
        frame_channels=1,
        stack_kwarg="frame_stack",
    ),
    "highway": TaskSpec(
        name="highway",
        env_id="digr/Highway-v0",
        obs_shape=(1, 128, 128),
        n_actions=5,
        convs=((32, 8, 4, 0), (64, 4, 2, 0), (64, 3, 1, 0)),
        hidden=512,
        action_names=("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER"),
        perturbation_radius=5,
        dataset_size=2500,
        teacher_bar=0.85,
        ppo=dict(
            learning_rate=2e-4, n_envs=1, n_steps=1000, n_epochs=4, n_minibatches=4,
            gamma=0.999, gae_lambda=0.95, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
            clip_range=0.2, total_timesteps=1_000_000, frame_stack=1,
        ),
        distill=dict(alpha=1.0, learning_rate=2e-4, optimizer="rmsprop", threshold=0.1),
        extra="driving",
        stream_env_kwargs={"camera_fps": 20},
        frame_channels=1,
    ),
}


GYM_PREFIX = "gym:"
"""Task names ``gym:ID`` run any registered Gymnasium id (``gym:MODULE:ID`` imports MODULE first,
Gymnasium's own syntax), with defaults derived from its spaces (:func:`env_task`)."""
STACK_MARK = "+stack"
"""``NAME+stackK``: task NAME with K frames stacked along the channels (:func:`stacked_task`)."""
NATURE_CONVS = ((32, 8, 4, 0), (64, 4, 2, 0), (64, 3, 1, 0))
"""The Nature-DQN conv stack (SB3's ``NatureCNN``): ``digr train``'s network on a ``gym:`` task."""


def default_radius(height: int, width: int) -> int:
    """Perturbation radius for a frame without a paper value: 1/16 of its shorter side, at least 2
    (64 px -> 4 as on Red-Fetch-Green, 84 -> 5, 128 -> 8)."""
    return max(2, round(min(height, width) / 16))


def env_task(env_id: str) -> TaskSpec:
    """A :class:`TaskSpec` for the Gymnasium id ``env_id`` (``MODULE:ID`` imports MODULE first).

    The env is made once to read its spaces: observations must be a uint8 image ``Box`` (``(H, W,
    C)``, ``(C, H, W)`` with C <= 4, or ``(H, W)``), actions ``Discrete``. Defaults: the radius of
    :func:`default_radius`, 1,000 dataset states, the Nature-DQN network (a smaller one for frames
    under 36 px), success from ``info["success"]`` when the env reports it.
    """
    import numpy as np

    try:
        env = gym.make(env_id)
    except Exception as exc:  # noqa: BLE001 - an id that is unknown, or whose module fails to import
        raise DigrError(f"cannot create the Gymnasium environment {env_id!r}: {exc}") from None
    try:
        obs, act = env.observation_space, env.action_space
        has_success = False
        try:
            _, info = env.reset(seed=0)
            has_success = "success" in info
        except Exception:  # noqa: BLE001 - only a probe for the info keys
            pass
    finally:
        env.close()
    if not isinstance(act, gym.spaces.Discrete):
        raise DigrError(f"{env_id}: digr needs a Discrete action space, got {act}")
    if not (isinstance(obs, gym.spaces.Box) and obs.dtype == np.uint8 and len(obs.shape) in (2, 3)):
        raise DigrError(f"{env_id}: digr needs uint8 image observations (H, W, C), (C, H, W) or (H, W), "
                        f"got {obs}; wrap the env (e.g. an RGB image wrapper) and register that")
    if len(obs.shape) == 2:
        layout, (h, w), c = "hw", obs.shape, 1
    elif obs.shape[0] <= 4 < obs.shape[-1]:
        layout, (c, h, w) = "chw", obs.shape
    else:
        layout, (h, w, c) = "hwc", obs.shape
    big = min(h, w) >= 36
    return TaskSpec(
        name=f"{GYM_PREFIX}{env_id}", env_id=env_id, obs_shape=(int(c), int(h), int(w)), n_actions=int(act.n),
        convs=NATURE_CONVS if big else ((16, 3, 1, 1), (32, 3, 1, 1)), hidden=512 if big else 128,
        perturbation_radius=default_radius(h, w), dataset_size=1000, has_success=has_success,
        env_layout=layout)


def stacked_task(spec: TaskSpec, k: int) -> TaskSpec:
    """``spec`` with ``k`` frames stacked along the channels, oldest first: through the env's own
    ``stack_kwarg`` where it has one (Breakout), else by :class:`digr.envs.layout.StackFrames`
    (zeros before the first frame, as SB3's ``VecFrameStack``)."""
    per = spec.frame_channels or spec.obs_shape[0]
    shape = (per * k, *spec.obs_shape[1:])
    name = f"{spec.name.split(STACK_MARK)[0]}{STACK_MARK}{k}"
    if spec.stack_kwarg is not None:
        return replace(spec, name=name, obs_shape=shape, env_kwargs={**spec.env_kwargs, spec.stack_kwarg: k})
    return replace(spec, name=name, obs_shape=shape, frame_stack=k, frame_channels=per)


def get_task(name: str) -> TaskSpec:
    """The :class:`TaskSpec` for ``name``: a preset (:data:`TASKS`, or one added with
    :func:`register_task`), ``gym:ID`` for any Gymnasium id, either with ``+stackK``.
    :class:`DigrError` listing the presets otherwise."""
    if not isinstance(name, str):
        raise DigrError(f"task must be a name, got {name!r}")
    if name in TASKS:
        return TASKS[name]
    base, mark, k = name.partition(STACK_MARK)
    if mark:
        if not k.isdigit() or not 1 <= int(k) <= 64:
            raise DigrError(f"task {name!r}: the frame count after {STACK_MARK!r} must be 1..64")
        return stacked_task(get_task(base), int(k))
    if name.startswith(GYM_PREFIX) and len(name) > len(GYM_PREFIX):
        return _env_task_cached(name[len(GYM_PREFIX):])
    raise DigrError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}, or gym:ID for a "
                    "Gymnasium id (--env ID)")


_ENV_TASKS: dict[str, TaskSpec] = {}


def _env_task_cached(env_id: str) -> TaskSpec:
    if env_id not in _ENV_TASKS:
        _ENV_TASKS[env_id] = env_task(env_id)
    return _ENV_TASKS[env_id]


def task_for_obs(name: str, obs_shape: tuple[int, ...]) -> str:
    """``name``, or its ``+stackK`` variant whose observations are ``obs_shape`` (a checkpoint
    trained on K stacked frames, e.g. the RL Zoo's 4-frame Atari layout); ``name`` unchanged when
    nothing fits (loading the policy then says what differs)."""
    spec = get_task(name)
    obs_shape = tuple(int(x) for x in obs_shape)
    if obs_shape == tuple(spec.obs_shape) or len(obs_shape) != 3:
        return spec.name
    per = spec.frame_channels or spec.obs_shape[0]
    if obs_shape[1:] == tuple(spec.obs_shape[1:]) and obs_shape[0] % per == 0:
        return stacked_task(spec, obs_shape[0] // per).name
    return spec.name


def register_task(name: str, env_id: str, *, obs_shape: tuple[int, int, int] | None = None,
                  n_actions: int | None = None, perturbation_radius: int | None = None,
                  dataset_size: int = 1000, **fields: Any) -> TaskSpec:
    """Add a preset task ``name`` for the Gymnasium id ``env_id`` (Python API; ``--task NAME``).

    Unset shapes come from the env's spaces and the radius from the frame size, as for
    ``--env`` (:func:`env_task`); any other :class:`TaskSpec` field may be given. A process that
    uses the task (dataset and robustness workers included) must run this registration: put it in
    the module that registers the env and name that module (``--env-module``, or import it).
    """
    base = env_task(env_id)
    c, h, w = obs_shape or base.obs_shape
    spec = replace(base, name=name, obs_shape=(c, h, w), n_actions=n_actions or base.n_actions,
                   perturbation_radius=perturbation_radius or default_radius(h, w),
                   dataset_size=dataset_size, **fields)
    if name in TASKS and TASKS[name] != spec:
        raise DigrError(f"task {name!r} is already registered with other settings")
    TASKS[name] = spec
    return spec


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
        env = gym.make(spec.env_id, **{**spec.env_kwargs, **extra, **kwargs})
    except (ImportError, gym.error.Error) as exc:
        hint = f" (install it with: pip install 'digr[{spec.extra}]')" if spec.extra else ""
        raise DigrError(f"cannot create the {spec.name} environment: {exc}{hint}") from None
    if spec.env_layout != "hwc" or spec.frame_stack > 1:
        from digr.envs.layout import ChannelLast, StackFrames

        if spec.env_layout != "hwc":
            env = ChannelLast(env, spec.env_layout)
        if spec.frame_stack > 1:
            env = StackFrames(env, spec.frame_stack)
    return env
