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

import math
from typing import Any, ClassVar, Sequence

import torch
from torch.overrides import TorchFunctionMode

from digr.errors import DigrError, check_int

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

    @staticmethod
    def supports(policy: torch.nn.Module) -> bool:
        """Whether this method can explain ``policy`` (all can, except architecture-specific ones
        such as FLS); "every method" lists (``--method all``, timing) skip the others."""
        return True

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
    with torch.no_grad():  # one pass: NaN propagates into min/max, inf lands in them
        lo_t, hi_t = torch.aminmax(obs.detach())
        lo, hi = float(lo_t), float(hi_t)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise DigrError("observations contain NaN or infinite values")
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


def space_to_depth_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                          stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1
                          ) -> torch.Tensor | None:
    """``F.conv2d`` of a strided conv rewritten as a stride-1 conv on a space-to-depth input.

    A ``k x k`` conv with stride ``s`` (``k % s == 0``) equals a ``k/s x k/s`` stride-1 conv on
    the input regrouped into ``s x s`` blocks (``C -> C s^2`` channels), with the weights
    regrouped the same way. Same sum, other order. Returns None where the rewrite does not apply
    (stride 1, groups, dilation, string padding, ``k % s != 0``).
    """
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    if isinstance(padding, str) or x.ndim != 4 or weight.ndim != 4 or groups != 1 or pair(dilation) != (1, 1):
        return None
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    o, c, kh, kw = weight.shape
    if (sh, sw) == (1, 1) or kh % sh or kw % sw:
        return None
    if ph or pw:
        x = torch.nn.functional.pad(x, (pw, pw, ph, ph))
    b, _, h, w = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    rh, rw = kh // sh, kw // sw
    if rh == rw == 1:
        # Non-overlapping patches (kernel == stride, Red-Fetch-Green's tile layer): one
        # contraction over (C, kh, kw) per patch. As a matmul its weight gradient and double
        # backward avoid oneDNN's slow 1x1-conv kernels (about 7% of a DIGR IGR step).
        xs = x[:, :, :ho * kh, :wo * kw].reshape(b, c, ho, kh, wo, kw)
        out = torch.einsum("bcyixj,ocij->boyx", xs, weight)
        return out if bias is None else out + bias[:, None, None]
    hc, wc = (ho - 1 + rh) * sh, (wo - 1 + rw) * sw  # the rows/columns the conv reads
    xs = x[:, :, :hc, :wc].reshape(b, c, hc // sh, sh, wc // sw, sw)
    xs = xs.permute(0, 1, 3, 5, 2, 4).reshape(b, c * sh * sw, hc // sh, wc // sw)
    ws = weight.reshape(o, c, rh, sh, rw, sw).permute(0, 1, 3, 5, 2, 4).reshape(o, c * sh * sw, rh, rw)
    return torch.nn.functional.conv2d(xs, ws, bias)


class FastInputConv(TorchFunctionMode):
    """Within ``with FastInputConv(x):``, a strided conv applied directly to ``x`` runs as
    :func:`space_to_depth_conv2d`.

    Why: on CPU, PyTorch's default (oneDNN) input-gradient kernel for the policies' first layer
    (8x8 kernel, stride 4 or 8, 1-3 input channels) is slow -- forward plus input gradient of that
    layer took 4-7x its forward alone -- and that gradient is what every gradient saliency needs.
    The space-to-depth form cut that layer's forward+backward 2-3x and a whole vanilla map's CPU
    time by 10-15% on the three task networks (batch 1, one thread). Its backward is ordinary
    autograd, so double backprop (``create_graph=True``) works unchanged. Only calls whose input
    *is* ``x`` are rewritten, so deeper layers keep their kernels. No-op off the CPU.
    """

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self.x = x
        self.active = x.device.type == "cpu"

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.active and func is torch.nn.functional.conv2d and args and args[0] is self.x:
            out = space_to_depth_conv2d(*args, **kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)


def chunks(n: int, size: int):
    """``range`` slices ``[i, i + size)`` covering ``0 .. n``."""
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def check_positive(name: str, value: Any, *, integer: bool = True) -> None:
    """Reject a non-positive (or, with ``integer``, non-integer) setting with a DigrError."""
    if integer:
        check_int(name, value)
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise DigrError(f"{name} must be a positive number, got {value!r}")


__all__ = ["SaliencyMethod", "Target", "check_obs", "resolve_target", "reduce_channels",
           "normalize_maps", "chunks", "check_positive", "space_to_depth_conv2d", "FastInputConv"]
