"""Smooth-unit networks (``PolicyConfig.softplus_beta``): every ReLU becomes softplus(beta z) / beta."""

import pytest
import torch
import torch.nn.functional as F

from digr.errors import DigrError
from digr.models import PolicyConfig, PolicyNet, load_policy, save_policy
from digr.models.activation import activate, activation_slope
from digr.saliency.guided_backprop import guided_gradient
from digr.saliency.perturbation import perturbation_saliency
from digr.saliency.vanilla import input_gradient

CFG = PolicyConfig(obs_shape=(2, 24, 24), n_actions=3, convs=((4, 4, 2, 0), (4, 3, 1, 0)), hidden=8)


def _smooth(beta: float) -> PolicyConfig:
    return PolicyConfig(**{**CFG.__dict__, "softplus_beta": beta}).validate()


def test_same_weights_and_relu_as_beta_grows():
    torch.manual_seed(0)
    base = PolicyNet(CFG)
    smooth = PolicyNet(_smooth(1e5))
    assert smooth.state_dict().keys() == base.state_dict().keys()
    smooth.load_state_dict(base.state_dict(), strict=True)
    x = torch.rand(3, 2, 24, 24)
    # softplus(beta z) / beta exceeds relu(z) by at most ln 2 / beta per unit
    assert torch.allclose(smooth(x), base(x), atol=1e-3)
    soft = PolicyNet(_smooth(1.0))
    soft.load_state_dict(base.state_dict())
    assert not torch.allclose(soft(x), base(x), atol=1e-3)


def test_forward_is_the_softplus_network_written_out():
    torch.manual_seed(1)
    net = PolicyNet(_smooth(4.0))
    x = torch.rand(2, 2, 24, 24)
    h = x
    for conv in [m for m in net.trunk.convs if isinstance(m, torch.nn.Conv2d)]:
        h = F.softplus(conv(h), beta=4.0)
    ref = net.pi(F.softplus(net.trunk.linear(h.flatten(1)), beta=4.0))
    assert torch.allclose(net(x), ref, atol=1e-6)


def test_slope_is_the_derivative_of_the_activation():
    z = torch.linspace(-3, 3, 61, dtype=torch.float64, requires_grad=True)
    for beta in (0.0, 2.0, 50.0):
        (d,) = torch.autograd.grad(activate(z, beta).sum(), z)
        torch.testing.assert_close(activation_slope(z.detach(), beta), d)


def test_double_backward_reaches_the_activation_boundaries():
    """The reason for the option: a loss on the input gradient has a gradient through the units'
    curvature. A logit's input gradient in a ReLU network, ``W1^T D1 W2^T D2 ...``, depends on
    the first layer's bias only through the 0/1 pattern ``D1``, so the loss is flat in that bias;
    with softplus units it is not."""
    torch.manual_seed(2)
    x = torch.rand(2, 2, 24, 24)
    grads = {}
    for beta in (0.0, 5.0):
        net = PolicyNet(_smooth(beta) if beta else CFG)
        torch.manual_seed(3)
        net.load_state_dict(PolicyNet(CFG).state_dict())
        g = input_gradient(net, x, mode="logit", target=torch.tensor([0, 1]), create_graph=True)
        (db,) = torch.autograd.grad(g.abs().sum(), net.trunk.convs[0].bias)
        grads[beta] = db
    # The first layer's bias enters the input gradient only through the units' slopes.
    assert torch.count_nonzero(grads[0.0]) == 0
    assert torch.count_nonzero(grads[5.0]) > 0


def test_checkpoint_round_trip_and_relu_dicts_unchanged(tmp_path):
    net = PolicyNet(_smooth(50.0))
    save_policy(net, tmp_path / "p", task="unit")
    back = load_policy(tmp_path / "p")
    assert back.config.softplus_beta == 50.0
    x = torch.rand(2, 2, 24, 24)
    assert torch.equal(back(x), net(x))
    assert "softplus_beta" not in CFG.to_dict()  # old checkpoints' dicts are unchanged


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), 1e7])
def test_bad_beta_is_refused(bad):
    with pytest.raises(DigrError, match="softplus_beta"):
        _smooth(bad)


def test_guided_backprop_uses_the_slope_in_place_of_the_mask():
    """Guided rule through a softplus unit: drop negative upstream gradient, multiply by the slope;
    checked against the backward pass written out by hand."""
    torch.manual_seed(4)
    net = PolicyNet(_smooth(3.0))
    x = torch.rand(2, 2, 24, 24)
    target = torch.tensor([0, 2])
    got = guided_gradient(net, x, target)
    # by hand: backward through linear layers and transposed convs with the guided factors
    convs = [m for m in net.trunk.convs if isinstance(m, torch.nn.Conv2d)]
    pre, h = [], x
    for conv in convs:
        z = conv(h)
        pre.append(z)
        h = F.softplus(z, beta=3.0)
    a = net.trunk.linear(h.flatten(1))
    g = net.pi.weight[target]
    g = g.clamp_min(0) * torch.sigmoid(3.0 * a)
    g = (g @ net.trunk.linear.weight).reshape(h.shape)
    for conv, z, size in zip(reversed(convs), reversed(pre), [pre[0].shape[-2:], x.shape[-2:]]):
        g = g.clamp_min(0) * torch.sigmoid(3.0 * z)
        g = torch.nn.grad.conv2d_input((g.shape[0], conv.in_channels, *size), conv.weight, g, stride=conv.stride)
    torch.testing.assert_close(got, g.detach(), rtol=0, atol=1e-5)


def test_perturbation_maps_of_a_softplus_network_skip_the_incremental_engine():
    torch.manual_seed(5)
    net = PolicyNet(_smooth(10.0)).eval()
    x = torch.rand(2, 2, 24, 24)
    auto = perturbation_saliency(net, x, radius=3)
    batched = perturbation_saliency(net, x, radius=3, engine="batched")
    assert torch.allclose(auto, batched, atol=1e-5)


def test_smooth_surrogate_is_the_same_weights_with_smooth_units():
    from digr.models.cnn import smooth_surrogate

    torch.manual_seed(7)
    base = PolicyNet(CFG).eval()
    twin = smooth_surrogate(base, 1e4)
    assert twin is not base and twin.config.softplus_beta == 1e4 and base.config.softplus_beta == 0
    assert all(torch.equal(a, b) for a, b in zip(base.state_dict().values(), twin.state_dict().values()))
    x = torch.rand(2, 2, 24, 24)
    assert torch.allclose(twin(x), base(x), atol=1e-2)  # a few ln 2 / beta per layer
    assert smooth_surrogate(base, 0) is base  # 0: the policy's own gradient
    smooth = PolicyNet(_smooth(5.0))
    assert smooth_surrogate(smooth, 50.0) is smooth  # a smooth policy is its own twin


def test_a_masked_relu_gradient_is_seen_through_its_twin():
    """A ReLU unit dead at the clean state but alive within eps: the policy's own gradient is zero
    (FGSM leaves the state as it is), its twin's is not, and the step it gives flips the ReLU
    policy's action. This is the gradient masking ``surrogate_softplus`` exists for."""
    from digr.attacks import get_attack
    from digr.models.cnn import smooth_surrogate

    net = PolicyNet(PolicyConfig(obs_shape=(1, 8, 8), n_actions=2, convs=((1, 8, 8, 0),), hidden=1)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.trunk.convs[0].weight.fill_(1 / 64)  # z = mean(x) - 0.51: -0.01 at x = 0.5
        net.trunk.convs[0].bias.fill_(-0.51)
        net.trunk.linear.weight.fill_(1.0)
        net.pi.weight.copy_(torch.tensor([[0.0], [10.0]]))
        net.pi.bias.copy_(torch.tensor([1e-3, 0.0]))  # action 0 while the unit is dead
    x = torch.full((1, 1, 8, 8), 0.5)
    assert net(x).argmax(-1).item() == 0
    own = get_attack("fgsm", net, eps=8 / 255).perturb(x, target=0)
    assert torch.equal(own, x) and net(own).argmax(-1).item() == 0  # masked: no step at all
    through_twin = get_attack("fgsm", smooth_surrogate(net, 50.0), eps=8 / 255).perturb(x, target=0)
    assert torch.allclose(through_twin, x + 8 / 255)
    assert net(through_twin).argmax(-1).item() == 1


def test_the_fls_module_hidden_unit_is_smooth_too():
    """The smooth twin of an FLS policy has no ReLU left: its attention module's hidden layer
    follows ``softplus_beta`` like the trunk; a ReLU FLS policy's attention is unchanged."""
    from digr.models.cnn import smooth_surrogate
    from digr.models.fls import fls_config

    torch.manual_seed(5)
    base = PolicyNet(fls_config(CFG, "sparse", attention_channels=6))
    feats = torch.randn(3, 4, 9, 9)
    att = base.trunk.attention
    relu_ref = F.softplus(att.score(torch.relu(att.hidden(feats))))
    torch.testing.assert_close(att(feats), relu_ref)
    twin = smooth_surrogate(base, 5.0)
    t_att = twin.trunk.attention
    smooth_ref = F.softplus(t_att.score(F.softplus(t_att.hidden(feats), beta=5.0)))
    torch.testing.assert_close(t_att(feats), smooth_ref)
    assert not torch.allclose(t_att(feats), relu_ref, atol=1e-3)
    # the whole twin is the ReLU network's function as beta grows (every unit, the module's too)
    x = torch.rand(2, 2, 24, 24)
    torch.testing.assert_close(smooth_surrogate(base, 1e5)(x), base(x), atol=1e-3, rtol=0)
