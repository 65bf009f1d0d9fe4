"""PPO configuration; per-task defaults are the paper's Table 2 (``TaskSpec.ppo``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from digr.errors import DigrError

VEC_ENVS = ("dummy", "subproc")
"""Where a teacher's environments run (:attr:`PPOConfig.vec_env`)."""


@dataclass(frozen=True)
class PPOConfig:
    """Teacher training settings (paper appendix A, Table 2)."""

    total_timesteps: int = 10_000_000
    """Environment steps to train for (all envs together)."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    n_envs: int = 16
    """Parallel environments."""
    n_steps: int = 128
    """Steps per environment per rollout."""
    n_epochs: int = 4
    """Optimisation epochs per rollout."""
    n_minibatches: int = 8
    """Minibatches per epoch (batch size = n_envs * n_steps / n_minibatches)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Gradient clipping norm."""
    clip_range: float = 0.2
    """PPO clip range."""
    frame_stack: int = 1
    """Frames stacked into the observation (handled by the task's env wrappers)."""
    seed: int = 0
    """Seed of the policy initialisation, the sampling and environment ``i``'s ``reset(seed+i)``."""
    checkpoint_every: int = 50_000
    """Save a resumable checkpoint every this many steps."""
    stop_at_success: float | None = None
    """Stop early once the success rate of the last ``success_window`` episodes reaches this."""
    success_window: int = 200
    """Episodes in the running success rate."""
    vec_env: str = "dummy"
    """``dummy`` (all envs in this process) or ``subproc`` (one process per env)."""
    torch_threads: int = 1
    """Threads torch may use in the trainer process."""

    @property
    def batch_size(self) -> int:
        return self.n_envs * self.n_steps // self.n_minibatches

    def validate(self) -> "PPOConfig":
        from digr.errors import MAX_ENVS, MAX_SEED, check_finite, check_int

        for name in ("learning_rate", "gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm", "clip_range"):
            check_finite(name, getattr(self, name))
        check_int("seed", self.seed, minimum=0, maximum=MAX_SEED)
        check_int("n_envs", self.n_envs, maximum=MAX_ENVS)
        if self.total_timesteps < 0:
            raise DigrError(f"timesteps must be >= 0, got {self.total_timesteps}")
        for name in ("n_envs", "n_steps", "n_epochs", "n_minibatches", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise DigrError(f"{name} must be > 0, got {getattr(self, name)}")
        if (self.n_envs * self.n_steps) % self.n_minibatches:
            raise DigrError("n_envs * n_steps must be divisible by n_minibatches")
        if self.learning_rate <= 0:
            raise DigrError(f"learning rate must be > 0, got {self.learning_rate}")
        if self.vec_env not in VEC_ENVS:
            raise DigrError(f"vec_env must be 'dummy' or 'subproc', got {self.vec_env!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_task(cls, spec, **overrides: Any) -> "PPOConfig":
        """Table 2 defaults of ``spec`` with ``overrides`` (``None`` values ignored)."""
        known = {f.name for f in fields(cls)}
        merged = {**spec.ppo, **{k: v for k, v in overrides.items() if v is not None}}
        unknown = set(merged) - known
        if unknown:
            raise DigrError(f"unknown PPO settings: {', '.join(sorted(unknown))}")
        return replace(cls(), **merged).validate()
