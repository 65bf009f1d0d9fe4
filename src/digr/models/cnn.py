"""The paper's policy network: 3 convolutional layers and 2 linear layers (section 4.1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class PolicyConfig:
    """Architecture of a :class:`PolicyNet`; stored verbatim in every checkpoint."""

    obs_shape: tuple[int, int, int]
    """Input shape ``(C, H, W)``."""
    n_actions: int
    """Number of discrete actions."""
    convs: tuple[tuple[int, int, int, int], ...]
    """Conv layers as ``(out_channels, kernel, stride, padding)``, each followed by ReLU."""
    hidden: int
    """Width of the first linear layer (followed by ReLU)."""
    pool: str = "flatten"
    """How the last conv's ``(C, h, w)`` output reaches the linear layer: ``flatten`` (the usual
    Nature-CNN head) or ``max`` (global max over positions, parameter-free). ``max`` makes the
    head translation-invariant, which is what lets PPO learn the full-room Red-Fetch-Green view
    quickly: the convolutions compute "what is where relative to me" at the agent's tile and the
    pool reads it wherever the agent stands, as the egocentric view does."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PolicyConfig":
        return cls(
            obs_shape=tuple(int(x) for x in d["obs_shape"]),
            n_actions=int(d["n_actions"]),
            convs=tuple(tuple(int(x) for x in c) for c in d["convs"]),
            hidden=int(d["hidden"]),
            pool=str(d.get("pool", "flatten")),
        )

    @classmethod
    def for_task(cls, spec) -> "PolicyConfig":
        """The default architecture of a :class:`digr.envs.TaskSpec`."""
        return cls(obs_shape=spec.obs_shape, n_actions=spec.n_actions, convs=spec.convs,
                   hidden=spec.hidden, pool=spec.pool)


class CNNTrunk(nn.Module):
    """Conv stack plus the first linear layer: ``(B, C, H, W) float in [0, 1] -> (B, hidden)``."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        if config.pool not in ("flatten", "max"):
            from digr.errors import DigrError

            raise DigrError(f"pool must be 'flatten' or 'max', got {config.pool!r}")
        self.config = config
        layers: list[nn.Module] = []
        c_in = config.obs_shape[0]
        for c_out, k, s, p in config.convs:
            layers += [nn.Conv2d(c_in, c_out, k, stride=s, padding=p), nn.ReLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():  # infer the flatten size with a dummy forward, as SB3's NatureCNN
            n_flat = self._pool(self.convs(torch.zeros(1, *config.obs_shape))).shape[1]
        self.linear = nn.Linear(n_flat, config.hidden)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3)) if self.config.pool == "max" else x.flatten(1)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Last conv layer's activations ``(B, C', h, w)``."""
        return self.convs(obs)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(self._pool(self.convs(obs))))


class PolicyNet(nn.Module):
    """Actor-critic policy used for teachers, students and SB3 training alike.

    ``forward(obs)`` maps ``obs: (B, C, H, W) float32 in [0, 1]`` to action logits ``(B, A)``;
    :meth:`value` gives the critic's ``(B,)`` estimate.
    """

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        self.trunk = CNNTrunk(config)
        self.pi = nn.Linear(config.hidden, config.n_actions)
        self.v = nn.Linear(config.hidden, 1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.pi(self.trunk(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.v(self.trunk(obs)).squeeze(-1)

    def logits_and_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs)
        return self.pi(h), self.v(h).squeeze(-1)

    @property
    def last_conv(self) -> nn.Conv2d:
        """The last convolution (Grad-CAM's layer)."""
        return [m for m in self.trunk.convs if isinstance(m, nn.Conv2d)][-1]

    @torch.no_grad()
    def act(self, obs: np.ndarray, *, deterministic: bool = True,
            generator: torch.Generator | None = None) -> np.ndarray:
        """Actions ``(B,) int64`` for raw observations ``(B, H, W, C) uint8``."""
        logits = self(to_tensor(obs, self.config.obs_shape))
        if deterministic:
            return logits.argmax(-1).numpy()
        probs = torch.softmax(logits, -1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1).numpy()


def to_tensor(obs: np.ndarray | torch.Tensor, obs_shape: tuple[int, int, int] | None = None
              ) -> torch.Tensor:
    """Raw env observations ``(B, H, W, C) uint8`` -> policy input ``(B, C, H, W) float in [0, 1]``."""
    t = torch.as_tensor(np.asarray(obs))
    if t.ndim == 3:
        t = t.unsqueeze(0)
    t = t.permute(0, 3, 1, 2).float().div_(255.0)
    if obs_shape is not None and tuple(t.shape[1:]) != tuple(obs_shape):
        from digr.errors import DigrError

        raise DigrError(f"observation shape {tuple(t.shape[1:])} does not match the policy's "
                        f"input {tuple(obs_shape)}")
    return t.contiguous()
