import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from digr.distill import DatasetConfig, build_dataset, load_dataset
from digr.distill import dataset as dataset_mod
from digr.distill.dataset import read_manifest, shard_plan
from digr.errors import DigrError
from digr.models import PolicyConfig, PolicyNet, load_policy
from digr.rl.rollouts import collect_states
from digr.saliency.perturbation import perturbation_saliency

TASK = "red-fetch-green"

SMALL = DatasetConfig(size=8, shard_size=2, radius=4, stride=8)


def _arrays(ds):
    return ds.states.numpy(), ds.maps.numpy(), ds.probs.numpy()


def test_dataset_contents_match_the_teacher(tiny_dataset, teacher_ckpt):
    ds = load_dataset(tiny_dataset, teacher=teacher_ckpt, task=TASK)
    m = ds.manifest
    assert len(ds) == 8 and m["count"] == 8 and m["complete"] and len(m["shards"]) == 2
    assert m["task"] == TASK and m["radius"] == 4 and m["stride"] == 8 and m["truncate"] is None
    assert m["shapes"]["states"] == [3, 64, 64] and m["teacher_sha256"]
    assert m["software"]["torch"] == torch.__version__  # which packages built it (digr.provenance)
    assert ds.states.dtype == torch.uint8 and ds.states.shape == (8, 3, 64, 64)
    assert ds.maps.dtype == torch.float32 and ds.maps.shape == (8, 64, 64)
    assert ds.probs.shape == (8, 4)
    teacher = load_policy(teacher_ckpt)
    x = ds.obs(slice(None))
    with torch.no_grad():
        assert torch.allclose(ds.probs, torch.softmax(teacher(x), -1), atol=1e-6)
    # The stored map is the teacher's perturbation map of the stored state (exact window by default);
    # the dataset computes shard by shard, so float32 rounding differs slightly from one 8-state call.
    assert torch.allclose(ds.maps, perturbation_saliency(teacher, x, radius=4, stride=8, truncate=None), atol=1e-4)
    assert (ds.maps.flatten(1).amax(1) == 1).all()  # each map normalised by its own max
    flat = ds.states.flatten(1)
    assert len({bytes(r.numpy()) for r in flat[:4]}) == 4, "a shard keeps each state once"


def test_truncated_dataset_records_and_uses_the_setting(tmp_path, teacher_ckpt):
    cfg = DatasetConfig(size=4, radius=4, stride=8, shard_size=4, truncate=3.5)
    m = build_dataset(teacher_ckpt, TASK, tmp_path / "d", cfg, workers=1)
    assert m["truncate"] == 3.5
    ds = load_dataset(tmp_path / "d", teacher=teacher_ckpt, task=TASK)
    teacher = load_policy(teacher_ckpt)
    expect = perturbation_saliency(teacher, ds.obs(slice(None)), radius=4, stride=8, truncate=3.5)
    assert torch.allclose(ds.maps, expect, atol=1e-4)
    with pytest.raises(DigrError, match="truncate"):  # a rerun with another window is refused
        build_dataset(teacher_ckpt, TASK, tmp_path / "d", DatasetConfig(size=4, radius=4, stride=8, shard_size=4),
                      workers=1)


def test_interrupted_build_resumes_to_the_same_dataset(tmp_path, teacher_ckpt, monkeypatch):
    full = build_dataset(teacher_ckpt, TASK, tmp_path / "full", SMALL, workers=1)
    assert full["complete"] and [s["index"] for s in full["shards"]] == [0, 1, 2, 3]

    real = dataset_mod._shard_arrays
    calls = []

    def dies_after_two(job, teacher):
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if killed while making the third shard
        calls.append(job["index"])
        return real(job, teacher)

    monkeypatch.setattr(dataset_mod, "_shard_arrays", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(teacher_ckpt, TASK, tmp_path / "part", SMALL, workers=1)
    m = read_manifest(tmp_path / "part")
    assert not m["complete"] and m["count"] == 4 and [s["index"] for s in m["shards"]] == [0, 1]
    with pytest.raises(DigrError, match="incomplete"):
        load_dataset(tmp_path / "part")

    monkeypatch.setattr(dataset_mod, "_shard_arrays", real)
    calls.clear()
    resumed = build_dataset(teacher_ckpt, TASK, tmp_path / "part", SMALL, workers=1)
    assert resumed["complete"] and resumed["count"] == 8
    a, b = load_dataset(tmp_path / "full"), load_dataset(tmp_path / "part")
    for x, y in zip(_arrays(a), _arrays(b)):
        assert np.array_equal(x, y)


def test_shard_written_but_not_recorded_is_adopted(tmp_path, teacher_ckpt):
    out = tmp_path / "ds"
    build_dataset(teacher_ckpt, TASK, out, SMALL, workers=1)
    m = read_manifest(out)
    # Simulate a kill between the shard's rename and the manifest update.
    m["shards"], m["count"], m["complete"] = m["shards"][:3], 6, False
    (out / "manifest.json").write_text(json.dumps(m))
    mtime = (out / "shard-00003.npz").stat().st_mtime_ns
    again = build_dataset(teacher_ckpt, TASK, out, SMALL, workers=1)
    assert again["complete"] and again["count"] == 8
    assert (out / "shard-00003.npz").stat().st_mtime_ns == mtime, "the shard is adopted, not remade"


def test_rerun_of_a_complete_dataset_changes_nothing(tmp_path, teacher_ckpt):
    out = tmp_path / "ds"
    build_dataset(teacher_ckpt, TASK, out, SMALL, workers=1)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.npz")}
    build_dataset(teacher_ckpt, TASK, out, SMALL, workers=1)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.npz")} == before


@pytest.mark.slow  # a local Ray: worker start-up dominates (make test-all)
def test_parallel_workers_make_the_same_dataset(tmp_path, teacher_ckpt, tiny_dataset):
    pytest.importorskip("ray")
    cfg = DatasetConfig(size=8, shard_size=4, radius=4, stride=8)  # same as tiny_dataset
    build_dataset(teacher_ckpt, TASK, tmp_path / "par", cfg, workers=2)
    a, b = load_dataset(tiny_dataset), load_dataset(tmp_path / "par")
    assert np.array_equal(a.states.numpy(), b.states.numpy())
    assert np.allclose(a.maps.numpy(), b.maps.numpy(), atol=1e-5)
    assert np.allclose(a.probs.numpy(), b.probs.numpy(), atol=1e-6)


def test_shard_plan_covers_the_size():
    assert shard_plan(10, 4) == [(0, 4), (1, 4), (2, 2)]
    assert shard_plan(8, 4) == [(0, 4), (1, 4)]


# -- bad input -----------------------------------------------------------------------------------
def test_dataset_from_another_teacher_is_rejected(tiny_dataset, other_teacher_ckpt):
    with pytest.raises(DigrError, match="was made from teacher .* not from"):
        load_dataset(tiny_dataset, teacher=other_teacher_ckpt)


def test_dataset_for_another_task_is_rejected(tiny_dataset):
    with pytest.raises(DigrError, match="was made for task 'red-fetch-green', not 'breakout'"):
        load_dataset(tiny_dataset, task="breakout")


def test_dataset_with_mismatched_shapes_is_rejected(tiny_dataset):
    policy = PolicyNet(PolicyConfig(obs_shape=(3, 32, 32), n_actions=4, convs=((4, 8, 8, 0),), hidden=8))
    with pytest.raises(DigrError, match="policy expects"):
        load_dataset(tiny_dataset, policy=policy)


def test_empty_or_missing_dataset_is_rejected(tmp_path, tiny_dataset):
    with pytest.raises(DigrError, match="not found"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DigrError, match="no manifest.json"):
        load_dataset(tmp_path / "plain")
    m = read_manifest(tiny_dataset)
    m.update(shards=[], count=0, complete=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DigrError, match="empty"):
        load_dataset(tmp_path / "empty")


def test_damaged_shard_is_rejected(tmp_path, teacher_ckpt):
    out = tmp_path / "ds"
    build_dataset(teacher_ckpt, TASK, out, SMALL, workers=1)
    (out / "shard-00001.npz").write_bytes(b"not a zip")
    with pytest.raises(DigrError, match="checksum"):
        load_dataset(out)


def test_rerun_with_other_settings_or_teacher_is_rejected(tmp_path, teacher_ckpt, other_teacher_ckpt):
    out = tmp_path / "ds"
    build_dataset(teacher_ckpt, TASK, out, DatasetConfig(size=2, shard_size=2, radius=4, stride=8), workers=1)
    with pytest.raises(DigrError, match="other settings .*radius"):
        build_dataset(teacher_ckpt, TASK, out, DatasetConfig(size=2, shard_size=2, radius=3, stride=8))
    with pytest.raises(DigrError, match="teacher_sha256"):
        build_dataset(other_teacher_ckpt, TASK, out, DatasetConfig(size=2, shard_size=2, radius=4, stride=8))


def test_bad_settings_are_rejected():
    with pytest.raises(DigrError):
        DatasetConfig(size=0).validate()
    with pytest.raises(DigrError):
        DatasetConfig(keep_prob=0.0).validate()


# -- kill -9 -------------------------------------------------------------------------------------
def test_kill_9_during_generation_then_rerun_completes(tmp_path, teacher_ckpt):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "digr.cli.main", "dataset", "--teacher", str(teacher_ckpt), "--task", TASK,
           "--size", "24", "--shard-size", "2", "--stride", "2", "--workers", "1", "--no-progress",
           "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not (out / "shard-00000.npz").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "no shard appeared"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = read_manifest(out)
    assert not killed["complete"], "the run finished before the kill; the test needs a slower run"
    from digr.cli.main import main

    assert main(cmd[3:]) == 0  # the rerun, in this process to save a second interpreter start
    ds = load_dataset(out, teacher=teacher_ckpt, task=TASK)
    assert len(ds) == 24 and [s["index"] for s in ds.manifest["shards"]] == list(range(12))
    assert not list(out.glob(".*tmp*")), "no temporary files left behind"
    # The first shards, made before the kill, are the ones an uninterrupted run makes.
    ref = collect_states(load_policy(teacher_ckpt), TASK, 2, keep_prob=0.25,
                                     rng=np.random.default_rng(np.random.SeedSequence([0, 0])))
    assert np.array_equal(ds.states[:2].numpy(), ref[0])


@pytest.mark.parametrize("field,value", [("count", "8"), ("complete", "yes"), ("shards", {}),
                                         ("shards", [{"index": 0, "file": "../x.npz", "count": 4}]),
                                         ("shapes", {"states": "3x64x64"})])
def test_manifest_with_wrong_types_is_one_line_error(tmp_path, tiny_dataset, field, value):
    import json
    import shutil

    from digr.distill import load_dataset
    from digr.errors import DigrError

    ds = tmp_path / "ds"
    shutil.copytree(tiny_dataset, ds)
    m = json.loads((ds / "manifest.json").read_text())
    m[field] = value
    (ds / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DigrError, match="manifest.json"):
        load_dataset(ds)


def test_truncated_shard_outside_the_manifest_is_removed_and_remade(tmp_path, teacher_ckpt):
    """A shard renamed into place just before a kill but damaged is dropped and made again."""
    import json

    from digr.distill import DatasetConfig, build_dataset, load_dataset

    out = tmp_path / "ds"
    cfg = DatasetConfig(size=8, shard_size=4, radius=4, stride=8)
    build_dataset(teacher_ckpt, "red-fetch-green", out, cfg, workers=1)
    good = (out / "shard-00001.npz").read_bytes()
    m = json.loads((out / "manifest.json").read_text())
    m["shards"] = m["shards"][:1]
    m["count"], m["complete"] = 4, False
    (out / "manifest.json").write_text(json.dumps(m))
    (out / "shard-00001.npz").write_bytes(good[: len(good) // 2])  # BadZipFile when read
    build_dataset(teacher_ckpt, "red-fetch-green", out, cfg, workers=1)
    assert (out / "shard-00001.npz").read_bytes() == good
    assert len(load_dataset(out)) == 8
