"""The ``fls`` method: un-pooling checked against windows painted by hand, one partial forward pass."""

import pytest
import torch
import torch.nn.functional as F

from digr.envs import get_task
from digr.errors import DigrError
from digr.models import PolicyConfig, PolicyNet, conv_geometry, fls_config
from digr.saliency import get_method
from digr.saliency.base import normalize_maps
from digr.saliency.fls import unpool_attention


def _paint(att, convs, size, *, mode):
    """Reference un-pooling by loops: add each cell's attention to the pixels of its window.

    ``receptive_field``: cell i covers input pixels [i*S - P, i*S - P + R) (per axis);
    ``stride``: the S pixels centred on that window, [i*S - P + (R - S)//2, ... + S).
    """
    geo = conv_geometry(convs)
    r, s, p = geo.receptive_field, geo.stride, geo.padding
    start, width = (-p, r) if mode == "receptive_field" else (-p + (r - s) // 2, s)
    b, _, h, w = att.shape
    out = torch.zeros(b, *size, dtype=att.dtype)
    for i in range(h):
        for j in range(w):
            y0, x0 = i * s + start, j * s + start
            ys = slice(max(y0, 0), max(min(y0 + width, size[0]), 0))
            xs = slice(max(x0, 0), max(min(x0 + width, size[1]), 0))
            out[:, ys, xs] += att[:, 0, i, j, None, None]
    return out


GEOMETRIES = {
    "nature 84": (get_task("breakout").convs, (84, 84)),
    "rfg 64": (get_task("red-fetch-green").convs, (64, 64)),
    "dense 13": (((8, 7, 1, 3), (8, 5, 1, 2), (8, 3, 1, 1)), (9, 11)),
    "padded stride 2": (((4, 4, 2, 1), (4, 3, 1, 0)), (12, 10)),
}


def _cells(convs, size):
    h, w = size
    for _, k, s, p in convs:
        h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    return h, w


@pytest.mark.parametrize("mode", ["receptive_field", "stride"])
@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_unpool_matches_painted_windows(geometry, mode):
    convs, size = GEOMETRIES[geometry]
    gen = torch.Generator().manual_seed(0)
    att = torch.rand(2, 1, *_cells(convs, size), generator=gen, dtype=torch.float64)
    got = unpool_attention(att, convs, size, unpool=mode)
    assert got.shape == (2, *size)
    torch.testing.assert_close(got, _paint(att, convs, size, mode=mode))


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_equals_the_papers_transposed_convolution(geometry):
    """The FLS paper's un-pooling, literally: conv_transpose2d with an all-ones R x R kernel at
    stride S; output index t is input pixel t - P, cropped (zero-filled) to (H, W)."""
    convs, (H, W) = GEOMETRIES[geometry]
    geo = conv_geometry(convs)
    gen = torch.Generator().manual_seed(1)
    att = torch.rand(2, 1, *_cells(convs, (H, W)), generator=gen, dtype=torch.float64)
    r = geo.receptive_field
    up = F.conv_transpose2d(att, torch.ones(1, 1, r, r, dtype=torch.float64), stride=geo.stride)
    p = geo.padding
    literal = F.pad(up, (-p, W + p - up.shape[-1], -p, H + p - up.shape[-2]))[:, 0]  # negative pad crops
    torch.testing.assert_close(unpool_attention(att, convs, (H, W)), literal)


def test_rfg_one_hot_cell():
    """Red-Fetch-Green: one attended cell lights its own 8x8 tile with 'stride', and its whole
    88-px window (clipped to the image) with the paper's un-pooling."""
    convs = get_task("red-fetch-green").convs
    att = torch.zeros(1, 1, 8, 8)
    att[0, 0, 2, 5] = 1.0
    tile = unpool_attention(att, convs, (64, 64), unpool="stride")[0]
    expected = torch.zeros(64, 64)
    expected[16:24, 40:48] = 1
    torch.testing.assert_close(tile, expected)
    # cell (2, 5) reads rows [2*8 - 40, +88) = [-24, 64) and columns [0, 88): the whole image
    torch.testing.assert_close(unpool_attention(att, convs, (64, 64))[0], torch.ones(64, 64))
    corner = torch.zeros(1, 1, 8, 8)
    corner[0, 0, 0, 0] = 1.0  # rows and columns [-40, 48)
    expected = torch.zeros(64, 64)
    expected[:48, :48] = 1
    torch.testing.assert_close(unpool_attention(corner, convs, (64, 64))[0], expected)


def _fls_policy(config, variant="sparse-sum", seed=0):
    torch.manual_seed(seed)
    return PolicyNet(fls_config(config, variant)).eval()


@pytest.mark.parametrize("variant", ["sparse", "sparse-sum", "dense"])
@pytest.mark.parametrize("mode", ["receptive_field", "stride"])
def test_attribute_is_the_normalised_unpooled_attention(tiny_config, variant, mode):
    policy = _fls_policy(tiny_config, variant)
    obs = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    maps = get_method("fls", policy, unpool=mode).attribute(obs)
    with torch.no_grad():
        _, att = policy.logits_and_attention(obs)  # the map of an ordinary forward pass
    expected = normalize_maps(_paint(att, policy.config.convs, (16, 16), mode=mode))
    torch.testing.assert_close(maps, expected)
    assert float(maps.min()) > 0  # softplus attention is positive: no all-zero map


def test_costs_less_than_one_forward_pass(tiny_config):
    """Structural check (no timing): one call runs the conv stack and the FLS module once each and
    neither the linear head nor any backward pass."""
    policy = _fls_policy(tiny_config)
    calls = {"convs": 0, "attention": 0, "linear": 0, "pi": 0}
    handles = [getattr(policy.trunk, n, None) or getattr(policy, n) for n in calls]
    handles = [m.register_forward_hook(lambda *_, n=n: calls.__setitem__(n, calls[n] + 1))
               for n, m in zip(calls, handles)]
    try:
        maps = get_method("fls", policy).attribute(torch.rand(5, 3, 16, 16))
    finally:
        for h in handles:
            h.remove()
    assert calls == {"convs": 1, "attention": 1, "linear": 0, "pi": 0}
    assert not maps.requires_grad and all(p.grad is None for p in policy.parameters())


def test_target_is_ignored(tiny_config):
    method = get_method("fls", _fls_policy(tiny_config))
    obs = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    assert not method.uses_target and not method.differentiable
    torch.testing.assert_close(method.attribute(obs, target=3), method.attribute(obs))


def test_plain_policy_and_bad_settings_raise(tiny_policy, tiny_config):
    with pytest.raises(DigrError, match="needs a policy with an FLS attention module") as info:
        get_method("fls", tiny_policy)
    assert "\n" not in str(info.value)
    with pytest.raises(DigrError, match="unknown FLS unpool"):
        get_method("fls", _fls_policy(tiny_config), unpool="bilinear")
    with pytest.raises(DigrError, match="bad settings"):
        get_method("fls", _fls_policy(tiny_config), radius=3)


def test_rfg_sparse_sum_policy_end_to_end():
    base = PolicyConfig.for_task(get_task("red-fetch-green"))
    policy = _fls_policy(base, "sparse-sum")
    obs = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    for mode in ("receptive_field", "stride"):
        maps = get_method("fls", policy, unpool=mode).attribute(obs)
        assert maps.shape == (2, 64, 64) and float(maps.max()) == pytest.approx(1.0)
    # 'stride' is constant on each 8x8 tile: the tile grid is the attention grid
    tiles = get_method("fls", policy, unpool="stride").attribute(obs).reshape(2, 8, 8, 8, 8)
    assert bool((tiles == tiles[:, :, :1, :, :1]).all())
