"""Attacks: one contract test over every registered attack plus analytic checks on a linear policy."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from digr.attacks import ATTACK_NAMES, ATTACKS, get_attack, resolve_attack_name
from digr.errors import DigrError
from digr.models import PolicyConfig, PolicyNet

OBS_SHAPE = (3, 12, 12)
N_ACTIONS = 4
EPS = 0.1
TOL = 1e-6  # float32 rounding of obs +- eps


# tests/conftest.py already runs torch on one thread (tiny batches on a busy machine).


def tiny_policy(seed: int, *, head_gain: float = 100.0) -> PolicyNet:
    """A seeded tiny PolicyNet made confident like a trained policy.

    At default init the logits barely depend on the input (p(clean) ~ 1/A everywhere); scaling
    the policy head makes the greedy action carry most of the probability, as in a trained
    teacher, so "lowers p(clean action)" is a meaningful check for every attack (MAD included).
    """
    torch.manual_seed(seed)
    cfg = PolicyConfig(obs_shape=OBS_SHAPE, n_actions=N_ACTIONS, convs=((8, 3, 1, 1), (8, 3, 2, 1)),
                       hidden=16)
    policy = PolicyNet(cfg)
    with torch.no_grad():
        policy.pi.weight.mul_(head_gain)
    return policy.eval()


def random_obs(seed: int, batch: int = 32) -> torch.Tensor:
    return torch.rand(batch, *OBS_SHAPE, generator=torch.Generator().manual_seed(1000 + seed))


def clean_action_prob(policy: nn.Module, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(policy(x), -1).gather(1, action[:, None]).squeeze(1)


def test_registry_names_and_aliases():
    assert ATTACK_NAMES == ("fgsm", "pgd", "mi-fgsm", "mad")
    for name, cls in ATTACKS.items():
        assert cls.name == name
    assert resolve_attack_name("MI_FGSM") == "mi-fgsm"
    assert resolve_attack_name("mifgsm") == "mi-fgsm"
    with pytest.raises(DigrError, match="unknown attack"):
        resolve_attack_name("cw")


@pytest.mark.parametrize("name", ATTACK_NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_attack_contract(name, seed):
    policy = tiny_policy(seed)
    x = random_obs(seed)
    # Values at the pixel range's edges exercise the [0, 1] clipping.
    x[:, 0, :2] = 0.0
    x[:, 1, :2] = 1.0
    params_before = {k: v.detach().clone() for k, v in policy.state_dict().items()}

    x_in = x.clone()
    adv = get_attack(name, policy, eps=EPS, seed=7).perturb(x)

    assert torch.equal(x, x_in), "the input must not be modified in place"
    assert adv.shape == x.shape and adv.dtype == x.dtype and adv.device == x.device
    assert not adv.requires_grad
    assert (adv - x).abs().max().item() <= EPS + TOL
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0
    assert (adv - x).abs().max().item() > EPS / 2, "the attack must actually move the input"

    # The policy is untouched: same parameters, no gradients left behind.
    for k, v in policy.state_dict().items():
        assert torch.equal(v, params_before[k]), k
    assert all(p.grad is None for p in policy.parameters())
    assert not policy.training

    # Deterministic for a fixed seed: a fresh attack with the same seed gives the same result.
    again = get_attack(name, policy, eps=EPS, seed=7).perturb(x)
    assert torch.equal(adv, again)

    # It lowers the probability of the clean greedy action, on most samples and on average by
    # more than uniform random noise of the same radius does. (MAD maximises the KL, which on a
    # sample whose runner-up action is nearly as likely may also be reached by squashing the
    # runner-up instead, so "most" is a majority, not all.)
    action = policy(x).argmax(-1).detach()
    p_clean = clean_action_prob(policy, x, action)
    p_adv = clean_action_prob(policy, adv, action)
    noise = (torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * EPS
    p_noise = clean_action_prob(policy, (x + noise).clamp(0, 1), action)
    assert (p_adv < p_clean).float().mean().item() > 0.5
    assert (p_clean - p_adv).mean().item() > 5 * (p_clean - p_noise).abs().mean().item()


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_eps_zero_returns_input(name):
    policy = tiny_policy(0)
    x = random_obs(0, batch=4)
    adv = get_attack(name, policy, eps=0.0).perturb(x)
    assert torch.equal(adv, x)


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_works_inside_no_grad_and_with_frozen_params(name):
    policy = tiny_policy(1)
    for p in policy.parameters():
        p.requires_grad_(False)
    x = random_obs(1, batch=4)
    with torch.no_grad():
        adv = get_attack(name, policy, eps=EPS).perturb(x)
    assert (adv - x).abs().max().item() > EPS / 2
    assert all(p.grad is None and not p.requires_grad for p in policy.parameters())


@pytest.mark.parametrize("name", ["pgd", "mad"])
def test_random_start_uses_its_own_generator(name):
    policy = tiny_policy(2, head_gain=1.0)
    x = random_obs(2, batch=8)
    torch.manual_seed(0)
    a = get_attack(name, policy, eps=EPS, seed=3).perturb(x)
    torch.manual_seed(12345)  # the global RNG must not matter
    b = get_attack(name, policy, eps=EPS, seed=3).perturb(x)
    assert torch.equal(a, b)
    gen = torch.Generator().manual_seed(3)
    c = get_attack(name, policy, eps=EPS, generator=gen).perturb(x)
    assert torch.equal(a, c)
    d = get_attack(name, policy, eps=EPS, seed=4).perturb(x)
    assert not torch.equal(a, d)


def test_bad_arguments_raise_digr_error():
    policy = tiny_policy(0)
    x = random_obs(0, batch=2)
    for eps in (-0.01, 1.5, float("nan")):
        with pytest.raises(DigrError, match="eps"):
            get_attack("fgsm", policy, eps=eps)
    with pytest.raises(DigrError, match="takes no setting 'steps'"):
        get_attack("fgsm", policy, eps=0.1, steps=3)
    with pytest.raises(DigrError, match="steps"):
        get_attack("pgd", policy, eps=0.1, steps=0)
    attack = get_attack("pgd", policy, eps=0.1, steps=2)
    with pytest.raises(DigrError, match=r"\[0, 1\]"):
        attack.perturb(x * 2)
    with pytest.raises(DigrError, match="float tensor"):
        attack.perturb(x[0])
    with pytest.raises(DigrError, match="target"):
        attack.perturb(x, target=torch.tensor([0, 1, 2]))


class LinearSoftmaxPolicy(nn.Module):
    """``logits = W vec(obs) + b``: the gradient of ``log p(t)`` is ``W_t - sum_a p_a W_a``."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        d = OBS_SHAPE[0] * OBS_SHAPE[1] * OBS_SHAPE[2]
        # Small weights keep the softmax away from saturation, where W_t - p @ W rounds to ~0.
        self.W = nn.Parameter(0.05 * torch.randn(N_ACTIONS, d, generator=g))
        self.b = nn.Parameter(torch.randn(N_ACTIONS, generator=g))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.flatten(1) @ self.W.T + self.b


@pytest.mark.parametrize("seed", [0, 1])
def test_fgsm_on_linear_softmax_matches_closed_form(seed):
    policy = LinearSoftmaxPolicy(seed)
    # Interior inputs, so no pixel is clipped at 0 or 1 and the step is exactly eps * sign.
    x = 0.3 + 0.4 * torch.rand(6, *OBS_SHAPE, generator=torch.Generator().manual_seed(seed))
    eps = 0.05
    target = torch.tensor([0, 1, 2, 3, 0, 1])
    with torch.no_grad():
        p = torch.softmax(policy(x), -1)  # (B, A)
        W = policy.W  # (A, D)
        grad_logp = W[target] - p @ W  # closed form d log p(target) / d obs, (B, D)
    expected = -eps * torch.sign(grad_logp).view_as(x)
    adv = get_attack("fgsm", policy, eps=eps).perturb(x, target=target)
    torch.testing.assert_close(adv - x, expected, atol=1e-6, rtol=0)
    # Default target = the clean greedy action.
    greedy = p.argmax(-1)
    with torch.no_grad():
        grad_greedy = W[greedy] - p @ W
    adv = get_attack("fgsm", policy, eps=eps).perturb(x)
    torch.testing.assert_close(adv - x, -eps * torch.sign(grad_greedy).view_as(x), atol=1e-6, rtol=0)


def test_pgd_without_random_start_and_one_full_step_is_fgsm():
    # alpha = eps, one step, no random start: exactly FGSM's update.
    policy = LinearSoftmaxPolicy(3)
    x = 0.3 + 0.4 * torch.rand(4, *OBS_SHAPE, generator=torch.Generator().manual_seed(3))
    fgsm = get_attack("fgsm", policy, eps=0.05).perturb(x)
    pgd = get_attack("pgd", policy, eps=0.05, steps=1, alpha=0.05, random_start=False).perturb(x)
    assert torch.equal(fgsm, pgd)


def test_mad_increases_kl_more_than_its_start():
    policy = tiny_policy(4)
    x = random_obs(4, batch=16)
    with torch.no_grad():
        logp = F.log_softmax(policy(x), -1)

    def kl(x_adv):
        with torch.no_grad():
            return (logp.exp() * (logp - F.log_softmax(policy(x_adv), -1))).sum(-1)

    start = get_attack("mad", policy, eps=EPS, steps=1, alpha=1e-9, seed=5).perturb(x)
    full = get_attack("mad", policy, eps=EPS, seed=5).perturb(x)
    assert (kl(full) > kl(start)).all()


def test_mad_antithetic_restart_never_lowers_the_kl():
    # With the same seed, restarts=2 runs restarts=1's start plus its mirror image and keeps
    # the larger KL per sample, so it is never worse; on a confident net it is often better.
    policy = tiny_policy(6)
    x = random_obs(6, batch=32)
    with torch.no_grad():
        logp = F.log_softmax(policy(x), -1)

    def kl(x_adv):
        with torch.no_grad():
            return (logp.exp() * (logp - F.log_softmax(policy(x_adv), -1))).sum(-1)

    one = kl(get_attack("mad", policy, eps=EPS, seed=9, restarts=1).perturb(x))
    two = kl(get_attack("mad", policy, eps=EPS, seed=9, restarts=2).perturb(x))
    assert (two >= one).all()
    assert (two > one * 1.5).any()


def test_mad_skips_the_target_forward_but_still_checks_a_given_target():
    # MAD ignores the target, so perturb() runs no forward pass to find the greedy action:
    # one clean forward, one per ascent step, one to pick the restart (3 with steps=1).
    policy = tiny_policy(7)
    x = random_obs(7, batch=4)
    calls = []
    handle = policy.register_forward_hook(lambda *_: calls.append(1))
    try:
        plain = get_attack("mad", policy, eps=EPS, steps=1, seed=2).perturb(x)
        assert len(calls) == 3
        given = get_attack("mad", policy, eps=EPS, steps=1, seed=2).perturb(x, target=0)
    finally:
        handle.remove()
    assert torch.equal(plain, given)  # the target changes nothing
    with pytest.raises(DigrError, match="target"):
        get_attack("mad", policy, eps=EPS, steps=1).perturb(x, target=torch.zeros(3, dtype=torch.long))
