"""Several seeds of one recipe (``digr distill --seeds``): each seed is the run a single
``train_student`` with that seed makes, the summary is their mean and t-interval, a rerun redoes
nothing, and the Ray path (slow) gives the same students."""

import json

import pytest
import torch

from digr.cli.main import main
from digr.distill import DistillConfig, train_student
from digr.distill.seeds import SUMMARY_NAME, interval95, seed_folder, train_seeds
from digr.errors import DigrError
from digr.models import load_policy
from digr.parallel import ParallelConfig

TASK = "red-fetch-green"


def tiny(**kw):
    base = dict(steps=2, batch_size=4, n_envs=2, buffer_size=16, eval_every=0, eval_episodes=0,
                checkpoint_every=2, log_every=1, torch_threads=None)
    return DistillConfig(**{**base, **kw}).validate()


def _same_weights(a, b):
    sa, sb = load_policy(a).state_dict(), load_policy(b).state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_each_seed_is_the_single_run_and_a_rerun_redoes_nothing(tmp_path, teacher_ckpt, tiny_dataset):
    out = tmp_path / "seeds"
    result = train_seeds(teacher_ckpt, tiny_dataset, TASK, out, tiny(), [0, 1])
    assert [r["seed"] for r in result["seeds"]] == [0, 1]
    single = train_student(teacher_ckpt, tiny_dataset, TASK, tmp_path / "one", tiny(seed=1))
    assert _same_weights(seed_folder(out, 1) / "policy", single["policy"])
    assert not _same_weights(seed_folder(out, 0) / "policy", seed_folder(out, 1) / "policy")
    kl = [r["distill/kl"] for r in result["seeds"]]
    summary = result["summary"]["distill/kl"]
    assert summary["n"] == 2 and summary["mean"] == pytest.approx(sum(kl) / 2)
    assert summary["ci95"] == pytest.approx(interval95(kl)) and summary["ci95"] > 0
    assert json.loads((out / SUMMARY_NAME).read_text()) == json.loads(json.dumps(result))
    mtime = (seed_folder(out, 0) / "policy" / "model.safetensors").stat().st_mtime_ns
    again = train_seeds(teacher_ckpt, tiny_dataset, TASK, out, tiny(), [0, 1])
    assert again["seeds"] == result["seeds"]
    assert (seed_folder(out, 0) / "policy" / "model.safetensors").stat().st_mtime_ns == mtime


def test_interval95_is_the_t_interval():
    assert interval95([1.0]) == 0.0
    assert interval95([1.0, 2.0, 3.0]) == pytest.approx(4.303 * 1.0 / 3 ** 0.5)


def test_bad_seeds_and_folders_are_one_line_errors(tmp_path, teacher_ckpt, tiny_dataset, capsys):
    with pytest.raises(DigrError, match="distinct"):
        train_seeds(teacher_ckpt, tiny_dataset, TASK, tmp_path / "a", tiny(), [1, 1])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(DigrError, match="not a multi-seed run"):
        train_seeds(teacher_ckpt, tiny_dataset, TASK, tmp_path / "b", tiny(), [0])
    assert (tmp_path / "b" / "notes.txt").read_text() == "mine"
    base = ["distill", "--teacher", str(teacher_ckpt), "--dataset", str(tiny_dataset), "--task", TASK,
            "--out", str(tmp_path / "c")]
    with pytest.raises(SystemExit) as exc:
        main(base + ["--seeds", "0,0"])
    assert exc.value.code == 2
    assert main(base + ["--seeds", "0,1", "--seed", "3"]) == 2
    assert main(base + ["--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "distinct seeds" in err and "--seed or --seeds" in err and "add --seeds" in err
    assert not (tmp_path / "c").exists()


@pytest.mark.slow  # Ray start-up (make test-all)
def test_ray_seeds_equal_the_serial_ones(tmp_path, teacher_ckpt, tiny_dataset):
    pytest.importorskip("ray")
    train_seeds(teacher_ckpt, tiny_dataset, TASK, tmp_path / "serial", tiny(), [0, 1])
    train_seeds(teacher_ckpt, tiny_dataset, TASK, tmp_path / "ray", tiny(), [0, 1],
                parallel=ParallelConfig(ray=True, workers=2))
    for s in (0, 1):
        assert _same_weights(seed_folder(tmp_path / "serial", s) / "policy",
                             seed_folder(tmp_path / "ray", s) / "policy")
