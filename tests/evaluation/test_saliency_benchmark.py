"""The Red-Fetch-Green saliency benchmark: AUC, streaming statistics, states, CLI."""

import json

import numpy as np
import pytest
import torch

from digr.cli.main import main
from digr.errors import DigrError
from digr.evaluation.saliency_benchmark import (
    SaliencyStats,
    auc_exact,
    auc_histogram,
    benchmark_states,
    evaluate_saliency,
    histogram_bins,
)
from digr.models import PolicyConfig, PolicyNet, save_policy
from digr.saliency import SaliencyMethod

TASK = "red-fetch-green"
TINY_RFG = PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((4, 8, 8, 0), (8, 3, 1, 1)), hidden=16)


def brute_force_auc(pos, neg):
    pos, neg = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


@pytest.fixture(scope="module")
def tiny_rfg():
    torch.manual_seed(0)
    return PolicyNet(TINY_RFG).eval()


@pytest.fixture(scope="module")
def states4():
    return next(iter(benchmark_states(TASK, states=4, seed=3, batch_size=4)))


# ------------------------------------------------------------------------------------------------ AUC
@pytest.mark.parametrize("seed", range(5))
def test_auc_exact_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    # few distinct values, so ties within and across the two groups are common
    pos = rng.integers(0, 6, size=rng.integers(1, 40)) / 5
    neg = rng.integers(0, 6, size=rng.integers(1, 40)) / 5
    assert auc_exact(pos, neg) == pytest.approx(brute_force_auc(pos, neg), abs=1e-12)


def test_auc_exact_known_values():
    assert auc_exact([0.9, 0.8], [0.1, 0.2, 0.3]) == 1.0
    assert auc_exact([0.1], [0.5, 0.9]) == 0.0
    assert auc_exact([0.4, 0.4], [0.4]) == 0.5
    # one positive above both negatives, one tied with one of them: (2 + 1.5) / 4
    assert auc_exact([0.9, 0.2], [0.2, 0.1]) == pytest.approx(0.875)


def test_auc_needs_both_groups():
    with pytest.raises(DigrError, match="at least one positive and one negative"):
        auc_exact([], [0.1])


@pytest.mark.parametrize("bins", [4, 16, 1 << 16])
def test_histogram_auc_within_its_bound(bins):
    rng = np.random.default_rng(bins)
    pos = np.concatenate([rng.beta(3, 2, 3000), np.zeros(50), np.ones(10)]).astype(np.float32)
    neg = np.concatenate([rng.beta(2, 3, 5000), np.zeros(400)]).astype(np.float32)
    exact = auc_exact(pos, neg)
    ph = np.bincount(histogram_bins(pos, bins), minlength=bins + 1)
    nh = np.bincount(histogram_bins(neg, bins), minlength=bins + 1)
    approx, bound = auc_histogram(ph, nh)
    assert abs(approx - exact) <= bound + 1e-12
    assert bound > 0
    if bins == 4:  # coarse bins really do mis-order pairs, and the bound is not vacuous
        assert abs(approx - exact) > 1e-4
        assert bound < 0.5
    if bins == 1 << 16:
        assert bound < 1e-3


def test_histogram_bins_edges_and_exact_zeros():
    assert histogram_bins(np.array([0.0, 1e-9, 0.25, 0.2500001, 1.0]), 4).tolist() == [0, 1, 1, 2, 4]
    # exact zeros share bin 0 but really are ties: no error, zero bound
    auc, bound = auc_histogram(np.bincount([0, 0, 3], minlength=5), np.bincount([0, 1], minlength=5))
    assert auc == pytest.approx(brute_force_auc([0, 0, 0.7], [0, 0.1]))
    assert bound == 0.0


# ------------------------------------------------------------------------------------- statistics
def test_states_and_masks(states4):
    b = states4
    assert b.obs.shape == (4, 64, 64, 3) and b.obs.dtype == np.uint8
    assert b.important.sum((1, 2)).tolist() == [128] * 4  # agent tile + target tile
    assert not (b.important & b.unimportant).any()
    # walls (the 8-px border) and distractor tiles belong to neither region
    border = np.ones((64, 64), bool)
    border[8:-8, 8:-8] = False
    assert not (b.important | b.unimportant)[:, border].any()
    # the 36 floor tiles minus the two distractors' tiles
    assert ((b.important | b.unimportant).sum((1, 2)) == 36 * 64 - 2 * 64).all()


def test_states_depend_only_on_seed_and_index():
    a = np.concatenate([x.obs for x in benchmark_states(TASK, states=5, seed=7, batch_size=2)])
    b = next(iter(benchmark_states(TASK, states=5, seed=7, batch_size=5))).obs
    np.testing.assert_array_equal(a, b)
    moved = next(iter(benchmark_states(TASK, states=5, seed=7, moves=6, batch_size=5)))
    assert moved.important.sum((1, 2)).tolist() == [128] * 5
    assert not np.array_equal(moved.obs, b)


def test_map_equal_to_important_mask(states4):
    s = SaliencyStats()
    s.update(states4.important.astype(np.float32), states4.important, states4.unimportant)
    r = s.result()
    assert r["auc"] == 1.0 and r["auc_error_bound"] == 0.0
    assert r["important"] == 128.0 and r["unimportant"] == 0.0
    assert r["important_per_pixel"] == 1.0 and r["states"] == 4


def test_map_equal_to_unimportant_mask(states4):
    s = SaliencyStats(auc="exact")
    s.update(states4.unimportant.astype(np.float32), states4.important, states4.unimportant)
    r = s.result()
    assert r["auc"] == 0.0
    assert r["important"] == 0.0 and r["unimportant"] == 2048.0
    assert r["unimportant_pixels"] == 2048.0


def test_constant_map_is_chance(states4):
    s = SaliencyStats()
    s.update(np.full(states4.important.shape, 0.3, np.float32), states4.important, states4.unimportant)
    r = s.result()
    assert r["auc"] == 0.5
    assert r["important"] == pytest.approx(0.3 * 128) and r["unimportant"] == pytest.approx(0.3 * 2048)


def test_streaming_matches_exact_pooled_computation(states4):
    rng = np.random.default_rng(0)
    maps = rng.random(states4.important.shape).astype(np.float32) ** 3
    maps[states4.important] = np.clip(maps[states4.important] + 0.2, 0, 1)
    hist, exact = SaliencyStats(), SaliencyStats(auc="exact")
    for sl in (slice(0, 1), slice(1, 4)):  # streamed in two batches
        hist.update(maps[sl], states4.important[sl], states4.unimportant[sl])
    exact.update(maps, states4.important, states4.unimportant)
    h, e = hist.result(), exact.result()
    pooled = auc_exact(maps[states4.important], maps[states4.unimportant])
    assert e["auc"] == pytest.approx(pooled, abs=1e-12)
    assert abs(h["auc"] - pooled) <= h["auc_error_bound"] + 1e-12
    per_state = [(maps[i] * states4.important[i]).sum() for i in range(4)]
    assert h["important"] == pytest.approx(np.mean(per_state), rel=1e-6)


def test_stats_reject_bad_maps(states4):
    s = SaliencyStats()
    with pytest.raises(DigrError, match=r"\[0, 1\]"):
        s.update(np.full(states4.important.shape, 2.0, np.float32), states4.important, states4.unimportant)
    with pytest.raises(DigrError, match="same shape"):
        s.update(np.zeros((4, 8, 8), np.float32), states4.important, states4.unimportant)
    with pytest.raises(DigrError, match="no states"):
        s.result()


# ------------------------------------------------------------------------------------ evaluation
class MaskOracle(SaliencyMethod):
    """Saliency = 1 on agent-red and target-green pixels, 0 elsewhere (knows the colours)."""

    name = "oracle"
    uses_target = False

    def _attribute(self, obs, target):
        r, g, b = obs[:, 0], obs[:, 1], obs[:, 2]
        red = (r > 0.9) & (g < 0.1) & (b < 0.1)
        green = (g > 0.9) & (r < 0.1) & (b < 0.1)
        return (red | green).float()


def test_evaluate_saliency_with_an_oracle_method(tiny_rfg):
    r = evaluate_saliency(tiny_rfg, MaskOracle(tiny_rfg), task=TASK, states=6, seed=0, batch_size=4)
    # only agent/target pixels are lit, so nothing falls on empty floor and every lit pixel is important
    assert r["unimportant"] == 0.0
    assert 0 < r["important"] < 128
    assert r["auc"] > 0.5 and r["states"] == 6


def test_evaluate_saliency_histogram_agrees_with_exact(tiny_rfg):
    kw = dict(task=TASK, states=5, seed=1, batch_size=2)
    h = evaluate_saliency(tiny_rfg, "vanilla", **kw)
    e = evaluate_saliency(tiny_rfg, "vanilla", auc="exact", **kw)
    assert abs(h["auc"] - e["auc"]) <= h["auc_error_bound"] + 1e-12
    assert h["important"] == pytest.approx(e["important"])
    assert {"important", "unimportant", "auc", "states", "method", "seconds"} <= set(h)


def test_batch_size_does_not_change_results(tiny_rfg):
    a = evaluate_saliency(tiny_rfg, "gradcam", task=TASK, states=5, seed=2, batch_size=5)
    b = evaluate_saliency(tiny_rfg, "gradcam", task=TASK, states=5, seed=2, batch_size=2)
    for k in ("important", "unimportant", "auc"):
        assert a[k] == pytest.approx(b[k], rel=1e-5)


def test_other_tasks_have_no_masks(tiny_config):
    with pytest.raises(DigrError, match="ground-truth masks"):
        evaluate_saliency(PolicyNet(tiny_config), "vanilla", task="breakout", states=2)


# ------------------------------------------------------------------------------------------- CLI
def test_cli_json(tmp_path, capsys, tiny_rfg):
    ckpt = save_policy(tiny_rfg, tmp_path / "policy", task=TASK)
    rc = main(["evaluate", "saliency", "--policy", str(ckpt), "--method", "gb_perturbation", "--task", TASK,
               "--states", "2", "--seed", "4", "--batch-size", "1", "--setting", "stride=8", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert {"important", "unimportant", "auc", "states", "method", "seconds"} <= set(out)
    assert out["states"] == 2 and out["method"] == "perturbation"
    assert out["settings"]["radius"] == 4 and out["settings"]["stride"] == 8  # task radius, given stride
    assert 0.0 <= out["auc"] <= 1.0


def test_cli_rejects_tasks_without_masks(tmp_path, capsys):
    rc = main(["evaluate", "saliency", "--policy", str(tmp_path / "missing"), "--method", "vanilla",
               "--task", "breakout", "--states", "2"])
    assert rc == 2
    assert "digr: error:" in capsys.readouterr().err
