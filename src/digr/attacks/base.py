"""The uniform attack interface: ``Attack(policy, *, eps, ...).perturb(obs, *, target=None)``.

Every attack is an L-infinity attack on the policy's *observation* (paper section 4.6): it returns
``obs_adv`` with ``|obs_adv - obs| <= eps`` element-wise and ``obs_adv`` in ``[0, 1]``.

``eps`` is in the policy-input scale ``[0, 1]``: Red-Fetch-Green's uint8 pixels are divided by
255 (:func:`digr.models.to_tensor`), so ``eps = k / 255`` lets the attacker move every pixel of
every channel by up to ``k`` grey levels. Adversarial observations are *not* re-quantised to the
1/255 grid: the policy acts on the continuous values (a slightly stronger attacker than one
that must write uint8 pixels).

Attacks never touch the policy's parameters: input gradients come from
:func:`torch.autograd.grad` with respect to the input only (nothing accumulates in
``param.grad``), under a local :func:`torch.enable_grad` so they also work inside
``torch.no_grad()`` rollouts. The policy's train/eval mode is left as it is.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from digr.errors import DigrError, check_int


def check_eps(eps: float) -> float:
    """``eps`` as a float, or :class:`DigrError` unless ``0 <= eps <= 1`` (the pixel range)."""
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise DigrError(f"eps must be a number in [0, 1], got {eps!r}") from None
    if not math.isfinite(value) or value < 0.0 or value > 1.0:
        raise DigrError(f"eps must be in [0, 1] (pixel scale: 8/255 = {8 / 255:.4f}), got {eps!r}")
    return value


def project(x_adv: torch.Tensor, obs: torch.Tensor, eps: float) -> torch.Tensor:
    """Project ``x_adv`` onto the L-inf ``eps``-ball around ``obs`` intersected with ``[0, 1]``.

    Both ``(B, C, H, W)``. Up to float rounding (one ulp) ``|result - obs| <= eps``.
    """
    x_adv = torch.maximum(torch.minimum(x_adv, obs + eps), obs - eps)
    return x_adv.clamp_(0.0, 1.0)


class Attack:
    """Base class: validation, the clean greedy target, projection and input gradients.

    Subclasses set :attr:`name` and implement :meth:`_attack`; :meth:`perturb` wraps it.

    Args:
        policy: module mapping ``(B, C, H, W) float in [0, 1]`` to logits ``(B, A)``
            (a :class:`digr.models.PolicyNet`, or any such ``nn.Module``).
        eps: L-inf radius in the ``[0, 1]`` pixel scale; ``eps = 0`` returns ``obs`` unchanged.
        seed: seeds the attack's own :class:`torch.Generator` when ``generator`` is not given
            (only attacks with a random start draw from it). The generator is a stream: the
            same seed gives the same sequence of ``perturb`` results.
        generator: a CPU generator to draw random starts from (overrides ``seed``).
    """

    name: ClassVar[str] = ""
    """Registry name (see :data:`digr.attacks.ATTACKS`)."""
    uses_target: ClassVar[bool] = True
    """False for attacks that ignore ``target`` (MAD): :meth:`perturb` then skips the forward
    pass that finds the clean greedy action (a given target is still checked)."""

    def __init__(self, policy: nn.Module, *, eps: float, seed: int = 0,
                 generator: torch.Generator | None = None) -> None:
        if not callable(policy):
            raise DigrError(f"policy must be a module returning logits, got {type(policy).__name__}")
        self.policy = policy
        self.eps = check_eps(eps)
        if generator is not None and generator.device.type != "cpu":
            raise DigrError("attacks draw random starts from a CPU torch.Generator")
        self.generator = generator if generator is not None else torch.Generator().manual_seed(int(seed))

    # ------------------------------------------------------------------ public verb
    def perturb(self, obs: torch.Tensor, *, target: torch.Tensor | int | None = None) -> torch.Tensor:
        """Adversarial observations ``(B, C, H, W)``, same dtype and device as ``obs``.

        Args:
            obs: ``(B, C, H, W)`` floating tensor in ``[0, 1]``.
            target: action(s) to push the policy away from, ``(B,)`` int or one int for all;
                default: the policy's clean greedy action ``argmax_a logits(obs)``.

        Returns:
            ``obs_adv`` (detached) with ``|obs_adv - obs| <= eps`` and ``0 <= obs_adv <= 1``.
        """
        obs = self._check_obs(obs)
        if self.eps == 0.0:
            return obs.clone()
        if torch.is_inference_mode_enabled():
            raise DigrError("attacks need input gradients: call perturb() outside torch.inference_mode()")
        if target is not None or self.uses_target:
            target = self._resolve_target(obs, target)
        with torch.enable_grad():
            x_adv = self._attack(obs, target)
        return project(x_adv.detach(), obs, self.eps)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """``perturb(obs)``: lets an attack serve directly as an ``obs_hook``."""
        return self.perturb(obs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps:g})"

    # ------------------------------------------------------------------ for subclasses
    def _attack(self, obs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return a candidate ``(B, C, H, W)``; :meth:`perturb` projects it once more."""
        raise NotImplementedError

    def _ce_grad(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``d CE(logits(x), target) / dx`` per sample, ``(B, C, H, W)``.

        The loss is summed (not averaged) over the batch, so each sample's gradient is exactly
        the gradient of its own loss and does not shrink with ``B``.
        """
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(self.policy(x), target, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        return grad

    def _uniform(self, like: torch.Tensor, radius: float) -> torch.Tensor:
        """Uniform noise in ``[-radius, radius]`` shaped like ``like``, from :attr:`generator`."""
        u = torch.rand(like.shape, generator=self.generator, dtype=like.dtype)
        return (u.mul_(2.0).sub_(1.0).mul_(radius)).to(like.device)

    def _check_steps(self, steps: int) -> int:
        return check_int(f"{self.name}: steps", steps)

    def _check_positive(self, what: str, value: float) -> float:
        value = float(value)
        if not math.isfinite(value) or value <= 0.0:
            raise DigrError(f"{self.name}: {what} must be > 0, got {value!r}")
        return value

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_obs(obs: torch.Tensor) -> torch.Tensor:
        if not isinstance(obs, torch.Tensor) or obs.ndim != 4 or not obs.is_floating_point():
            desc = (f"{tuple(obs.shape)} {obs.dtype}" if isinstance(obs, torch.Tensor)
                    else type(obs).__name__)
            raise DigrError(f"attack input must be a (B, C, H, W) float tensor in [0, 1], got {desc}")
        if obs.numel() and (obs.min() < 0.0 or obs.max() > 1.0):
            raise DigrError("attack input must lie in [0, 1] (uint8 pixels divided by 255)")
        return obs.detach()

    def _resolve_target(self, obs: torch.Tensor, target: torch.Tensor | int | None) -> torch.Tensor:
        B = obs.shape[0]
        if target is None:
            with torch.no_grad():
                return self.policy(obs).argmax(-1)
        t = torch.as_tensor(target, device=obs.device)
        if t.is_floating_point() or t.is_complex():
            raise DigrError(f"target must hold integer actions, got dtype {t.dtype}")
        if t.ndim == 0:
            t = t.expand(B)
        if t.shape != (B,):
            raise DigrError(f"target must be one action or shape ({B},), got {tuple(t.shape)}")
        n_actions = getattr(getattr(self.policy, "config", None), "n_actions", None)
        if t.numel() and (int(t.min()) < 0 or (n_actions is not None and int(t.max()) >= n_actions)):
            raise DigrError(f"target actions must be in [0, {n_actions if n_actions else 'A'}), "
                            f"got {t.tolist()}")
        return t.long()
