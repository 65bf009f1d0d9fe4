"""The policy network's computed sizes."""

import pytest
import torch

from digr.models import PolicyConfig, PolicyNet


@pytest.mark.parametrize("pool", ["flatten", "max", "sum"])
@pytest.mark.parametrize("obs_shape,convs,input_pool", [
    ((3, 64, 64), ((16, 8, 8, 0), (32, 5, 1, 2), (32, 7, 1, 3)), 1),
    ((2, 84, 84), ((32, 8, 4, 0), (64, 4, 2, 0), (64, 3, 1, 0)), 1),
    ((1, 37, 29), ((4, 5, 3, 1), (6, 3, 2, 0)), 1),
    ((3, 64, 64), ((4, 4, 2, 1),), 4),
])
def test_feature_shape_is_what_the_network_computes(pool, obs_shape, convs, input_pool):
    cfg = PolicyConfig(obs_shape=obs_shape, n_actions=3, convs=convs, hidden=8, pool=pool, input_pool=input_pool)
    net = PolicyNet(cfg)
    feats = net.trunk.features(torch.zeros(2, *obs_shape))
    assert tuple(feats.shape[1:]) == cfg.feature_shape()
    assert net(torch.zeros(2, *obs_shape)).shape == (2, 3)
