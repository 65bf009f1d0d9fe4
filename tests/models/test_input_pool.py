"""Input pooling (``PolicyConfig.input_pool``) and the pooled student architecture."""

import pytest
import torch

from digr.errors import DigrError
from digr.models import PolicyConfig, PolicyNet, load_policy, save_policy
from digr.models.cnn import pooled_student_config
from digr.saliency import get_method

RFG = PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((8, 8, 8, 0), (8, 5, 1, 2)), hidden=16, pool="max")


def test_pooled_config_keeps_every_later_layer():
    cfg = pooled_student_config(RFG, 4)
    assert cfg.input_pool == 4 and cfg.convs == ((8, 2, 2, 0), (8, 5, 1, 2))
    assert pooled_student_config(RFG, 1) is RFG
    torch.manual_seed(0)
    a, b = PolicyNet(RFG), PolicyNet(cfg)
    x = torch.rand(2, 3, 64, 64)
    assert a.trunk.convs(x).shape == b.trunk.convs(x).shape == (2, 8, 8, 8)
    assert b(x).shape == (2, 4)


def test_pooled_network_is_the_base_network_on_block_means():
    """A pooled net with the base's first-conv weights averaged per block computes the base net
    on the block-mean image: the pooling is exactly "see the frame at 1/k resolution"."""
    torch.manual_seed(1)
    base, pooled = PolicyNet(RFG), PolicyNet(pooled_student_config(RFG, 4))
    sd = dict(base.state_dict())
    w = sd["trunk.convs.0.weight"]  # (8, 3, 8, 8) -> sum over each 4x4 block of kernel pixels
    sd_p = {k.replace("trunk.convs.", "trunk.convs.X"): v for k, v in sd.items()}
    new = {}
    for k, v in sd_p.items():
        if k.startswith("trunk.convs.X"):
            i = int(k.split(".")[2][1:])
            k = f"trunk.convs.{i + 1}.{k.split('.')[-1]}"  # the pool shifts the conv indices by one
            if k == "trunk.convs.1.weight":
                v = w.reshape(8, 3, 2, 4, 2, 4).sum((3, 5))
        new[k] = v
    pooled.load_state_dict(new)
    x = torch.rand(3, 3, 64, 64)
    blocky = torch.nn.functional.avg_pool2d(x, 4).repeat_interleave(4, 2).repeat_interleave(4, 3)
    torch.testing.assert_close(pooled(x), base(blocky), atol=1e-5, rtol=1e-5)


def test_vanilla_gradient_of_a_pooled_net_is_constant_on_blocks():
    torch.manual_seed(2)
    net = PolicyNet(pooled_student_config(RFG, 4))
    maps = get_method("vanilla", net).attribute(torch.rand(2, 3, 64, 64))
    blocks = maps.reshape(2, 16, 4, 16, 4)
    assert torch.allclose(blocks, blocks[:, :, :1, :, :1].expand_as(blocks), atol=1e-6)
    assert maps.amax() == pytest.approx(1.0)


def test_checkpoint_round_trip_and_old_configs(tmp_path):
    cfg = pooled_student_config(RFG, 2)
    assert cfg.to_dict()["input_pool"] == 2 and "input_pool" not in RFG.to_dict()
    assert PolicyConfig.from_dict(cfg.to_dict()) == cfg and PolicyConfig.from_dict(RFG.to_dict()) == RFG
    torch.manual_seed(3)
    net = PolicyNet(cfg)
    save_policy(net, tmp_path / "p", task="red-fetch-green")
    back = load_policy(tmp_path / "p")
    x = torch.rand(1, 3, 64, 64)
    assert back.config == cfg and torch.equal(back(x), net(x))


@pytest.mark.parametrize("pool,match", [(3, "divide"), (0, "positive"), (2.5, "positive")])
def test_bad_pools_are_refused(pool, match):
    with pytest.raises(DigrError, match=match):
        pooled_student_config(RFG, pool)


def test_input_pool_must_divide_the_frame():
    with pytest.raises(DigrError, match="input_pool"):
        PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((8, 2, 2, 0),), hidden=8, input_pool=3).validate()


@pytest.mark.parametrize("k", [2, 4])
def test_pooled_state_dict_is_the_base_net_on_block_means(k):
    from digr.models.cnn import pooled_state_dict

    torch.manual_seed(4)
    base = PolicyNet(RFG)
    pooled = PolicyNet(pooled_student_config(RFG, k))
    pooled.load_state_dict(pooled_state_dict(base, k), strict=True)
    x = torch.rand(3, 3, 64, 64)
    blocky = torch.nn.functional.avg_pool2d(x, k).repeat_interleave(k, 2).repeat_interleave(k, 3)
    torch.testing.assert_close(pooled(x), base(blocky), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled.value(x), base.value(blocky), atol=1e-5, rtol=1e-5)
    # The fold copies: training the pooled net leaves the base untouched.
    sd = pooled_state_dict(base, 1)
    assert set(sd) == set(base.state_dict()) and sd["pi.weight"].data_ptr() != base.pi.weight.data_ptr()
