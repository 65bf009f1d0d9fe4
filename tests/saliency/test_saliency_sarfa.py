"""SARFA (Puri et al. 2020) against a hand-computed example."""

import math
from types import SimpleNamespace

import torch
from torch import nn

from digr.saliency import get_method
from digr.saliency.perturbation import gaussian_blur
from digr.saliency.sarfa import sarfa_saliency, sarfa_score


def softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def hand_sarfa(q, q2, t):
    """Puri et al.: dP on the target, K = 1/(1+KL) on the renormalised other actions."""
    d_p = softmax(q)[t] - softmax(q2)[t]
    if d_p <= 0:
        return 0.0
    rem = [v for i, v in enumerate(q) if i != t]
    rem2 = [v for i, v in enumerate(q2) if i != t]
    p, p2 = softmax(rem), softmax(rem2)
    kl = sum(a * math.log(a / b) for a, b in zip(p, p2))
    k = 1 / (1 + kl)
    return 2 * d_p * k / (d_p + k)


def test_score_matches_hand_computation():
    q = [2.0, 1.0, 0.0, -0.5]
    q2 = [1.0, 1.2, 0.5, -0.5]
    # by hand: pi(0|s) = 0.63080, pi(0|s') = 0.32775 -> dP = 0.30304;
    # p_rem(s) = (0.62853, 0.23122, 0.14024), p_rem(s') = (0.59550, 0.29572, 0.10879)
    # -> KL = 0.012671, K = 0.98749 -> S = 2 dP K / (dP + K) = 0.46376
    expected = hand_sarfa(q, q2, 0)
    assert abs(expected - 0.46376) < 2e-5
    got = sarfa_score(torch.tensor([q]), torch.tensor([q2]), torch.tensor([0]))
    assert abs(float(got) - expected) < 1e-6
    # target gained probability: not specific -> 0; untouched state -> 0
    assert float(sarfa_score(torch.tensor([q]), torch.tensor([q2]), torch.tensor([1]))) == 0.0
    assert float(sarfa_score(torch.tensor([q]), torch.tensor([q]), torch.tensor([0]))) == 0.0
    # two actions: p_rem is one point, K = 1, S = 2 dP / (dP + 1)
    d_p = softmax([1.0, 0.0])[0] - softmax([0.0, 0.0])[0]
    got2 = sarfa_score(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([0]))
    assert abs(float(got2) - 2 * d_p / (d_p + 1)) < 1e-6


class RegionPolicy(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.config = SimpleNamespace(obs_shape=(1, 12, 12), n_actions=4)
        self.W = nn.Parameter(torch.randn(4, 16) * 3)

    def forward(self, obs):
        return obs[:, :, 2:6, 6:10].flatten(1) @ self.W.T


def test_map_matches_hand_computation_at_each_location():
    policy = RegionPolicy()
    obs = torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([2])
    raw = sarfa_saliency(policy, obs, target, radius=2.0, stride=1, batch_size=37)
    blurred = gaussian_blur(obs, 3.0)
    yy, xx = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    q = policy(obs)[0].tolist()
    for (i, j) in ((0, 0), (3, 7), (5, 11), (11, 4)):
        m = torch.exp(-((yy - i) ** 2 + (xx - j) ** 2) / 8.0)
        q2 = policy(obs * (1 - m) + blurred * m)[0].tolist()
        assert abs(float(raw[0, i, j]) - hand_sarfa(q, q2, 2)) < 1e-5
    maps = get_method("sarfa", policy, radius=2.0).attribute(obs, target=target)
    torch.testing.assert_close(maps, raw / raw.max())
