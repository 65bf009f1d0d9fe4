"""Vanilla gradient (eq. 2): closed form on a linear softmax policy, Jacobian form, double backprop."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from digr.errors import DigrError
from digr.saliency import get_method, vanilla_gradient
from digr.saliency.vanilla import input_gradient


class LinearSoftmaxPolicy(nn.Module):
    """logits = W vec(s) + b: every derivative has a closed form."""

    def __init__(self, obs_shape=(2, 3, 4), n_actions=3, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        n = obs_shape[0] * obs_shape[1] * obs_shape[2]
        self.config = SimpleNamespace(obs_shape=obs_shape, n_actions=n_actions)
        self.W = nn.Parameter(torch.randn(n_actions, n, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(n_actions, generator=g, dtype=torch.float64))

    def forward(self, obs):
        return obs.flatten(1) @ self.W.T + self.b


def closed_form_eq2(policy, obs):
    """sum_a pi_a d pi_a/ds = sum_a pi_a^2 (W_a - sum_b pi_b W_b) for a linear softmax policy."""
    pi = torch.softmax(policy(obs), -1)  # (B, A)
    w_bar = pi @ policy.W  # (B, N)
    g = (pi.pow(2)[:, :, None] * (policy.W[None] - w_bar[:, None])).sum(1)  # (B, N)
    g = g.view(obs.shape).abs().sum(1)  # sum_c |.|
    return g / g.flatten(1).amax(1)[:, None, None]


def test_linear_softmax_policy_matches_closed_form():
    policy = LinearSoftmaxPolicy()
    obs = torch.rand(5, 2, 3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = vanilla_gradient(policy, obs)
    torch.testing.assert_close(got, closed_form_eq2(policy, obs).detach(), rtol=1e-10, atol=1e-12)


def test_logit_mode_of_linear_policy_is_its_weight_row():
    policy = LinearSoftmaxPolicy()
    obs = torch.rand(3, 2, 3, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    target = torch.tensor([0, 2, 1])
    got = vanilla_gradient(policy, obs, mode="logit", target=target)
    rows = policy.W.detach()[target].view(3, 2, 3, 4).abs().sum(1)
    torch.testing.assert_close(got, rows / rows.flatten(1).amax(1)[:, None, None])
    # default target: the greedy action
    greedy = policy(obs).argmax(-1)
    torch.testing.assert_close(vanilla_gradient(policy, obs, mode="logit"),
                               vanilla_gradient(policy, obs, mode="logit", target=greedy))


def test_eq2_equals_explicit_jacobian_sum_on_cnn(tiny_policy):
    obs = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    raw = input_gradient(tiny_policy, obs)
    for b in range(2):
        x = obs[b:b + 1]
        jac = torch.autograd.functional.jacobian(lambda s: torch.softmax(tiny_policy(s), -1)[0], x)
        pi = torch.softmax(tiny_policy(x), -1)[0].detach()
        expected = (pi.view(-1, 1, 1, 1, 1) * jac).sum(0)[0]  # sum_a pi_a d pi_a / ds
        torch.testing.assert_close(raw[b], expected, rtol=1e-4, atol=1e-8)


class WithWeights(nn.Module):
    """``policy`` evaluated with the parameter tensors in ``params`` (for gradcheck)."""

    def __init__(self, policy, params):
        super().__init__()
        self.policy, self.params, self.config = policy, params, policy.config

    def forward(self, obs):
        return torch.func.functional_call(self.policy, self.params, (obs,))


def test_create_graph_is_differentiable_wrt_parameters():
    policy = LinearSoftmaxPolicy(seed=4)
    obs = torch.rand(2, 2, 3, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    w = policy.W.detach().clone().requires_grad_(True)
    # finite differences of the normalised map w.r.t. the weights agree with double backprop
    assert torch.autograd.gradcheck(
        lambda w: vanilla_gradient(WithWeights(policy, {"W": w}), obs, create_graph=True), (w,))
    maps = vanilla_gradient(policy, obs, create_graph=True)
    assert maps.requires_grad
    maps.mean().backward()
    assert policy.W.grad is not None and policy.W.grad.abs().sum() > 0


def test_no_graph_mode_is_detached_and_leaves_param_grads_alone(tiny_policy):
    obs = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():  # must still work inside no_grad
        maps = vanilla_gradient(tiny_policy, obs)
    assert not maps.requires_grad and maps.dtype == torch.float32
    assert all(p.grad is None for p in tiny_policy.parameters())
    assert maps.shape == (2, 16, 16) and float(maps.amax()) == 1.0


def test_method_object_matches_function(tiny_policy):
    obs = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    for mode in ("digr", "logit"):
        m = get_method("vanilla", tiny_policy, mode=mode)
        torch.testing.assert_close(m.attribute(obs), vanilla_gradient(tiny_policy, obs, mode=mode))
    assert get_method("vanilla", tiny_policy, create_graph=True).differentiable
    assert not get_method("vanilla", tiny_policy).differentiable


def test_bad_mode(tiny_policy):
    with pytest.raises(DigrError, match="mode"):
        get_method("vanilla", tiny_policy, mode="nope")
    with pytest.raises(DigrError, match="mode"):
        vanilla_gradient(tiny_policy, torch.rand(1, 3, 16, 16), mode="nope")
