import copy
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from digr.distill import DistillConfig, Distiller, load_dataset, train_student
from digr.distill.distiller import init_student
from digr.distill.losses import distillation_loss, igr_loss
from digr.distill.pcgrad import flat_grad, pcgrad
from digr.errors import DigrError
from digr.models import load_policy
from digr.models.checkpoint import read_config

TASK = "red-fetch-green"


def tiny(**kw):
    base = dict(steps=4, batch_size=4, n_envs=2, buffer_size=16, eval_every=2, eval_episodes=2,
                checkpoint_every=2, log_every=1, torch_threads=None)
    return DistillConfig(**{**base, **kw}).validate()


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_update_applies_pcgrad_of_igr_and_weighted_kl(teacher_ckpt, tiny_dataset):
    teacher = load_policy(teacher_ckpt)
    ds = load_dataset(tiny_dataset)
    cfg = tiny(alpha=0.5)
    student = init_student(teacher.config, seed=3)
    obs = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        probs = torch.softmax(teacher(obs), -1)
    # The expected gradient, computed independently on a copy.
    ref = copy.deepcopy(student)
    params = [p for n, p in ref.named_parameters() if not n.startswith("v.")]
    g_kl = flat_grad(distillation_loss(ref(obs), probs)[0], params) * 0.5
    g_igr = flat_grad(igr_loss(ref, ds.obs(slice(0, 4)), ds.maps[:4], threshold=0.1)[0], params)
    want, conflict = pcgrad(g_igr, g_kl)

    d = Distiller(student, config=cfg)
    metrics = d.update(obs, probs, igr_obs=ds.obs(slice(0, 4)), igr_maps=ds.maps[:4])
    got = torch.cat([p.grad.reshape(-1) for p in d.params])
    assert torch.allclose(got, want, atol=1e-6)
    assert metrics["pcgrad/conflict_frac"] == float(conflict)
    assert {"distill/kl", "distill/igr", "distill/loss"} <= set(metrics)
    assert all(p.grad is None for n, p in student.named_parameters() if n.startswith("v."))


def _adversarial_case(teacher_ckpt, eps):
    """A student, an untouched copy of it with its actor parameters, a batch with the teacher's
    probabilities, and the MAD states the update will draw from generator seed 5 (2 steps)."""
    from digr.attacks.mad import MAD

    teacher = load_policy(teacher_ckpt)
    obs = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        probs = torch.softmax(teacher(obs), -1)
    student = init_student(teacher.config, seed=3)
    ref = copy.deepcopy(student)
    params = [p for n, p in ref.named_parameters() if not n.startswith("v.")]
    obs_adv = MAD(ref, eps=eps, steps=2, generator=torch.Generator().manual_seed(5)).perturb(obs)
    return student, ref, params, obs, probs, obs_adv


def test_adversarial_distillation_gradient(teacher_ckpt):
    """With adv_eps > 0 the KL objective's gradient is that of KL(s) + w * KL(s'), s' the MAD
    attack on the student drawn from the same generator stream, within eps of s."""
    eps, w = 8 / 255, 0.7
    student, ref, params, obs, probs, obs_adv = _adversarial_case(teacher_ckpt, eps)
    assert (obs_adv - obs).abs().max() <= eps + 1e-6 and not torch.equal(obs_adv, obs)
    kl_clean = distillation_loss(ref(obs), probs)[0]
    kl_adv = distillation_loss(ref(obs_adv), probs)[0]
    want = flat_grad(kl_clean + w * kl_adv, params) * 0.5

    d = Distiller(student, config=tiny(use_igr=False, alpha=0.5, adv_eps=eps, adv_weight=w, adv_steps=2))
    metrics = d.update(obs, probs, generator=torch.Generator().manual_seed(5))
    got = torch.cat([p.grad.reshape(-1) for p in d.params])
    assert torch.allclose(got, want, atol=1e-6)
    assert metrics["distill/kl_adv"] == pytest.approx(float(kl_adv), rel=1e-5)
    # The attack moved the student away from the teacher: the adversarial KL is the larger one.
    assert metrics["distill/kl_adv"] > metrics["distill/kl"]


def test_projected_adversarial_gradient(teacher_ckpt):
    """With adv_project the KL gradient is g_clean + w * g_adv', g_adv' the adversarial KL's
    gradient less its component along g_clean where they conflict (computed here by hand), so the
    update never opposes the clean KL's gradient."""
    eps, w = 8 / 255, 0.7
    student, ref, params, obs, probs, obs_adv = _adversarial_case(teacher_ckpt, eps)
    g_clean = flat_grad(distillation_loss(ref(obs), probs)[0], params)
    g_adv = flat_grad(distillation_loss(ref(obs_adv), probs)[0], params)
    dot = torch.dot(g_adv, g_clean)
    g_adv_p = g_adv - (dot / torch.dot(g_clean, g_clean)) * g_clean if dot < 0 else g_adv
    want = (g_clean + w * g_adv_p) * 0.5

    cfg = tiny(use_igr=False, alpha=0.5, adv_eps=eps, adv_weight=w, adv_steps=2, adv_project=True)
    d = Distiller(student, config=cfg)
    metrics = d.update(obs, probs, generator=torch.Generator().manual_seed(5))
    got = torch.cat([p.grad.reshape(-1) for p in d.params])
    assert torch.allclose(got, want, atol=1e-6)
    assert metrics["distill/adv_conflict"] == float(dot < 0)
    assert torch.dot(got, g_clean) >= -1e-9  # never against the clean KL


def test_adversarial_weight_zero_is_the_clean_update(teacher_ckpt):
    teacher = load_policy(teacher_ckpt)
    obs = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        probs = torch.softmax(teacher(obs), -1)
    grads = []
    for kw in ({}, {"adv_eps": 16 / 255, "adv_weight": 0.0}):
        d = Distiller(init_student(teacher.config, seed=3), config=tiny(use_igr=False, alpha=1.0, **kw))
        d.update(obs, probs)
        grads.append(torch.cat([p.grad.reshape(-1) for p in d.params]))
    assert torch.allclose(grads[0], grads[1], atol=1e-7)


@pytest.mark.parametrize("bad", [{"adv_eps": -0.1}, {"adv_eps": 1.5}, {"adv_weight": -1.0}, {"adv_steps": 0}])
def test_bad_adversarial_settings_are_refused(bad):
    with pytest.raises(DigrError, match=next(iter(bad))):
        tiny(**bad)


@pytest.mark.parametrize("bad", [{"rollout_greedy": -0.1}, {"rollout_greedy": 1.5}, {"rollout_teacher": 2.0},
                                 {"rollout_teacher": float("nan")}])
def test_bad_rollout_settings_are_refused(bad):
    with pytest.raises(DigrError, match=next(iter(bad))):
        tiny(**bad)


class _Fixed(torch.nn.Module):
    """A policy whose probabilities are ``probs`` on every state."""

    def __init__(self, probs):
        super().__init__()
        self.logits = torch.log(torch.tensor(probs))

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1)


@pytest.mark.parametrize("greedy,teacher_prob", [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (1.0, 0.5)])
def test_rollouts_act_greedily_or_as_the_teacher(monkeypatch, greedy, teacher_prob):
    import numpy as np

    from digr.distill import trainer

    taken = []

    class Env:
        def reset(self, seed=None):
            return np.zeros((4, 4, 1), np.uint8), {}

        def step(self, a):
            taken.append(a)
            return np.zeros((4, 4, 1), np.uint8), 0.0, False, False, {}

        def close(self):
            pass

    monkeypatch.setattr(trainer, "make_env", lambda spec: Env())
    teacher = _Fixed([0.1, 0.1, 0.1, 0.1, 0.6])  # the teacher's most likely action is 4
    r = trainer.Rollouts(TASK, 4, rng=np.random.default_rng(0), greedy=greedy, teacher=teacher,
                         teacher_prob=teacher_prob)
    monkeypatch.setattr(trainer, "to_tensor", lambda raw, shape: torch.zeros(len(raw), 1))
    policy = _Fixed([0.1, 0.6, 0.1, 0.1, 0.1])  # the student's most likely action is 1
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        r.step(policy, generator=gen)
    student, by_teacher = taken.count(1) / len(taken), taken.count(4) / len(taken)
    if greedy == 0.0:
        assert 0.45 < student < 0.75  # sampled: action 1 about 60% of the time
    else:
        assert student + by_teacher == 1.0  # only the two greedy actions are taken
        assert by_teacher == pytest.approx(teacher_prob, abs=0.1)


def test_distillation_updates_reduce_kl(teacher_ckpt):
    teacher = load_policy(teacher_ckpt)
    obs = torch.rand(16, 3, 64, 64)
    with torch.no_grad():
        probs = torch.softmax(teacher(obs) * 5, -1)  # a confident target
    d = Distiller(init_student(teacher.config, seed=0), config=tiny(use_igr=False, alpha=1.0))
    first = d.update(obs, probs)["distill/kl"]
    for _ in range(30):
        last = d.update(obs, probs)["distill/kl"]
    assert last < 0.5 * first


def test_same_seed_same_student(teacher_ckpt):
    cfg = load_policy(teacher_ckpt).config
    a, b, c = init_student(cfg, seed=1), init_student(cfg, seed=1), init_student(cfg, seed=2)
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))


def test_train_student_end_to_end_and_resume(tmp_path, teacher_ckpt, tiny_dataset):
    out = tmp_path / "run"
    stats = train_student(teacher_ckpt, tiny_dataset, TASK, out, tiny(steps=4))
    assert stats["steps"] == 4 and 0.0 <= stats["eval/success_rate"] <= 1.0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["distill"]["alpha"] == 0.01 and cfg["distill"]["learning_rate"] == 1e-3  # Table 3 defaults
    assert cfg["teacher_sha256"] and cfg["dataset_sha256"]
    assert cfg["software"]["torch"] == torch.__version__ and cfg["software"]["digr"] == cfg["digr_version"]
    rows = _rows(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert {"distill/kl", "distill/igr", "pcgrad/conflict_frac", "wall_s"} <= set(rows[0])
    assert "eval/success_rate" in rows[1] and "eval/success_rate" not in rows[0]
    assert read_config(out / "policy")["meta"]["steps"] == 4
    first = load_policy(out, task=TASK)

    stats = train_student(teacher_ckpt, tiny_dataset, TASK, out, tiny(steps=7))  # continues from 4
    assert stats["steps"] == 7
    assert [r["step"] for r in _rows(out)] == [1, 2, 3, 4, 5, 6, 7]
    assert read_config(out / "policy")["meta"]["steps"] == 7
    opt = torch.load(out / "resume" / "optimizer.pt", weights_only=True)
    assert int(opt["state"][0]["step"]) == 7, "the optimizer state was resumed, not restarted"
    x = torch.rand(1, 3, 64, 64)
    assert not torch.equal(first(x), load_policy(out)(x))

    again = train_student(teacher_ckpt, tiny_dataset, TASK, out, tiny(steps=7))  # nothing to do
    assert again["steps"] == 7 and len(_rows(out)) == 7


def test_no_igr_is_distillation_only(tmp_path, teacher_ckpt):
    out = tmp_path / "run"
    stats = train_student(teacher_ckpt, None, TASK, out, tiny(use_igr=False, steps=2, eval_episodes=0))
    assert stats["steps"] == 2 and "distill/igr" not in stats
    assert all(r["pcgrad/conflict_frac"] == 0.0 for r in _rows(out))
    assert read_config(out / "policy")["meta"]["trainer"] == "distill-only"


@pytest.mark.parametrize("anneal", [False, True])
def test_learning_rate_is_constant_or_annealed_linearly(monkeypatch, tmp_path, teacher_ckpt, anneal):
    from digr.distill import trainer

    seen, update = [], Distiller.update

    def spy(self, *a, **kw):
        seen.append(self.optimizer.param_groups[0]["lr"])
        return update(self, *a, **kw)

    monkeypatch.setattr(trainer.Distiller, "update", spy)
    cfg = tiny(use_igr=False, alpha=1.0, steps=4, eval_episodes=0, learning_rate=1e-3, lr_anneal=anneal)
    train_student(teacher_ckpt, None, TASK, tmp_path / "run", cfg)
    want = [1e-3, 7.5e-4, 5e-4, 2.5e-4] if anneal else [1e-3] * 4
    assert seen == pytest.approx(want)
    assert [trainer.annealed_lr(cfg, s) for s in range(4)] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])


def test_bad_inputs_are_rejected(tmp_path, teacher_ckpt, other_teacher_ckpt, tiny_dataset):
    with pytest.raises(DigrError, match="was made from teacher"):
        train_student(other_teacher_ckpt, tiny_dataset, TASK, tmp_path / "a", tiny())
    with pytest.raises(DigrError, match="--dataset"):
        train_student(teacher_ckpt, None, TASK, tmp_path / "b", tiny())
    train_student(teacher_ckpt, tiny_dataset, TASK, tmp_path / "c", tiny(steps=1, eval_episodes=0))
    with pytest.raises(DigrError, match="other settings .*alpha"):
        train_student(teacher_ckpt, tiny_dataset, TASK, tmp_path / "c", tiny(steps=2, alpha=0.5))
    with pytest.raises(DigrError):
        tiny(optimizer="sgd")
    with pytest.raises(DigrError):
        tiny(threshold=2.0)


def test_cli_dataset_then_distill(tmp_path, teacher_ckpt, capsys):
    from digr.cli.main import main

    ds = tmp_path / "ds"
    assert main(["dataset", "--teacher", str(teacher_ckpt), "--task", TASK, "--size", "4",
                 "--shard-size", "2", "--stride", "8", "--workers", "1", "--out", str(ds), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 4
    run = tmp_path / "run"
    assert main(["distill", "--teacher", str(teacher_ckpt), "--dataset", str(ds), "--task", TASK, "--out",
                 str(run), "--steps", "2", "--batch-size", "4", "--n-envs", "2", "--eval-episodes", "1",
                 "--alpha", "0.1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["steps"] == 2 and res["policy"] == str(run / "policy")
    assert json.loads((run / "config.json").read_text())["distill"]["alpha"] == 0.1
    # Bad input is one line on stderr and exit 2.
    assert main(["distill", "--teacher", str(teacher_ckpt), "--dataset", str(tmp_path), "--task", TASK,
                 "--out", str(tmp_path / "x"), "--steps", "1"]) == 2
    assert "digr: error:" in capsys.readouterr().err


def test_kill_9_during_training_then_rerun_completes(tmp_path, teacher_ckpt, tiny_dataset):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "digr.cli.main", "distill", "--teacher", str(teacher_ckpt), "--dataset",
           str(tiny_dataset), "--task", TASK, "--out", str(out), "--steps", "40", "--batch-size", "4",
           "--n-envs", "2", "--checkpoint-every", "5", "--log-every", "3", "--eval-episodes", "0", "--threads", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not (out / "resume" / "state.json").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    resume = out / "resume" if (out / "resume").exists() else out / ".resume.old"  # killed mid-swap
    killed_at = json.loads((resume / "state.json").read_text())["step"]
    assert 0 < killed_at < 40
    from digr.cli.main import main

    assert main(cmd[3:]) == 0  # the rerun, in this process to save a second interpreter start
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [*range(3, 40, 3), 40], "one row per logged step: no duplicates, no gaps"
    assert read_config(out / "policy")["meta"]["steps"] == 40


def test_fls_student_is_the_teachers_network_with_fls(tmp_path, teacher_ckpt, tiny_dataset):
    from digr.models.fls import fls_config, fls_variant
    from digr.saliency import get_method

    out = tmp_path / "run"
    cfg = tiny(steps=2, eval_episodes=0, student_fls="sparse-sum")
    assert train_student(teacher_ckpt, tiny_dataset, TASK, out, cfg)["steps"] == 2
    student = load_policy(out, task=TASK)
    teacher = load_policy(teacher_ckpt, task=TASK)
    assert student.config == fls_config(teacher.config, "sparse-sum") and fls_variant(student.config) == "sparse-sum"
    assert json.loads((out / "config.json").read_text())["policy"]["attention"] == "fls"
    maps = get_method("fls", student).attribute(torch.rand(2, 3, 64, 64))  # its free map works
    assert maps.shape == (2, 64, 64)
    assert train_student(teacher_ckpt, tiny_dataset, TASK, out, tiny(steps=3, eval_episodes=0,
                                                                    student_fls="sparse-sum"))["steps"] == 3
    with pytest.raises(DigrError, match="student_fls"):
        tiny(student_fls="nope")


def test_pooled_student_is_the_teachers_network_on_pooled_input(tmp_path, teacher_ckpt, tiny_dataset):
    from digr.models.cnn import pooled_student_config

    out = tmp_path / "run"
    assert train_student(teacher_ckpt, tiny_dataset, TASK, out, tiny(steps=2, eval_episodes=0,
                                                                    student_input_pool=2))["steps"] == 2
    student, teacher = load_policy(out, task=TASK), load_policy(teacher_ckpt, task=TASK)
    assert student.config == pooled_student_config(teacher.config, 2)
    with pytest.raises(DigrError, match="student_input_pool"):
        tiny(student_input_pool=0)


def test_init_warm_starts_from_a_checkpoint(tmp_path, teacher_ckpt, other_teacher_ckpt, tiny_dataset):
    """--init: the student starts as the named checkpoint (its own architecture), or as the folded
    teacher for a pooled student; a wrong architecture or another init on resume is refused."""
    from digr.models.cnn import pooled_state_dict

    teacher = load_policy(teacher_ckpt, task=TASK)
    # steps=0 saves the starting weights untouched.
    out = tmp_path / "same"
    train_student(teacher_ckpt, tiny_dataset, TASK, out, tiny(steps=0, eval_episodes=0), init=teacher_ckpt)
    got = load_policy(out, task=TASK).state_dict()
    assert all(torch.equal(got[k], v) for k, v in teacher.state_dict().items())
    assert json.loads((out / "config.json").read_text())["init_sha256"]

    out = tmp_path / "pooled"
    train_student(teacher_ckpt, tiny_dataset, TASK, out, tiny(steps=0, eval_episodes=0, student_input_pool=2),
                  init=teacher_ckpt)
    got = load_policy(out, task=TASK).state_dict()
    assert all(torch.equal(got[k], v) for k, v in pooled_state_dict(teacher, 2).items())

    # Two updates from the warm start; a rerun naming another checkpoint is refused.
    out = tmp_path / "run"
    train_student(teacher_ckpt, tiny_dataset, TASK, out, tiny(steps=2, eval_episodes=0), init=teacher_ckpt)
    with pytest.raises(DigrError, match="init_sha256"):
        train_student(teacher_ckpt, tiny_dataset, TASK, out, tiny(steps=4, eval_episodes=0),
                      init=other_teacher_ckpt)
    with pytest.raises(DigrError, match="init_sha256"):
        train_student(teacher_ckpt, tiny_dataset, TASK, out, tiny(steps=4, eval_episodes=0))
    assert train_student(teacher_ckpt, tiny_dataset, TASK, out, tiny(steps=4, eval_episodes=0),
                         init=teacher_ckpt)["steps"] == 4
    # A pooled checkpoint cannot start an unpooled student.
    with pytest.raises(DigrError, match="architecture does not match"):
        train_student(teacher_ckpt, tiny_dataset, TASK, tmp_path / "bad", tiny(steps=0, eval_episodes=0),
                      init=tmp_path / "pooled")
    # Runs without --init keep config.json as before (no init keys).
    out = tmp_path / "plain"
    train_student(teacher_ckpt, tiny_dataset, TASK, out, tiny(steps=0, eval_episodes=0))
    assert "init" not in json.loads((out / "config.json").read_text())


def test_warm_start_gives_a_softplus_student_the_teachers_weights(tmp_path, teacher_ckpt, tiny_dataset):
    """A smooth-unit student (--student-softplus) starts from every tensor of the ReLU teacher,
    trains, and is saved and loaded as a softplus network."""
    cfg = tiny(steps=2, warm_start=True, student_softplus=20.0, igr_normalizer="mean+pearson", recipe="relu",
               eval_episodes=0)
    train_student(teacher_ckpt, tiny_dataset, TASK, tmp_path / "s", cfg)
    student = load_policy(tmp_path / "s")
    assert student.config.softplus_beta == 20.0
    assert any(isinstance(m, torch.nn.Softplus) for m in student.modules())
    info = json.loads((tmp_path / "s" / "config.json").read_text())
    assert info["policy"]["softplus_beta"] == 20.0 and info["init_sha256"] == info["teacher_sha256"]
    assert all(torch.isfinite(v).all() for v in student.state_dict().values())


def test_warm_start_puts_the_teachers_weights_behind_the_blur(tmp_path, teacher_ckpt, tiny_dataset):
    """A warm-started student: the teacher's tensors, a blur in front, recorded as the init."""
    cfg = tiny(steps=0, warm_start=True, student_input_blur=1.5, igr_normalizer="mean", recipe="relu")
    train_student(teacher_ckpt, tiny_dataset, TASK, tmp_path / "s", cfg)
    student, teacher = load_policy(tmp_path / "s"), load_policy(teacher_ckpt)
    assert student.config.input_blur == 1.5
    assert all(torch.equal(student.state_dict()[k], v) for k, v in teacher.state_dict().items())
    info = json.loads((tmp_path / "s" / "config.json").read_text())
    assert info["init_sha256"] == info["teacher_sha256"] and info["distill"]["recipe"] == "relu"
