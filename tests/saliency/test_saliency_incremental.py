"""Incremental inference for blur-perturbation saliency: the windowed recomputation gives the logits
of a full forward of every perturbed state, and the maps of the batched path."""

import math

import pytest
import torch
from torch import nn

import digr.saliency.incremental as inc
from digr.envs import get_task
from digr.errors import DigrError
from digr.models import PolicyConfig, PolicyNet
from digr.saliency import get_method, perturbation_saliency
from digr.saliency.perturbation import (
    TRUNCATE,
    gaussian_blur,
    greydanus_score,
    incremental_plan,
    kl_score,
    mask_grid,
    perturbation_scores,
)
from digr.saliency.sarfa import sarfa_saliency

# Tiny networks covering the geometry cases: padding, kernel < stride (unread input columns), a
# non-square input, one and three conv layers, both heads.
CONFIGS = {
    "flatten-3": PolicyConfig(obs_shape=(3, 16, 16), n_actions=4,
                              convs=((4, 4, 2, 0), (8, 3, 1, 1), (8, 3, 1, 0)), hidden=16),
    "max-pad": PolicyConfig(obs_shape=(2, 24, 24), n_actions=3,
                            convs=((4, 4, 2, 1), (6, 5, 1, 2), (5, 3, 2, 1)), hidden=8, pool="max"),
    "nonsquare": PolicyConfig(obs_shape=(1, 20, 28), n_actions=5, convs=((4, 5, 3, 2), (6, 2, 2, 0)),
                              hidden=12),
    "k<s": PolicyConfig(obs_shape=(2, 17, 17), n_actions=3, convs=((4, 2, 3, 0),), hidden=8),
}


def _policy(cfg, seed=0, scale=3.0):
    torch.manual_seed(seed)
    policy = PolicyNet(cfg).eval()
    with torch.no_grad():  # larger weights: perturbations move the logits by O(0.1), not O(1e-3)
        for p in policy.parameters():
            p.mul_(scale)
    return policy


def _obs(shape, seed, b=1):
    return torch.rand(b, *shape, generator=torch.Generator().manual_seed(seed))


def _incremental_logits(policy, obs, grid, stride):
    """Perturbed logits ``(B, L, A)`` from the incremental engine, and the clean ones ``(B, A)``."""
    geoms = inc.conv_stack(policy, tuple(obs.shape[2:]))
    plan = inc.build_plan(policy, geoms, gy=grid.gy, gx=grid.gx, stride=stride, half=grid.half)
    with torch.inference_mode():
        delta = gaussian_blur(obs) - obs
        engine = inc.Incremental(policy, geoms, obs, delta)
        out = torch.full((obs.shape[0], grid.n_locations, policy.config.n_actions), float("nan"))
        for loc, b, logits in engine.batches(plan):
            out[b, loc] = logits
    return out, engine.clean


# ------------------------------------------------------------------------------- window geometry
def test_exact_intervals_by_hand():
    cfg = PolicyConfig(obs_shape=(1, 20, 21), n_actions=2, convs=((1, 4, 2, 1), (1, 3, 1, 1), (1, 4, 2, 0)),
                       hidden=2)
    geoms = inc.conv_stack(PolicyNet(cfg), (20, 21))
    # rows: 20 -> 10 -> 10 -> 4; the last conv reads rows 0..9 of its input (all)
    assert [g.out_size[0] for g in geoms] == [10, 10, 4]
    (c6,), (c0,) = inc.exact_intervals([6], 3, geoms, 0), inc.exact_intervals([0], 3, geoms, 0)
    # centre 6, half 3: input rows 3..9. Layer 1 output o reads [2o - 1, 2o + 2]: o = 1..5.
    # Layer 2 (k3 p1) reads [o - 1, o + 1]: o = 0..6. Layer 3 (k4 s2) reads [2o, 2o + 3]: o = 0..3.
    assert c6 == [(1, 5), (0, 7), (0, 4)]
    # centre 0: rows 0..3 -> o = 0..2 -> 0..3 -> 0..1
    assert c0 == [(0, 3), (0, 4), (0, 2)]
    # columns: 21 -> 10 (k4 s2 p1 reads columns -1..20), so every column is read
    assert inc.exact_intervals([20], 0, geoms, 1)[0][0] == (9, 1)


def test_unread_input_changes_nothing():
    # k2 s3: output o reads columns 3o, 3o + 1; columns 2, 5, ... are never read
    geoms = inc.conv_stack(PolicyNet(CONFIGS["k<s"]), (17, 17))
    assert inc.exact_intervals([2, 3], 0, geoms, 0) == [[(0, 0)], [(1, 1)]]


def test_size_classes_round_up_only_when_cheaper():
    # one centre with a 1-wide window, ten with 5-wide; the other axis: one class of size 5.
    # Rounding 1 up to 5 adds macs * 5 * 1 * (5 - 1) = 20 multiply-adds and saves one conv call.
    y, x = {1: 1, 5: 10}, {5: 1}
    assert inc.size_classes(y, x, macs=1, rows=1, overhead=19) == ({1: 1, 5: 5}, {5: 5})
    assert inc.size_classes(y, x, macs=1, rows=1, overhead=21) == ({1: 5, 5: 5}, {5: 5})
    # more states per call make rounding up costlier
    assert inc.size_classes(y, x, macs=1, rows=2, overhead=21) == ({1: 1, 5: 5}, {5: 5})
    assert inc.size_classes({2: 3, 3: 1, 7: 2}, {4: 1}, macs=1, rows=1, overhead=0)[0] == {2: 2, 3: 3, 7: 7}


# ----------------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("stride,radius", [(1, 1.5), (3, 2.0)])
@pytest.mark.parametrize("buckets", ["every-size", "merged"])
def test_logits_equal_a_full_forward_of_each_perturbed_state(name, stride, radius, buckets, monkeypatch):
    """The windowed recomputation is exact: same logits as the network on ``s + M * (blur(s) - s)``."""
    monkeypatch.setattr(inc, "BUCKET_OVERHEAD_MACS", 0 if buckets == "every-size" else 1e12)
    monkeypatch.setattr(inc, "CHUNK_FLOATS", 3000)  # several chunks per state
    cfg = CONFIGS[name]
    policy = _policy(cfg)
    obs = _obs(cfg.obs_shape, 1, b=2)
    grid = mask_grid(*cfg.obs_shape[1:], radius=radius, stride=stride)
    got, clean = _incremental_logits(policy, obs, grid, stride)
    with torch.no_grad():
        delta = gaussian_blur(obs) - obs
        torch.testing.assert_close(clean, policy(obs), rtol=1e-5, atol=1e-5)
        for b in range(2):
            want = policy(obs[b:b + 1] + grid.masks(slice(0, grid.n_locations))[:, None] * delta[b:b + 1])
            torch.testing.assert_close(got[b], want, rtol=1e-5, atol=1e-5)


def test_uncached_indices_give_the_same_logits(monkeypatch):
    cfg = CONFIGS["max-pad"]
    policy, obs = _policy(cfg), _obs(cfg.obs_shape, 2)
    grid = mask_grid(*cfg.obs_shape[1:], radius=2.0, stride=2)
    cached, _ = _incremental_logits(policy, obs, grid, 2)
    import digr.saliency.incremental.plan as plan_module  # where the plans read the limit

    monkeypatch.setattr(plan_module, "INDEX_CACHE_ELEMENTS", 0)
    fresh, _ = _incremental_logits(policy, obs, grid, 2)
    torch.testing.assert_close(cached, fresh, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("score", ["kl", "greydanus"])
def test_maps_equal_the_batched_path(name, score):
    # Tolerance 1e-4 on maps in [0, 1]: the two engines add the same products in a different order
    # (float32 logits agree to ~1e-6 relative); the KL itself is computed in float64.
    cfg = CONFIGS[name]
    policy, obs = _policy(cfg), _obs(cfg.obs_shape, 3, b=3)
    for stride in (1, 2):
        a = perturbation_saliency(policy, obs, radius=2.0, stride=stride, score=score, engine="incremental")
        b = perturbation_saliency(policy, obs, radius=2.0, stride=stride, score=score, engine="batched")
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


@pytest.mark.parametrize("task", ["red-fetch-green", "breakout", "highway"])
def test_benchmark_networks_match_the_untruncated_batched_maps(task):
    """The three benchmark architectures, random weights and uniform-noise states (the worst case we
    found: ``blur(s) - s`` is large everywhere): the default truncated incremental map is within
    1/255 of the untruncated batched one -- less than one grey level of an 8-bit rendering of the
    map; measured 1.1e-3 .. 2.6e-3 here and at most 2.2e-3 on the committed checkpoints with real
    states (``results/saliency-speed.md``). The truncation is the whole difference: the same
    truncated map through the batched path agrees to 1e-4."""
    spec = get_task(task)
    torch.manual_seed(0)
    policy = PolicyNet(PolicyConfig.for_task(spec)).eval()
    obs = _obs(spec.obs_shape, 4)
    r = spec.perturbation_radius
    fast = perturbation_saliency(policy, obs, radius=r, stride=8, engine="incremental")
    exact = perturbation_saliency(policy, obs, radius=r, stride=8, truncate=None, engine="batched")
    truncated = perturbation_saliency(policy, obs, radius=r, stride=8, engine="batched")
    assert float((fast - exact).abs().max()) < 1 / 255
    torch.testing.assert_close(fast, truncated, rtol=0, atol=1e-4)


def test_in_place_weight_changes_are_seen():
    cfg = CONFIGS["flatten-3"]
    policy, obs = _policy(cfg), _obs(cfg.obs_shape, 5)
    first = perturbation_saliency(policy, obs, radius=2.0, stride=2, engine="incremental")
    with torch.no_grad():
        policy.trunk.linear.weight.mul_(-1.5)  # the cached reordered head weight must be rebuilt
    a = perturbation_saliency(policy, obs, radius=2.0, stride=2, engine="incremental")
    b = perturbation_saliency(policy, obs, radius=2.0, stride=2, engine="batched")
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
    assert float((a - first).abs().max()) > 1e-2


def test_sarfa_uses_the_same_pass():
    cfg = CONFIGS["flatten-3"]
    policy, obs = _policy(cfg), _obs(cfg.obs_shape, 6, b=2)
    target = torch.tensor([1, 3])
    a = sarfa_saliency(policy, obs, target, radius=2.0, stride=2, truncate=TRUNCATE, engine="incremental")
    b = sarfa_saliency(policy, obs, target, radius=2.0, stride=2, truncate=TRUNCATE, engine="batched")
    torch.testing.assert_close(a / a.amax((1, 2), keepdim=True), b / b.amax((1, 2), keepdim=True),
                               rtol=0, atol=1e-4)
    m = get_method("sarfa", policy, radius=2.0, stride=2, truncate=TRUNCATE, engine="incremental")
    torch.testing.assert_close(m.attribute(obs, target=target), b / b.amax((1, 2), keepdim=True),
                               rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------- engine choice
def _chosen(policy, obs, *, radius, stride, engine, truncate=TRUNCATE):
    """``(geoms, plan)`` where the engine would run incrementally, else None."""
    grid = mask_grid(*obs.shape[2:], radius=radius, stride=stride, truncate=truncate)
    return incremental_plan(policy, grid, obs, radius=radius, stride=stride, engine=engine)


def test_auto_engine_takes_incremental_only_where_it_pays():
    for task, expect in (("breakout", True), ("highway", True), ("red-fetch-green", False)):
        spec = get_task(task)
        policy = PolicyNet(PolicyConfig.for_task(spec))
        obs = torch.zeros(1, *spec.obs_shape)
        got = _chosen(policy, obs, radius=spec.perturbation_radius, stride=4, engine="auto")
        assert (got is not None) == expect, task
    # Red-Fetch-Green's 7x7 layers put every window over the whole 8x8 grid: no gain to be had
    spec = get_task("red-fetch-green")
    plan = _chosen(PolicyNet(PolicyConfig.for_task(spec)), torch.zeros(1, *spec.obs_shape), radius=4,
                   stride=4, engine="incremental")[1]
    assert plan.gain < inc.MIN_GAIN
    assert all(g.conv is None for g in plan.geoms)  # a cached plan keeps no network alive


class _Sub(PolicyNet):
    def forward(self, obs):
        return super().forward(obs) * 2


def test_other_modules_fall_back_to_the_batched_path():
    cfg = CONFIGS["flatten-3"]
    obs = _obs(cfg.obs_shape, 7)
    hooked = _policy(cfg)
    hooked.trunk.convs[1].register_forward_hook(lambda m, i, o: o * 0.5)
    for policy in (_Sub(cfg), hooked):
        assert _chosen(policy, obs, radius=2.0, stride=2, engine="auto") is None
        with pytest.raises(DigrError, match="incremental"):
            perturbation_saliency(policy, obs, radius=2.0, engine="incremental")
        # auto still gives the right (batched) map, hooks included
        torch.testing.assert_close(perturbation_saliency(policy, obs, radius=2.0, stride=4),
                                   perturbation_saliency(policy, obs, radius=2.0, stride=4, engine="batched"))
    plain = _policy(cfg)
    assert _chosen(plain, obs, radius=2.0, stride=2, truncate=None, engine="auto") is None
    with pytest.raises(DigrError, match="truncate"):
        perturbation_saliency(plain, obs, radius=2.0, truncate=None, engine="incremental")
    dilated = _policy(cfg)
    dilated.trunk.convs[2].dilation = (2, 2)
    assert inc.conv_stack(dilated, (16, 16)) is None


def test_default_method_records_its_settings_and_runs_incrementally():
    spec = get_task("breakout")
    policy = PolicyNet(PolicyConfig.for_task(spec))
    m = get_method("perturbation", policy, radius=8, stride=8)
    assert m.settings["truncate"] == TRUNCATE and m.settings["engine"] == "auto"
    assert math.isclose(math.exp(-TRUNCATE ** 2 / 2), 1 / 510)
    obs = _obs(spec.obs_shape, 8)
    torch.testing.assert_close(m.attribute(obs), perturbation_saliency(policy, obs, radius=8, stride=8,
                                                                       engine="incremental"))


def test_scores_of_unchanged_states_are_zero():
    # a constant image: blur(s) == s, so no perturbation changes anything
    cfg = CONFIGS["max-pad"]
    policy = _policy(cfg)
    obs = torch.full((1, *cfg.obs_shape), 0.4)
    for fn in (kl_score, greydanus_score):  # blur(s) - s is ~1 ulp: scores at rounding level
        raw = perturbation_scores(policy, obs, fn, radius=2.0, stride=2, engine="incremental")
        assert float(raw.abs().max()) < 1e-9


def test_bad_engine_and_truncate_settings():
    policy = _policy(CONFIGS["flatten-3"])
    obs = _obs((3, 16, 16), 9)
    for bad in (dict(engine="fast"), dict(truncate=0), dict(truncate=-1.0), dict(truncate=float("nan")),
                dict(truncate="3"), dict(truncate=True)):
        with pytest.raises(DigrError):
            perturbation_saliency(policy, obs, radius=2.0, **bad)
        with pytest.raises(DigrError):
            get_method("perturbation", policy, radius=2.0, **bad)
        with pytest.raises(DigrError):
            get_method("sarfa", policy, radius=2.0, **bad)


def test_global_forward_hooks_fall_back():
    # the engine calls no modules' forward, so a global hook would be skipped: batched instead
    handle = nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        policy = _policy(CONFIGS["flatten-3"])
        assert inc.conv_stack(policy, (16, 16)) is None
    finally:
        handle.remove()
    assert inc.conv_stack(_policy(CONFIGS["flatten-3"]), (16, 16)) is not None


def test_fls_networks_fall_back_to_the_batched_path():
    # an FLS module couples every position through its own convs: windows would be wrong
    from digr.models.fls import fls_config

    cfg = CONFIGS["flatten-3"]
    obs = _obs(cfg.obs_shape, 11)
    torch.manual_seed(0)
    fls = PolicyNet(fls_config(cfg, "sparse", attention_channels=4)).eval()
    assert inc.conv_stack(fls, tuple(cfg.obs_shape[1:])) is None
    with pytest.raises(DigrError, match="incremental"):
        perturbation_saliency(fls, obs, radius=2.0, engine="incremental")
    torch.testing.assert_close(perturbation_saliency(fls, obs, radius=2.0, stride=4),
                               perturbation_saliency(fls, obs, radius=2.0, stride=4, engine="batched"))
