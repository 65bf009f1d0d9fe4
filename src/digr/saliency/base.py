"""What every saliency method shares: the one call, input checks, channel reduction, normalisation.

Every method answers ``attribute(obs, *, target=None) -> (B, H, W)``:

* ``obs``: ``(B, C, H, W)`` float in ``[0, 1]`` matching ``policy.config.obs_shape``.
* The result is float32, one map per state, divided by its own maximum as in eq. 2/3 of the
  paper, so every map lies in ``[0, 1]`` and an all-zero map stays zero.
* Per-channel attributions (colour channels and stacked frames alike) are reduced to one map by
  summing their absolute values: ``map[h, w] = sum_c |attr[c, h, w]|``. Methods that already give
  one value per pixel (Grad-CAM, the perturbation family) skip this step.

A method object holds only its policy and settings; the policy's parameters, ``training`` flag and
hooks are left exactly as they were after every call.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch

from digr.errors import DigrError

Target = int | Sequence[int] | torch.Tensor | None
"""Action(s) to explain: ``None`` (the greedy action of each state), one int for all states, or
one int per state (sequence or ``(B,)`` integer tensor)."""

RANGE_TOL = 1e-3
"""Slack allowed around ``[0, 1]`` before observations are rejected (catches raw 0..255 input)."""


class SaliencyMethod:
    """Base class of all saliency methods: ``method.attribute(obs, *, target=None) -> (B, H, W)``.

    Subclasses set :attr:`name` and :attr:`differentiable` and implement :meth:`_attribute`,
    which receives validated observations and a resolved ``(B,)`` target (or ``None`` for
    methods that do not use one) and returns unnormalised non-negative ``(B, H, W)`` maps.
    """

    name: ClassVar[str] = ""
    """Registry name."""
    differentiable: ClassVar[bool] = False
    """Whether maps can be backpropagated to the policy's parameters (only ``vanilla`` with
    ``create_graph=True``); every other method returns detached maps."""
    uses_target: bool = True
    """Whether ``target`` changes the map (eq. 2's vanilla gradient sums over all actions)."""

    def __init__(self, policy: torch.nn.Module, **settings: Any) -> None:
        self.policy = policy
        self.settings: dict[str, Any] = dict(settings)
        """The method's resolved settings, for provenance (written next to saved maps)."""

    def attribute(self, obs: torch.Tensor, *, target: Target = None) -> torch.Tensor:
        """Saliency maps ``(B, H, W)`` float32 in ``[0, 1]`` for ``obs: (B, C, H, W)`` in ``[0, 1]``."""
        obs = check_obs(self.policy, obs)
        tgt = resolve_target(self.policy, obs, target) if self.uses_target else None
        maps = self._attribute(obs, tgt)
        return normalize_maps(maps)

    def _attribute(self, obs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"{type(self).__name__}({args})"


def check_obs(policy: torch.nn.Module, obs: Any) -> torch.Tensor:
    """Validate a batch of observations; return it as a floating tensor.

    Raises :class:`DigrError` with one line for: not a tensor, integer dtype, ndim != 4, an empty
    batch, a shape other than ``policy.config.obs_shape``, non-finite values, values outside
    ``[0, 1]``.
    """
    if not isinstance(obs, torch.Tensor):
        raise DigrError(f"observations must be a torch.Tensor (B, C, H, W), got {type(obs).__name__}")
    if not obs.is_floating_point():
        raise DigrError(f"observations must be float in [0, 1], got dtype {obs.dtype} "
                        "(convert raw frames with digr.models.to_tensor)")
    if obs.ndim != 4:
        raise DigrError(f"observations must have shape (B, C, H, W), got {tuple(obs.shape)}")
    if obs.shape[0] == 0:
        raise DigrError("observations are an empty batch (B = 0)")
    expected = getattr(getattr(policy, "config", None), "obs_shape", None)
    if expected is not None and tuple(obs.shape[1:]) != tuple(expected):
        raise DigrError(f"observation shape {tuple(obs.shape[1:])} does not match the policy's "
                        f"input {tuple(expected)}")
    with torch.no_grad():
        if not bool(torch.isfinite(obs).all()):
            raise DigrError("observations contain NaN or infinite values")
        lo, hi = float(obs.min()), float(obs.max())
    if lo < -RANGE_TOL or hi > 1 + RANGE_TOL:
        raise DigrError(f"observations must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
    return obs


def resolve_target(policy: torch.nn.Module, obs: torch.Tensor, target: Target) -> torch.Tensor:
    """The ``(B,)`` int64 action indices to explain; ``None`` -> greedy (argmax-logit) action."""
    n = obs.shape[0]
    n_actions = int(policy.config.n_actions)
    if target is None:
        with torch.no_grad():
            return policy(obs.detach()).argmax(-1)
    t = torch.as_tensor(target, device=obs.device)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise DigrError(f"target must be integer action indices, got dtype {t.dtype}")
    t = t.long()
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise DigrError(f"target must be one int or one per state ({n}), got shape {tuple(t.shape)}")
    if bool(((t < 0) | (t >= n_actions)).any()):
        raise DigrError(f"target actions must be in [0, {n_actions}), got {t.tolist()}")
    return t.contiguous()


def reduce_channels(attr: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` per-channel attributions -> ``(B, H, W)``: ``sum_c |attr|``."""
    return attr.abs().sum(1)


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Divide each ``(H, W)`` map by its own maximum (eq. 2/3); an all-zero map stays zero.

    ``maps: (B, H, W)`` non-negative. Differentiable (the DIGR loss backpropagates through the max):
    clamping the denominator at the smallest normal float keeps zero maps at zero without a
    ``where`` whose unused branch would put NaN into the backward pass.
    """
    if maps.dtype != torch.float64:  # float32 out, except for float64 checks (gradcheck)
        maps = maps.float()
    peak = maps.flatten(1).amax(1).clamp_min(torch.finfo(maps.dtype).tiny)
    return maps / peak[:, None, None]


def chunks(n: int, size: int):
    """``range`` slices ``[i, i + size)`` covering ``0 .. n``."""
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def check_positive(name: str, value: Any, *, integer: bool = True) -> None:
    """Reject a non-positive (or, with ``integer``, non-integer) setting with a DigrError."""
    ok = isinstance(value, int) and not isinstance(value, bool) if integer else isinstance(value, (int, float))
    if not ok or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise DigrError(f"{name} must be {kind}, got {value!r}")


__all__ = ["SaliencyMethod", "Target", "check_obs", "resolve_target", "reduce_channels",
           "normalize_maps", "chunks", "check_positive"]
