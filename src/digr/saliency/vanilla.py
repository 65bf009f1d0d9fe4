"""Vanilla gradient saliency (Simonyan et al. 2013) in DIGR's form (paper eq. 2), differentiable.

Two modes:

* ``"digr"`` (default), eq. 2: ``g_i = | sum_a pi(a|s) d pi(a|s) / d s_i |``. Since
  ``sum_a pi_a d pi_a = d (0.5 * sum_a pi_a^2)``, the whole sum is one backward pass of the scalar
  ``0.5 * sum_a pi(a|s)^2`` instead of ``A`` Jacobian rows. It sums over all actions, so ``target``
  is ignored.
* ``"logit"``: the classic Jacobian saliency ``| d logit_target(s) / d s_i |`` (Wang et al. 2016),
  target defaulting to the greedy action.

Per-channel values are reduced with ``sum_c |.|`` and each map is divided by its max (eq. 2).
With ``create_graph=True`` the map stays in the autograd graph, so a loss on it (the DIGR input
gradient regularisation, eq. 4) can be backpropagated to the policy's parameters (double
backprop); otherwise the map is detached and no parameter ``.grad`` is touched.
"""

from __future__ import annotations

import torch

from digr.errors import DigrError
from digr.saliency.base import (
    FastInputConv,
    SaliencyMethod,
    Target,
    check_obs,
    normalize_maps,
    reduce_channels,
    resolve_target,
)

MODES = ("digr", "logit")


def eq2_objective(logits: torch.Tensor) -> torch.Tensor:
    """Scalar whose input gradient is eq. 2's ``sum_a pi(a|s) d pi(a|s) / ds`` for every row of
    ``logits: (B, A)``: ``0.5 * sum_b sum_a pi_a^2`` (rows are independent)."""
    return 0.5 * torch.softmax(logits, -1).pow(2).sum()


def input_gradient(policy: torch.nn.Module, obs: torch.Tensor, *, mode: str = "digr",
                   target: torch.Tensor | None = None, create_graph: bool = False) -> torch.Tensor:
    """Raw signed input gradient ``(B, C, H, W)`` of eq. 2's objective (or of the target logit).

    ``obs: (B, C, H, W)`` float (not validated here); ``target: (B,)`` int64, required for mode
    ``"logit"``. States are independent, so one backward of the batch sum gives every row's
    gradient.
    """
    if mode not in MODES:
        raise DigrError(f"unknown vanilla-gradient mode {mode!r}; choose one of: {', '.join(MODES)}")
    if mode == "logit" and target is None:
        raise DigrError("vanilla gradient mode 'logit' needs a target")
    with torch.enable_grad():
        x = obs if obs.requires_grad else obs.detach().requires_grad_(True)
        with FastInputConv(x):
            logits = policy(x)
        if mode == "digr":
            objective = eq2_objective(logits)
        else:
            objective = logits.gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(objective, x, create_graph=create_graph)
    return grad


def vanilla_gradient(policy: torch.nn.Module, obs: torch.Tensor, *, create_graph: bool = False,
                     mode: str = "digr", target: Target = None) -> torch.Tensor:
    """Normalised vanilla-gradient saliency maps ``(B, H, W)`` float32 in ``[0, 1]``.

    ``obs: (B, C, H, W)`` float in ``[0, 1]`` matching ``policy.config.obs_shape``. ``mode``
    ``"digr"`` is eq. 2 (``target`` ignored); ``"logit"`` is ``|d logit_target / d s|`` with
    ``target`` defaulting to the argmax action. With ``create_graph=True`` the result is
    differentiable w.r.t. the policy parameters; else it is detached.
    """
    obs = check_obs(policy, obs)
    if mode not in MODES:
        raise DigrError(f"unknown vanilla-gradient mode {mode!r}; choose one of: {', '.join(MODES)}")
    tgt = resolve_target(policy, obs, target) if mode == "logit" else None
    grad = input_gradient(policy, obs, mode=mode, target=tgt, create_graph=create_graph)
    maps = normalize_maps(reduce_channels(grad))
    return maps if create_graph else maps.detach()


class VanillaGradient(SaliencyMethod):
    """Vanilla gradient, eq. 2 of the paper (``mode="digr"``) or the target logit's Jacobian
    (``mode="logit"``). The only differentiable method (with ``create_graph=True``)."""

    name = "vanilla"

    def __init__(self, policy: torch.nn.Module, *, mode: str = "digr", create_graph: bool = False) -> None:
        if mode not in MODES:
            raise DigrError(f"unknown vanilla-gradient mode {mode!r}; choose one of: {', '.join(MODES)}")
        super().__init__(policy, mode=mode, create_graph=bool(create_graph))
        self.mode = mode
        self.create_graph = bool(create_graph)
        self.uses_target = mode == "logit"

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        return self.create_graph

    def attribute(self, obs: torch.Tensor, *, target: Target = None) -> torch.Tensor:
        return vanilla_gradient(self.policy, obs, create_graph=self.create_graph, mode=self.mode,
                                target=target)

    def _attribute(self, obs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        return reduce_channels(input_gradient(self.policy, obs, mode=self.mode, target=target))


__all__ = ["vanilla_gradient", "input_gradient", "VanillaGradient", "MODES"]
