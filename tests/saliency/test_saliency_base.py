"""Shared pieces: normalisation, targets, and the space-to-depth first-conv rewrite."""

import pytest
import torch
import torch.nn.functional as F

from digr.errors import DigrError
from digr.saliency.base import FastInputConv, normalize_maps, resolve_target, space_to_depth_conv2d


def test_normalize_divides_by_each_max_and_keeps_zero_maps():
    maps = torch.tensor([[[0.0, 2.0], [1.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
    out = normalize_maps(maps)
    torch.testing.assert_close(out[0], maps[0] / 4)
    assert torch.equal(out[1], maps[1])
    # differentiable without NaN, even through an all-zero map
    m = maps.clone().requires_grad_(True)
    normalize_maps(m).sum().backward()
    assert bool(torch.isfinite(m.grad).all())


def test_resolve_target(tiny_policy):
    obs = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(resolve_target(tiny_policy, obs, None), tiny_policy(obs).argmax(-1))
    assert resolve_target(tiny_policy, obs, 2).tolist() == [2, 2, 2]
    assert resolve_target(tiny_policy, obs, [0, 1, 3]).tolist() == [0, 1, 3]
    with pytest.raises(DigrError, match=r"\[0, 4\)"):
        resolve_target(tiny_policy, obs, [0, 1, 4])


@pytest.mark.parametrize("c,o,k,s,p,h,w", [
    (2, 5, 8, 4, 0, 84, 84), (3, 4, 8, 8, 0, 64, 64), (1, 3, 8, 4, 0, 37, 41), (3, 4, 4, 2, 1, 11, 10),
    (2, 3, (4, 2), (2, 1), 0, 9, 9), (1, 2, 4, 4, 0, 10, 9)])
def test_space_to_depth_conv_equals_conv2d(c, o, k, s, p, h, w):
    g = torch.Generator().manual_seed(1)
    kh, kw = (k, k) if isinstance(k, int) else k
    x = torch.rand(2, c, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(o, c, kh, kw, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(o, generator=g, dtype=torch.float64)
    ref = F.conv2d(x, weight, bias, stride=s, padding=p)
    got = space_to_depth_conv2d(x, weight, bias, stride=s, padding=p)
    torch.testing.assert_close(got, ref)
    # input gradients and their derivative w.r.t. the weights (the DIGR loss double-backprops)
    # are those of the conv
    def second_order(conv):
        (gx,) = torch.autograd.grad(conv(x).pow(2).sum(), x, create_graph=True)
        return gx, torch.autograd.grad(gx.pow(2).sum(), weight)[0]

    for a, b in zip(second_order(lambda x: space_to_depth_conv2d(x, weight, bias, stride=s, padding=p)),
                    second_order(lambda x: F.conv2d(x, weight, bias, stride=s, padding=p))):
        torch.testing.assert_close(a, b)


def test_space_to_depth_declines_what_it_cannot_do():
    x, w = torch.rand(1, 2, 9, 9), torch.rand(3, 2, 3, 3)
    assert space_to_depth_conv2d(x, w, stride=1) is None
    assert space_to_depth_conv2d(x, w, stride=2) is None  # 3 % 2 != 0
    assert space_to_depth_conv2d(x, torch.rand(2, 1, 4, 4), stride=2, groups=2) is None


def test_fast_input_conv_only_touches_the_input_layer(tiny_policy):
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2), requires_grad=True)
    calls = []
    orig = space_to_depth_conv2d

    import digr.saliency.base as base

    def spy(*a, **k):
        calls.append(a[0] is x)
        return orig(*a, **k)

    base.space_to_depth_conv2d, saved = spy, base.space_to_depth_conv2d
    try:
        with FastInputConv(x):
            out = tiny_policy(x)
    finally:
        base.space_to_depth_conv2d = saved
    assert calls == [True]
    torch.testing.assert_close(out, tiny_policy(x))
