"""SmoothGrad (Smilkov et al. 2017) on guided backpropagation: sigma 0.15, 20 samples (appendix A).

    SG(s) = mean_n GBP(s + eps_n),   eps_n ~ N(0, sigma^2 I),   n = 1..samples

``sigma`` is in input units; inputs span ``[0, 1]``, so it equals Smilkov et al.'s noise level
``sigma / (x_max - x_min)``. Noisy inputs are not clipped (as in Smilkov et al.). The target is
fixed to the clean state's (greedy) action for every noisy copy. The signed gradients are averaged
first, then reduced with ``sum_c |.|`` and divided by the max.

Determinism without global randomness: the ``samples`` noise images are drawn from a
``torch.Generator`` seeded with ``seed`` on every call, on the CPU (so CPU and GPU runs agree), and
the same noise images are used for every state of a batch, so a state's map does not depend on
which batch it came in. All ``B * samples`` noisy states run in batches of ``batch_size``.
"""

from __future__ import annotations

import torch

from digr.errors import DigrError
from digr.saliency.base import SaliencyMethod, check_positive, chunks, reduce_channels
from digr.saliency.guided_backprop import guided_gradient

DEFAULT_SIGMA = 0.15
DEFAULT_SAMPLES = 20


def smoothgrad_noise(shape: tuple[int, int, int], *, samples: int, sigma: float, seed: int,
                     device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``(samples, C, H, W)`` noise images used for every state."""
    gen = torch.Generator().manual_seed(int(seed))
    return (sigma * torch.randn(samples, *shape, generator=gen, dtype=torch.float32)).to(device=device,
                                                                                        dtype=dtype)


def smoothgrad(policy: torch.nn.Module, obs: torch.Tensor, target: torch.Tensor, *,
               sigma: float = DEFAULT_SIGMA, samples: int = DEFAULT_SAMPLES, seed: int = 0,
               batch_size: int = 1024) -> torch.Tensor:
    """Raw averaged guided-backprop gradients ``(B, C, H, W)`` over noisy copies (no checks)."""
    b = obs.shape[0]
    obs = obs.detach()
    noise = smoothgrad_noise(tuple(obs.shape[1:]), samples=samples, sigma=sigma, seed=seed,
                             device=obs.device, dtype=obs.dtype)
    total = torch.zeros_like(obs)
    for sl in chunks(b * samples, batch_size):
        flat = torch.arange(sl.start, sl.stop, device=obs.device)
        rows, k = flat // samples, flat % samples
        grad = guided_gradient(policy, obs[rows] + noise[k], target[rows])
        total.index_add_(0, rows, grad)
    return total / samples


class SmoothGrad(SaliencyMethod):
    """SmoothGrad over guided backpropagation with a seeded, per-call noise generator."""

    name = "smoothgrad"

    def __init__(self, policy: torch.nn.Module, *, sigma: float = DEFAULT_SIGMA,
                 samples: int = DEFAULT_SAMPLES,
                 seed: int = 0, batch_size: int = 1024) -> None:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma >= 0:
            raise DigrError(f"smoothgrad sigma must be a number >= 0, got {sigma!r}")
        check_positive("smoothgrad samples", samples)
        check_positive("smoothgrad batch_size", batch_size)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise DigrError(f"smoothgrad seed must be an integer, got {seed!r}")
        super().__init__(policy, sigma=float(sigma), samples=samples, seed=seed, batch_size=batch_size)

    def _attribute(self, obs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        assert target is not None
        s = self.settings
        return reduce_channels(smoothgrad(self.policy, obs, target, sigma=s["sigma"], samples=s["samples"],
                                          seed=s["seed"], batch_size=s["batch_size"]))


__all__ = ["SmoothGrad", "smoothgrad", "smoothgrad_noise", "DEFAULT_SIGMA", "DEFAULT_SAMPLES"]
