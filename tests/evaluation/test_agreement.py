"""Map agreement: analytic cases of the three figures, the cache, and the CLI."""

import json

import numpy as np
import pytest
import torch

from digr.errors import DigrError
from digr.evaluation.agreement import agreement_scores, summarize


def _ref():
    r = torch.zeros(1, 10, 10)
    r[0, 2:5, 2:5] = 1.0  # 9 important pixels
    return r


def test_identical_maps_agree_fully():
    r = _ref()
    s = agreement_scores(r, r)
    assert s["cc"][0] == pytest.approx(1.0)
    assert s["share"][0] == pytest.approx(1.0)
    assert s["top1"][0] == pytest.approx(1 / 9)  # 1% of 100 pixels = 1 pixel of 9 equal ones


def test_a_spike_on_an_important_pixel_has_full_share_but_top1_one():
    r = _ref()
    spike = torch.zeros(1, 10, 10)
    spike[0, 3, 3] = 5.0
    s = agreement_scores(spike, r)
    assert s["share"][0] == pytest.approx(1.0) and s["top1"][0] == pytest.approx(1.0)
    # Pearson of a one-hot inside a 9-pixel block: sqrt(1/9 * 91/99) ... computed directly
    a, b = spike.flatten().double(), r.flatten().double()
    assert s["cc"][0] == pytest.approx(float(np.corrcoef(a, b)[0, 1]))


def test_mass_off_the_important_region_and_degenerate_maps():
    r = _ref()
    off = torch.zeros(1, 10, 10)
    off[0, 8, 8] = 1.0
    off[0, 3, 3] = 3.0
    s = agreement_scores(off, r)
    assert s["share"][0] == pytest.approx(0.75)
    z = agreement_scores(torch.zeros(1, 10, 10), r)
    assert z["cc"][0] == 0 and z["share"][0] == 0 and z["top1"][0] == 0
    # scale-invariant in both arguments
    s2 = agreement_scores(7 * off, 0.5 * r)
    assert all(np.allclose(s[k], s2[k]) for k in s)


def test_summary_interval_and_bad_input():
    r = _ref().repeat(4, 1, 1)
    m = r + torch.rand(4, 10, 10, generator=torch.Generator().manual_seed(0))
    a = summarize(agreement_scores(m, r))
    assert a.states == 4 and 0 < a.cc < 1 and a.cc_ci95 > 0
    with pytest.raises(DigrError):
        agreement_scores(m[:2], r)
    bad = m.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(DigrError, match="NaN"):
        agreement_scores(bad, r)


def test_cli_measures_teacher_and_student_and_reuses_the_cache(tmp_path, capsys, rfg_teacher):
    from digr.cli.main import main

    args = ["evaluate", "agreement", "--teacher", str(rfg_teacher), "--policy", str(rfg_teacher),
            "--task", "red-fetch-green", "--states", "3", "--cache", str(tmp_path), "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    ag = out["agreement"]
    assert set(ag) == {"reference", "teacher_vg", str(rfg_teacher)}
    ref = ag["reference"]  # the reference map against itself
    assert ref["cc"] == pytest.approx(1.0) and 0 < ref["share"] <= 1
    assert ag["teacher_vg"] == ag[str(rfg_teacher)]  # the same network scores the same
    assert len(list(tmp_path.glob("agreement-*.npz"))) == 1
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == out
