"""Gaussian-blur perturbation (Greydanus et al. 2018, eq. 3): hand-computed scores, locality, masks."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from digr.errors import DigrError
from digr.saliency import get_method, perturbation_saliency
from digr.saliency.perturbation import (
    TRUNCATE,
    gaussian_blur,
    greydanus_score,
    kl_score,
    mask_grid,
    perturbation_scores,
    window_half_width,
)


class RegionPolicy(nn.Module):
    """Logits read only the pixels ``obs[:, :, y0:y1, x0:x1]`` (linearly)."""

    def __init__(self, obs_shape=(2, 24, 24), region=(14, 17, 4, 7), n_actions=3, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.config = SimpleNamespace(obs_shape=obs_shape, n_actions=n_actions)
        self.region = region
        y0, y1, x0, x1 = region
        self.W = nn.Parameter(torch.randn(n_actions, obs_shape[0] * (y1 - y0) * (x1 - x0), generator=g))

    def forward(self, obs):
        y0, y1, x0, x1 = self.region
        return 3.0 * obs[:, :, y0:y1, x0:x1].flatten(1) @ self.W.T


def _obs(shape, seed, b=1):
    return torch.rand(b, *shape, generator=torch.Generator().manual_seed(seed))


def test_mask_is_gaussian_centred_on_its_location():
    grid = mask_grid(10, 12, radius=2.0, stride=1)
    m = grid.masks(torch.tensor([3 * 12 + 7]))[0]  # centre (3, 7)
    yy, xx = torch.meshgrid(torch.arange(10.0), torch.arange(12.0), indexing="ij")
    torch.testing.assert_close(m, torch.exp(-((yy - 3) ** 2 + (xx - 7) ** 2) / 8.0))
    assert mask_grid(10, 12, radius=2.0, stride=1) is grid  # cached


def test_truncated_window_is_cut_where_it_falls_below_1_over_510():
    grid = mask_grid(30, 31, radius=2.0, stride=1)  # default truncate: floor(3.532 * 2) = 7 pixels
    assert grid.half == 7 == window_half_width(2.0, TRUNCATE)
    assert abs(TRUNCATE - (2 * math.log(510)) ** 0.5) < 1e-12
    m = grid.masks(torch.tensor([15 * 31 + 20]))[0]  # centre (15, 20)
    yy, xx = torch.meshgrid(torch.arange(30.0), torch.arange(31.0), indexing="ij")
    full = torch.exp(-((yy - 15) ** 2 + (xx - 20) ** 2) / 8.0)
    kept = ((yy - 15).abs() <= 7) & ((xx - 20).abs() <= 7)
    torch.testing.assert_close(m[kept], full[kept])
    assert not m[~kept].any()
    assert float(full[~kept].max()) < 1 / 510  # every value cut is below half a grey level
    assert float(full[kept].min()) >= math.exp(-TRUNCATE ** 2)  # the square's corners stay
    untruncated = mask_grid(30, 31, radius=2.0, stride=1, truncate=None)
    assert untruncated.half is None
    torch.testing.assert_close(untruncated.masks(torch.tensor([15 * 31 + 20]))[0], full)
    assert window_half_width(2.0, None) is None and window_half_width(1.5, 2.0) == 3


def test_blur_preserves_constants_and_smooths():
    const = torch.full((1, 2, 9, 9), 0.3)
    torch.testing.assert_close(gaussian_blur(const, 3.0), const)
    x = _obs((1, 20, 20), 0)
    assert gaussian_blur(x, 3.0).std() < 0.5 * x.std()


def test_scores_match_hand_computation_at_one_location():
    policy = RegionPolicy()
    obs = _obs((2, 24, 24), 1)
    yy, xx = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    mask = torch.exp(-((yy - 15) ** 2 + (xx - 5) ** 2) / (2 * 3.0 ** 2))
    blurred = gaussian_blur(obs, 3.0)
    perturbed = obs * (1 - mask) + blurred * mask  # Greydanus et al. eq. 1
    z, z2 = policy(obs), policy(perturbed)
    p, q = torch.softmax(z, -1), torch.softmax(z2, -1)
    kl = (p * (p.log() - q.log())).sum()
    half_sq = 0.5 * (z - z2).pow(2).sum()
    for fn, expected in ((kl_score, kl), (greydanus_score, half_sq)):
        raw = perturbation_scores(policy, obs, fn, radius=3.0, stride=1, batch_size=100)
        torch.testing.assert_close(raw[0, 15, 5], expected.detach(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("score", ["kl", "greydanus"])
def test_map_of_one_region_policy_peaks_on_that_region(stride, score):
    policy = RegionPolicy()
    obs = _obs((2, 24, 24), 2, b=2)
    maps = perturbation_saliency(policy, obs, radius=2.0, stride=stride, score=score, batch_size=97)
    assert maps.shape == (2, 24, 24)
    y0, y1, x0, x1 = policy.region
    for m in maps:
        y, x = divmod(int(m.argmax()), 24)
        assert y0 - stride <= y < y1 + stride and x0 - stride <= x < x1 + stride, (y, x)
        # far from the region the window barely touches it: near zero saliency
        assert float(m[:4, 16:].max()) < 0.05


def test_stride_upsampling_interpolates_between_centres():
    grid = mask_grid(7, 5, radius=1.0, stride=3)  # centres rows 0, 3, 6; columns 0, 3
    coarse = torch.arange(6.0).view(1, 3, 2)
    up = grid.upsample(coarse)[0]
    torch.testing.assert_close(up[::3, ::3], coarse[0])  # exact at the centres
    torch.testing.assert_close(up[1, 0], coarse[0, 0, 0] + (coarse[0, 1, 0] - coarse[0, 0, 0]) / 3)
    torch.testing.assert_close(up[:, 4], up[:, 3])  # beyond the last centre: held


def test_batch_size_and_batching_do_not_change_maps():
    policy = RegionPolicy()
    obs = _obs((2, 24, 24), 3, b=3)
    a = perturbation_saliency(policy, obs, radius=2.0, batch_size=1024)
    b = perturbation_saliency(policy, obs, radius=2.0, batch_size=50)
    c = torch.cat([perturbation_saliency(policy, obs[i:i + 1], radius=2.0) for i in range(3)])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-4)


def test_large_grids_use_separable_masks(monkeypatch):
    import digr.saliency.perturbation as pert

    policy = RegionPolicy()
    obs = _obs((2, 24, 24), 4)
    full = perturbation_saliency(policy, obs, radius=2.5)
    monkeypatch.setattr(pert, "FULL_MASK_LIMIT", 0)
    monkeypatch.setattr(pert, "_MASK_CACHE", type(pert._MASK_CACHE)())
    assert mask_grid(24, 24, radius=2.5, stride=1).full is None
    torch.testing.assert_close(perturbation_saliency(policy, obs, radius=2.5), full)


def test_method_object_and_bad_settings(tiny_policy):
    obs = _obs((3, 16, 16), 5, b=2)
    m = get_method("perturbation", tiny_policy, radius=4, stride=2)
    torch.testing.assert_close(m.attribute(obs), perturbation_saliency(tiny_policy, obs, radius=4, stride=2))
    assert not m.attribute(obs).requires_grad
    for bad in (dict(radius=0), dict(radius=-1), dict(stride=0), dict(stride=1.5), dict(score="l2"),
                dict(batch_size=0)):
        with pytest.raises(DigrError):
            get_method("perturbation", tiny_policy, **bad)
        with pytest.raises(DigrError):
            perturbation_saliency(tiny_policy, obs, **{"radius": 4, **bad})
