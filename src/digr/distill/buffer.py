"""The online state buffer of DIGR (paper Figure 2): states the student visited, FIFO."""

from __future__ import annotations

import torch

from digr.errors import DigrError


class StateBuffer:
    """Ring buffer of observations ``(C, H, W) uint8`` with capacity ``capacity`` (Table 3: 10k).

    States are kept as uint8 (a 10k Red-Fetch-Green buffer is 123 MB instead of 492 MB as float)
    and converted to ``float in [0, 1]`` only for the sampled batch. When full, the oldest state
    is overwritten first.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, int, int]) -> None:
        if capacity <= 0:
            raise DigrError(f"buffer capacity must be > 0, got {capacity}")
        self.capacity = int(capacity)
        self.obs_shape = tuple(int(x) for x in obs_shape)
        self.states = torch.zeros((self.capacity, *self.obs_shape), dtype=torch.uint8)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, states: torch.Tensor) -> None:
        """Append ``states: (B, C, H, W) uint8``; the oldest entries go once the buffer is full."""
        if states.dtype != torch.uint8 or tuple(states.shape[1:]) != self.obs_shape:
            raise DigrError(f"buffer holds uint8 states {self.obs_shape}, got {states.dtype} "
                            f"{tuple(states.shape[1:])}")
        n = states.shape[0]
        if n >= self.capacity:  # only the newest `capacity` states survive
            states, n = states[-self.capacity:], self.capacity
        idx = (self.pos + torch.arange(n)) % self.capacity
        self.states[idx] = states
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, *, generator: torch.Generator) -> torch.Tensor:
        """``batch_size`` states drawn uniformly with replacement: ``(B, C, H, W) float32 in [0, 1]``."""
        if self.size == 0:
            raise DigrError("cannot sample from an empty state buffer")
        idx = torch.randint(self.size, (batch_size,), generator=generator)
        return self.states[idx].float().div_(255.0)


__all__ = ["StateBuffer"]
