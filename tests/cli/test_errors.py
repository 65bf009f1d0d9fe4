"""Bad input: one clear line on stderr, non-zero exit, no traceback, nothing half-written."""

import subprocess
import sys

import pytest

from digr.cli.main import main
from digr.models import save_policy


@pytest.fixture
def ckpts(tmp_path, rfg_policy, tiny_policy):
    save_policy(rfg_policy, tmp_path / "good", task="red-fetch-green")
    save_policy(tiny_policy, tmp_path / "small", task="other")
    save_policy(rfg_policy, tmp_path / "trunc", task="red-fetch-green")
    w = tmp_path / "trunc" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    save_policy(rfg_policy, tmp_path / "corrupt", task="red-fetch-green")
    (tmp_path / "corrupt" / "model.safetensors").write_bytes(b"garbage" * 10)
    return tmp_path


def _perf(ck, task="red-fetch-green"):
    return ["evaluate", "performance", "--policy", str(ck), "--task", task, "--episodes", "1", "--json"]


@pytest.mark.parametrize("argv,msg", [
    (lambda d: _perf(d / "good", task="pong"), "unknown task 'pong'"),
    (lambda d: _perf(d / "missing"), "checkpoint not found"),
    (lambda d: _perf(d / "trunc"), "corrupt or truncated"),
    (lambda d: _perf(d / "corrupt"), "corrupt or truncated"),
    (lambda d: _perf(d / "small"), "expects observations"),
    (lambda d: ["train", "--task", "red-fetch-green", "--out", str(d / "run"), "--n-minibatches", "7"],
     "divisible by n_minibatches"),
    (lambda d: ["train", "--task", "nope", "--out", str(d / "run")], "unknown task"),
    (lambda d: ["import-sb3", str(d / "missing.zip"), "--out", str(d / "imp")], "not found"),
])
def test_bad_input_is_one_clear_line(ckpts, capsys, argv, msg):
    before = sorted(p.name for p in ckpts.iterdir())
    assert main(argv(ckpts)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("digr: error: ") and msg in err[0]
    assert sorted(p.name for p in ckpts.iterdir()) == before, "no partial files left behind"


def test_subprocess_has_no_traceback(ckpts):
    r = subprocess.run([sys.executable, "-m", "digr.cli.main", *_perf(ckpts / "trunc")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.strip().startswith("digr: error:")
    assert r.stdout == ""


def test_performance_json_is_deterministic(ckpts, capsys):
    import json

    outs = []
    for _ in range(2):
        assert main(["evaluate", "performance", "--policy", str(ckpts / "good"), "--task", "red-fetch-green",
                     "--episodes", "3", "--seed", "5", "--json"]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0] == outs[1]
    assert {"success_rate", "mean_return", "std_return", "episodes"} <= set(outs[0])
    assert outs[0]["episodes"] == 3


def test_torch_threads_option(ckpts, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        assert main(["--torch-threads", "1", *_perf(ckpts / "good")]) == 0
        assert torch.get_num_threads() == 1
        capsys.readouterr()
        assert main(["--torch-threads", "0", *_perf(ckpts / "good")]) == 2
        assert "--torch-threads must be in [1," in capsys.readouterr().err
        assert main(["--torch-threads", "100000000", *_perf(ckpts / "good")]) == 2
        assert "4 per CPU core at most" in capsys.readouterr().err
        torch.set_num_threads(2)
        assert main(_perf(ckpts / "good")) == 0
        assert torch.get_num_threads() == 1  # the default: one thread
    finally:
        torch.set_num_threads(before)
