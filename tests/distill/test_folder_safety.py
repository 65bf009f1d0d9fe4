"""Nothing digr did not make is replaced, and nothing it made is left half-consistent."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from digr.cli.main import main
from digr.errors import DigrError
from digr.io import claim_folder, folder_kind
from digr.models import PolicyConfig, PolicyNet, load_policy, save_policy

TINY = PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((4, 8, 8, 0), (8, 3, 1, 1)), hidden=16)


def _files(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_folder_kinds(tmp_path):
    assert folder_kind(tmp_path / "nope") is None
    (tmp_path / "empty").mkdir()
    assert folder_kind(tmp_path / "empty") is None
    (tmp_path / "f").write_text("x")
    assert folder_kind(tmp_path / "f") == "file"
    save_policy(PolicyNet(TINY), tmp_path / "ck", task="red-fetch-green")
    assert folder_kind(tmp_path / "ck") == "checkpoint"
    for name, cfg, kind in [("t", {"ppo": {}}, "teacher run"), ("s", {"distill": {}}, "student run"),
                            ("bad", "{oops", "other")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
        assert folder_kind(tmp_path / name) == kind
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "manifest.json").write_text("{}")
    assert folder_kind(tmp_path / "ds") == "dataset"


@pytest.mark.parametrize("make", ["file", "user-folder", "dataset", "student"])
def test_save_policy_never_replaces_what_is_not_a_checkpoint(tmp_path, make):
    dest = tmp_path / "out"
    if make == "file":
        dest.write_text("precious")
    else:
        dest.mkdir()
        name = {"user-folder": "notes.txt", "dataset": "manifest.json", "student": "config.json"}[make]
        (dest / name).write_text(json.dumps({"distill": {}}) if make == "student" else "precious")
    before = _files(tmp_path)
    with pytest.raises(DigrError, match="use another output path"):
        save_policy(PolicyNet(TINY), dest, task="red-fetch-green")
    assert _files(tmp_path) == before and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_save_policy_replaces_its_own_checkpoint(tmp_path):
    torch.manual_seed(0)
    a, b = PolicyNet(TINY), PolicyNet(TINY)
    save_policy(a, tmp_path / "ck", task="red-fetch-green")
    save_policy(b, tmp_path / "ck", task="red-fetch-green")
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(load_policy(tmp_path / "ck")(x), b(x))


def test_distill_refuses_a_dataset_folder_and_a_teacher_run(tmp_path, teacher_ckpt, tiny_dataset):
    from digr.distill import DistillConfig, train_student

    cfg = DistillConfig(steps=1, batch_size=4, n_envs=2, buffer_size=8, eval_episodes=0)
    before = _files(tiny_dataset)
    with pytest.raises(DigrError, match="not a student run"):
        train_student(teacher_ckpt, tiny_dataset, "red-fetch-green", tiny_dataset, cfg)
    assert _files(tiny_dataset) == before
    run = tmp_path / "teacher-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "red-fetch-green", "ppo": {}}))
    assert main(["distill", "--teacher", str(teacher_ckpt), "--task", "red-fetch-green", "--no-igr",
                 "--out", str(run), "--steps", "1", "--no-progress"]) == 2
    assert json.loads((run / "config.json").read_text()) == {"task": "red-fetch-green", "ppo": {}}


def test_train_refuses_a_student_run(tmp_path, capsys):
    run = tmp_path / "student"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"distill": {"alpha": 1}}))
    before = _files(run)
    assert main(["train", "--task", "red-fetch-green", "--out", str(run), "--timesteps", "16",
                 "--no-progress", "--threads", "1"]) == 2
    assert "not a teacher run" in capsys.readouterr().err
    assert _files(run) == before


def test_corrupt_student_config_is_refused_not_replaced(tmp_path, teacher_ckpt):
    from digr.distill import DistillConfig, train_student

    cfg = DistillConfig(steps=2, batch_size=4, n_envs=2, buffer_size=8, eval_episodes=0, use_igr=False,
                        checkpoint_every=1)
    out = tmp_path / "run"
    train_student(teacher_ckpt, None, "red-fetch-green", out, cfg)
    (out / "config.json").write_text('{"distill": ')  # damaged
    with pytest.raises(DigrError):
        train_student(teacher_ckpt, None, "red-fetch-green", out, cfg)
    assert (out / "config.json").read_text() == '{"distill": '


def test_distill_recovers_what_a_kill_during_a_save_left(tmp_path, teacher_ckpt):
    from digr.distill import DistillConfig, train_student

    cfg = DistillConfig(steps=2, batch_size=4, n_envs=2, buffer_size=8, eval_episodes=0, use_igr=False,
                        checkpoint_every=1)
    out = tmp_path / "run"
    train_student(teacher_ckpt, None, "red-fetch-green", out, cfg)
    # a temp folder of a killed first save, and policy/ caught between atomic_dir's two renames
    (out / ".policy.x1y2").mkdir()
    (out / ".policy.x1y2" / "config.json").write_text("{}")
    (out / "policy").rename(out / ".policy.old")
    stats = train_student(teacher_ckpt, None, "red-fetch-green", out, cfg)
    assert stats["steps"] == 2 and load_policy(out / "policy") is not None
    assert not [p.name for p in out.iterdir() if p.name.startswith(".policy")]


def test_distill_refuses_a_malformed_resume_state(tmp_path, teacher_ckpt):
    from digr.distill import DistillConfig, train_student

    cfg = DistillConfig(steps=2, batch_size=4, n_envs=2, buffer_size=8, eval_episodes=0, use_igr=False,
                        checkpoint_every=1)
    out = tmp_path / "run"
    train_student(teacher_ckpt, None, "red-fetch-green", out, cfg)
    (out / "resume" / "state.json").write_text(json.dumps({"step": "2"}))
    with pytest.raises(DigrError, match="not a resume state"):
        train_student(teacher_ckpt, None, "red-fetch-green", out, DistillConfig(**{**cfg.__dict__, "steps": 3}))


@pytest.mark.parametrize("poison", ["nan", "inf", "int64"])
def test_broken_weights_do_not_load(tmp_path, poison):
    ck = save_policy(PolicyNet(TINY), tmp_path / "ck", task="red-fetch-green")
    state = load_file(str(ck / "model.safetensors"))
    w = state["pi.weight"]
    state["pi.weight"] = w.to(torch.int64) if poison == "int64" else w.index_fill(0, torch.tensor([0]), float(poison))
    save_file(state, str(ck / "model.safetensors"))
    with pytest.raises(DigrError, match="pi.weight"):
        load_policy(ck)


def test_claim_folder_accepts_new_empty_and_own(tmp_path):
    assert claim_folder(tmp_path / "new", "dataset") == tmp_path / "new"
    (tmp_path / "e").mkdir()
    claim_folder(tmp_path / "e", "student run")


def test_out_of_range_topk_leaves_nothing_behind(tmp_path, teacher_ckpt, tiny_dataset):
    from digr.distill import DistillConfig, train_student

    cfg = DistillConfig(steps=1, batch_size=4, n_envs=2, buffer_size=8, eval_episodes=0,
                        igr_normalizer="topk", igr_topk=64 * 64 + 1)
    with pytest.raises(DigrError, match="igr_topk"):
        train_student(teacher_ckpt, tiny_dataset, "red-fetch-green", tmp_path / "run", cfg)
    assert not (tmp_path / "run").exists()


def test_pipeline_state_that_is_not_an_object_is_refused(tmp_path, teacher_ckpt):
    from digr.pipeline import Pipeline

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "pipeline.json").write_text("[1, 2]")
    with pytest.raises(DigrError, match="not a pipeline state"):
        Pipeline("red-fetch-green", tmp_path / "p", teacher=teacher_ckpt)
