"""Input blur (``PolicyConfig.input_blur``): a fixed Gaussian low-pass in front of the network."""

import pytest
import torch

from digr.errors import DigrError
from digr.models import PolicyConfig, PolicyNet, load_policy, save_policy
from digr.models.cnn import gaussian_matrix
from digr.saliency.perturbation import perturbation_saliency
from digr.saliency.vanilla import input_gradient

CFG = PolicyConfig(obs_shape=(2, 24, 24), n_actions=3, convs=((4, 4, 2, 0), (4, 3, 1, 0)), hidden=8)


def test_gaussian_matrix_rows_sum_to_one_and_match_the_1d_gaussian():
    g = gaussian_matrix(30, 2.0)
    assert torch.allclose(g.sum(1), torch.ones(30))
    # an interior row is the sampled Gaussian, normalised (its tails are negligible here)
    i = torch.arange(30.0)
    ref = torch.exp(-0.5 * ((i - 15) / 2.0) ** 2)
    assert torch.allclose(g[15], ref / ref.sum(), atol=1e-6)


def test_blur_has_no_weights_and_loads_the_unblurred_networks_state():
    torch.manual_seed(0)
    base = PolicyNet(CFG)
    blurred = PolicyNet(PolicyConfig(**{**CFG.__dict__, "input_blur": 1.5}))
    assert blurred.state_dict().keys() == base.state_dict().keys()
    blurred.load_state_dict(base.state_dict(), strict=True)
    x = torch.rand(3, 2, 24, 24)
    # the blurred network is the base network applied to the blurred frame
    xb = gaussian_matrix(24, 1.5) @ x @ gaussian_matrix(24, 1.5).T
    assert torch.allclose(blurred(x), base(xb), atol=1e-5)


def test_input_gradient_is_the_blur_of_the_inner_gradient():
    """G is symmetric per axis only up to the border renormalisation: d/dx f(G_h x G_w^T) =
    G_h^T g G_w, with g the inner network's gradient at the blurred frame."""
    torch.manual_seed(1)
    base = PolicyNet(CFG)
    cfg = PolicyConfig(**{**CFG.__dict__, "input_blur": 2.0})
    blurred = PolicyNet(cfg)
    blurred.load_state_dict(base.state_dict())
    x = torch.rand(2, 2, 24, 24)
    gh = gaussian_matrix(24, 2.0)
    inner = input_gradient(base, gh @ x @ gh.T)
    assert torch.allclose(input_gradient(blurred, x), gh.T @ inner @ gh, atol=1e-6)


def test_checkpoint_round_trip_and_config_dict(tmp_path):
    cfg = PolicyConfig(**{**CFG.__dict__, "input_blur": 2.5})
    net = PolicyNet(cfg)
    save_policy(net, tmp_path / "p", task="unit")
    back = load_policy(tmp_path / "p")
    assert back.config.input_blur == 2.5
    assert "input_blur" not in CFG.to_dict()  # old checkpoints' dicts are unchanged


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), 1000.0])
def test_bad_blur_is_refused(bad):
    with pytest.raises(DigrError, match="input_blur"):
        PolicyConfig(**{**CFG.__dict__, "input_blur": bad}).validate()


def test_perturbation_maps_of_a_blurred_network_skip_the_incremental_engine():
    torch.manual_seed(2)
    net = PolicyNet(PolicyConfig(**{**CFG.__dict__, "input_blur": 1.0})).eval()
    x = torch.rand(2, 2, 24, 24)
    auto = perturbation_saliency(net, x, radius=3)
    batched = perturbation_saliency(net, x, radius=3, engine="batched")
    assert torch.allclose(auto, batched, atol=1e-5)
