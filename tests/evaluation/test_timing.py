"""ms per saliency map (Figure 1b): repeat budget, result keys, CLI JSON."""

import json
import time

import pytest
import torch

from digr.cli.main import main
from digr.errors import DigrError
from digr.evaluation.timing import MIN_REPEATS, STUDENT_KEY, time_call, time_saliency
from digr.models import PolicyConfig, PolicyNet, save_policy
from digr.saliency import METHODS

TASK = "red-fetch-green"
TINY_RFG = PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((4, 8, 8, 0), (8, 3, 1, 1)), hidden=16)
KEYS = {"median_ms", "p10_ms", "p90_ms", "repeats"}


def tiny(seed=0):
    torch.manual_seed(seed)
    return PolicyNet(TINY_RFG).eval()


def test_time_call_measures_and_limits_slow_calls():
    cpu = torch.device("cpu")
    slow = time_call(lambda: time.sleep(0.03), device=cpu, repeats=50, max_seconds=0.01)
    assert slow["repeats"] == MIN_REPEATS  # budget 0.01 s < one call: the minimum
    assert slow["warmup"] == 3  # under 0.1 s per call counts as fast: three warm-up calls
    assert 25 <= slow["p10_ms"] <= slow["median_ms"] <= slow["p90_ms"] < 1000
    fast = time_call(lambda: None, device=cpu, repeats=7, max_seconds=1.0)
    assert fast["repeats"] == 7


def test_time_saliency_all_methods_and_student():
    r = time_saliency(tiny(0), TASK, student=tiny(1), repeats=2, max_seconds=0.05)
    # every method that can explain a plain network (FLS needs its attention module)
    assert set(r["methods"]) == {n for n, cls in METHODS.items() if cls.supports(tiny(0))}
    assert "vanilla" in r["methods"] and ("fls" not in METHODS or "fls" not in r["methods"])
    for t in [r["forward"], r[STUDENT_KEY], *r["methods"].values()]:
        assert KEYS <= set(t)
        assert 0 < t["p10_ms"] <= t["median_ms"] <= t["p90_ms"]
    assert r["methods"]["perturbation"]["settings"]["radius"] == 4  # the task's radius (appendix A)
    assert r["device"] == "cpu" and r["batch"] == 1


def test_time_saliency_checks_inputs(tiny_config):
    with pytest.raises(DigrError, match="expects observations"):
        time_saliency(PolicyNet(tiny_config), TASK, repeats=1)
    with pytest.raises(DigrError, match="repeats"):
        time_saliency(tiny(), TASK, repeats=0)
    if not torch.cuda.is_available():
        with pytest.raises(DigrError, match="CUDA is not available"):
            time_saliency(tiny(), TASK, repeats=1, device="cuda")


def test_cli_json(tmp_path, capsys):
    teacher = save_policy(tiny(0), tmp_path / "teacher", task=TASK)
    student = save_policy(tiny(1), tmp_path / "student", task=TASK)
    rc = main(["evaluate", "timing", "--policy", str(teacher), "--task", TASK, "--student", str(student),
               "--repeats", "2", "--max-seconds", "0.05", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert {"task", "device", "machine", "forward", "methods", STUDENT_KEY, "policy", "student"} <= set(out)
    assert set(out["methods"]) == {n for n, cls in METHODS.items() if cls.supports(tiny(0))}
    assert KEYS <= set(out["methods"]["sarfa"]) and KEYS <= set(out[STUDENT_KEY])
