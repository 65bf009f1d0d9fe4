"""Analytic checks of guided backprop, Grad-CAM, integrated gradients and SmoothGrad."""

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from digr.saliency import get_method
from digr.saliency.gradcam import gradcam
from digr.saliency.guided_backprop import guided_gradient
from digr.saliency.integrated_gradients import integrated_gradients
from digr.saliency.smoothgrad import smoothgrad, smoothgrad_noise


def _obs(b, shape, seed=0, dtype=torch.float32):
    return torch.rand(b, *shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class TwoReLUNet(nn.Module):
    """x -> nn.ReLU(W1 x + b1) -> torch.relu(W2 h + b2) -> W3 h: one module ReLU, one functional."""

    def __init__(self, n_in=12, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.config = SimpleNamespace(obs_shape=(3, 2, 2), n_actions=3)
        self.l1, self.act = nn.Linear(n_in, 10), nn.ReLU()
        self.l2, self.l3 = nn.Linear(10, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.l3(torch.relu(self.l2(self.act(self.l1(x.flatten(1))))))


def test_guided_backprop_matches_hand_rule():
    net = TwoReLUNet()
    x = _obs(4, (3, 2, 2), seed=1)
    target = torch.tensor([0, 1, 2, 1])
    got = guided_gradient(net, x, target)
    with torch.no_grad():
        a1 = net.l1(x.flatten(1))
        a2 = net.l2(a1.relu())
        g = net.l3.weight[target]                              # d logit_t / d h2
        g = g.clamp_min(0) * (a2 > 0)                          # guided ReLU 2
        g = g @ net.l2.weight
        g = g.clamp_min(0) * (a1 > 0)                          # guided ReLU 1
        expected = (g @ net.l1.weight).view(4, 3, 2, 2)
    torch.testing.assert_close(got, expected)
    plain = torch.autograd.grad(net(x.requires_grad_()).gather(1, target[:, None]).sum(), x)[0]
    assert not torch.allclose(plain, expected)  # the rule really changed something
    # the mode does not leak: ordinary backprop afterwards is plain again
    again = torch.autograd.grad(net(x).gather(1, target[:, None]).sum(), x)[0]
    torch.testing.assert_close(again, plain)


class PooledConvNet(nn.Module):
    """logit_a = sum_{k,h,w} V[a, k] * A_k[h, w] with A = last_conv(x): Grad-CAM in closed form."""

    def __init__(self, stride=1, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.config = SimpleNamespace(obs_shape=(2, 8, 8), n_actions=3)
        self.last_conv = nn.Conv2d(2, 4, 3, stride=stride, padding=1)
        self.V = nn.Parameter(torch.randn(3, 4))

    def forward(self, x):
        return self.last_conv(x).sum((2, 3)) @ self.V.T


def test_gradcam_closed_form():
    net = PooledConvNet()
    x = _obs(3, (2, 8, 8), seed=2)
    target = torch.tensor([2, 0, 1])
    with torch.no_grad():
        act = net.last_conv(x)  # (3, 4, 8, 8); d logit_t / dA_k = V[t, k] everywhere
        expected = (net.V[target][:, :, None, None] * act).sum(1).clamp_min(0)
    torch.testing.assert_close(gradcam(net, x, target), expected)
    maps = get_method("gradcam", net).attribute(x, target=target)
    torch.testing.assert_close(maps, expected / expected.flatten(1).amax(1).clamp_min(1e-30)[:, None, None])


def test_gradcam_upsamples_coarse_layer_to_input():
    net = PooledConvNet(stride=2)
    x = _obs(2, (2, 8, 8), seed=3)
    target = torch.tensor([1, 1])
    with torch.no_grad():
        act = net.last_conv(x)  # (2, 4, 4, 4)
        coarse = (net.V[target][:, :, None, None] * act).sum(1, keepdim=True).clamp_min(0)
    expected = F.interpolate(coarse, size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(gradcam(net, x, target), expected)


def test_integrated_gradients_of_linear_logit_is_input_times_weight():
    net = nn.Linear(12, 3).double()
    net.config = SimpleNamespace(obs_shape=(3, 2, 2), n_actions=3)
    model = nn.Sequential(nn.Flatten(), net)
    model.config = net.config
    x = _obs(2, (3, 2, 2), seed=4, dtype=torch.float64)
    target = torch.tensor([1, 2])
    got = integrated_gradients(model, x, target, steps=7)
    torch.testing.assert_close(got, x * net.weight.detach()[target].view(2, 3, 2, 2))


def test_integrated_gradients_completeness(tiny_policy):
    policy = tiny_policy.double()
    with torch.no_grad():  # larger weights so logit gaps are O(1), not O(1e-3) as at init
        for p in policy.parameters():
            p.mul_(3.0)
    x = _obs(3, (3, 16, 16), seed=5, dtype=torch.float64)
    target = torch.tensor([0, 3, 1])
    with torch.no_grad():
        gap = (policy(x) - policy(torch.zeros_like(x))).gather(1, target[:, None])[:, 0]
    assert float(gap.abs().min()) > 0.1
    # sum_i IG_i = F(s) - F(0) up to the midpoint rule's error, O(1/steps) across ReLU kinks
    for steps, rtol in ((50, 0.05), (5000, 3e-3)):
        attr = integrated_gradients(policy, x, target, steps=steps, batch_size=1000)
        torch.testing.assert_close(attr.sum((1, 2, 3)), gap, rtol=rtol, atol=0.0)


def test_smoothgrad_is_mean_of_guided_backprop_over_seeded_noise(tiny_policy):
    x = _obs(2, (3, 16, 16), seed=6)
    target = torch.tensor([1, 0])
    noise = smoothgrad_noise((3, 16, 16), samples=5, sigma=0.15, seed=11)
    expected = torch.stack([guided_gradient(tiny_policy, x + n, target) for n in noise]).mean(0)
    got = smoothgrad(tiny_policy, x, target, samples=5, sigma=0.15, seed=11, batch_size=3)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    # sigma 0: plain guided backprop
    torch.testing.assert_close(smoothgrad(tiny_policy, x, target, sigma=0.0, samples=3),
                               guided_gradient(tiny_policy, x, target), atol=1e-6, rtol=1e-5)
    # the seed matters and nothing else does
    other = smoothgrad(tiny_policy, x, target, samples=5, sigma=0.15, seed=12)
    assert not torch.allclose(other, got)
    assert abs(float(noise.std()) - 0.15) < 0.02
