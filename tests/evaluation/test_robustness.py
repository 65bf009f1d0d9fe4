"""Robustness evaluation on Red-Fetch-Green with tiny untrained policies (fast), and `digr evaluate
robustness-sweep` with the resumable sweep behind it."""

from __future__ import annotations

import json

import pytest
import torch

import digr.evaluation.robustness as rob
from digr.cli.main import main
from digr.errors import DigrError
from digr.evaluation.performance import evaluate_policy
from digr.evaluation.robustness import DEFAULT_EPS, evaluate_robustness, robustness_sweep
from digr.evaluation.settings import RobustnessSweepConfig
from digr.models import PolicyConfig, PolicyNet, save_policy

TASK = "red-fetch-green"


# tests/conftest.py already runs torch on one thread (tiny batches on a busy machine).


def tiny_rfg_policy(seed: int = 0, *, head_gain: float = 1.0) -> PolicyNet:
    torch.manual_seed(seed)
    policy = PolicyNet(PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((4, 8, 8, 0),), hidden=8))
    with torch.no_grad():
        policy.pi.weight.mul_(head_gain)
    return policy.eval()


def test_default_eps_sweep_is_in_pixel_steps():
    assert DEFAULT_EPS[0] == 0.0
    assert [round(e * 255) for e in DEFAULT_EPS] == [0, 1, 2, 4, 8, 16]


def test_evaluate_robustness_result_and_determinism():
    policy = tiny_rfg_policy(0)
    kw = dict(attack="PGD", eps=8 / 255, episodes=2, seed=3, steps=2)
    a = evaluate_robustness(policy, TASK, **kw)
    for key in ("success_rate", "mean_return", "std_return", "episodes", "attack", "eps",
                "action_flip_rate"):
        assert key in a
    assert a["attack"] == "pgd" and a["eps"] == pytest.approx(8 / 255) and a["episodes"] == 2
    assert 0.0 <= a["success_rate"] <= 1.0 and 0.0 <= a["action_flip_rate"] <= 1.0
    assert a["attack_settings"] == {"steps": 2}
    assert evaluate_robustness(policy, TASK, **kw) == a
    assert all(p.grad is None for p in policy.parameters())


def test_eps_zero_is_the_clean_evaluation():
    policy = tiny_rfg_policy(1)
    clean = evaluate_policy(policy, TASK, episodes=2, seed=5)
    attacked = evaluate_robustness(policy, TASK, attack="fgsm", eps=0.0, episodes=2, seed=5)
    assert {k: attacked[k] for k in clean} == clean
    assert attacked["action_flip_rate"] == 0.0


def test_action_freq_counts_every_greedy_step():
    policy = tiny_rfg_policy(1)
    with torch.no_grad():  # a head that always prefers action 2
        policy.pi.weight.zero_()
        policy.pi.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0]))
    r = evaluate_policy(policy, TASK, episodes=2, seed=5)
    assert r["action_freq"] == [0.0, 0.0, 1.0, 0.0]
    mixed = evaluate_policy(tiny_rfg_policy(1), TASK, episodes=2, seed=5)
    assert len(mixed["action_freq"]) == 4 and abs(sum(mixed["action_freq"]) - 1.0) < 1e-5


def test_policy_acts_on_the_attacked_observation():
    # A confident head and a large eps: FGSM flips the greedy action on a good share of steps.
    policy = tiny_rfg_policy(2, head_gain=50.0)
    r = evaluate_robustness(policy, TASK, attack="fgsm", eps=0.25, episodes=2, seed=0)
    assert r["action_flip_rate"] > 0.0


def test_sweep_rows():
    policy = tiny_rfg_policy(3)
    rows = robustness_sweep(policy, TASK, attacks=("pgd", "mi_fgsm"), eps_values=(0.0, 4 / 255),
                            episodes=1, seed=0, steps=2)
    assert [(r["attack"], round(r["eps"] * 255)) for r in rows] == [
        ("pgd", 0), ("pgd", 4), ("mi-fgsm", 0), ("mi-fgsm", 4)]
    # eps = 0 is the clean policy whatever the attack.
    strip = lambda r: {k: v for k, v in r.items() if k != "attack"}  # noqa: E731
    assert strip(rows[0]) == strip(rows[2])


def test_sweep_with_bad_workers_is_refused():
    with pytest.raises(DigrError, match="workers"):
        robustness_sweep(tiny_rfg_policy(4), TASK, workers=0, attacks=("fgsm",), eps_values=(0.0,), episodes=1)


@pytest.mark.slow  # a local Ray: worker start-up dominates (make test-all)
def test_sweep_as_ray_tasks_gives_the_same_rows():
    pytest.importorskip("ray")
    policy = tiny_rfg_policy(4, head_gain=20.0)
    kw = dict(attacks=("fgsm",), eps_values=(0.0, 8 / 255, 64 / 255), episodes=1, seed=1)
    serial = robustness_sweep(policy, TASK, **kw)
    pooled = robustness_sweep(policy, TASK, workers=2, **kw)
    assert pooled == serial
    assert len({r["action_flip_rate"] for r in serial}) > 1  # the points really differ


def test_bad_input():
    policy = tiny_rfg_policy(0)
    with pytest.raises(DigrError, match="unknown attack"):
        evaluate_robustness(policy, TASK, attack="deepfool", eps=0.01, episodes=1)
    for eps in (-0.01, 1.01):
        with pytest.raises(DigrError, match="eps"):
            evaluate_robustness(policy, TASK, attack="fgsm", eps=eps, episodes=1)
    with pytest.raises(DigrError, match="episodes"):
        evaluate_robustness(policy, TASK, attack="fgsm", eps=0.01, episodes=0)


def test_cli_json(tmp_path, capsys):
    ckpt = save_policy(tiny_rfg_policy(4), tmp_path / "policy", task=TASK)
    rc = main(["evaluate", "robustness", "--policy", str(ckpt), "--task", TASK, "--attack", "mad",
               "--eps", "4/255", "--episodes", "1", "--seed", "2", "--attack-steps", "2", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["attack"] == "mad" and out["eps"] == pytest.approx(4 / 255) and out["episodes"] == 1
    assert 0.0 <= out["success_rate"] <= 1.0 and isinstance(out["mean_return"], float)


@pytest.mark.parametrize("args, message", [
    (["--attack", "nope", "--eps", "0.01"], "unknown attack"),
    (["--attack", "fgsm", "--eps=-0.01"], "eps"),
    (["--attack", "fgsm", "--eps", "2"], "eps"),
    (["--attack", "fgsm", "--eps", "0.01", "--attack-steps", "3"], "takes no setting"),
])
def test_cli_errors(tmp_path, capsys, args, message):
    ckpt = save_policy(tiny_rfg_policy(0), tmp_path / "policy", task=TASK)
    rc = main(["evaluate", "robustness", "--policy", str(ckpt), "--task", TASK, "--episodes", "1",
               *args])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("digr: error:") and message in err


def test_surrogate_softplus_attacks_through_the_smooth_twin(monkeypatch):
    import digr.evaluation.robustness as rob

    seen = []
    real = rob.get_attack
    monkeypatch.setattr(rob, "get_attack", lambda name, p, **kw: seen.append(p) or real(name, p, **kw))
    policy = tiny_rfg_policy(5)
    own = evaluate_robustness(policy, TASK, attack="fgsm", eps=4 / 255, episodes=1, seed=0)
    twin = evaluate_robustness(policy, TASK, attack="fgsm", eps=4 / 255, episodes=1, seed=0,
                               surrogate_softplus=50)
    assert own["surrogate_softplus"] == 0.0 and twin["surrogate_softplus"] == 50.0
    assert seen[0] is policy  # the paper's setting: the policy's own gradient
    assert seen[1] is not policy and seen[1].config.softplus_beta == 50.0 and policy.config.softplus_beta == 0
    assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(), seen[1].state_dict().values()))
    rows = robustness_sweep(policy, TASK, attacks=("fgsm",), eps_values=(4 / 255,), episodes=1,
                            seed=0, surrogate_softplus=50)
    assert rows[0]["surrogate_softplus"] == 50.0 and {**rows[0]} == twin
    for bad in (-1, float("nan"), 1e9, "50"):
        with pytest.raises(DigrError, match="surrogate_softplus"):
            evaluate_robustness(policy, TASK, attack="fgsm", eps=4 / 255, episodes=1, surrogate_softplus=bad)


def test_cli_surrogate_softplus(tmp_path, capsys):
    ckpt = save_policy(tiny_rfg_policy(4), tmp_path / "policy", task=TASK)
    base = ["evaluate", "robustness", "--policy", str(ckpt), "--task", TASK, "--attack", "fgsm",
            "--eps", "4/255", "--episodes", "1"]
    assert main([*base, "--surrogate-softplus", "50", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["surrogate_softplus"] == 50.0
    assert main([*base, "--surrogate-softplus=-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("digr: error:") and "surrogate_softplus" in err


# -- digr evaluate robustness-sweep ------------------------------------------------------------------

# one-step attacks: an untrained policy's episodes run to the step limit
ARGS = ["--task", TASK, "--attacks", "mad,pgd", "--eps", "0,4/255", "--attack-steps", "1", "--episodes", "1",
        "--seed", "1"]


@pytest.fixture
def fake_points(monkeypatch):
    """Replace the rollouts by a made-up figure per point (the file, resume and baseline logic do
    not depend on them; one test below runs the real ones); returns the points rolled out."""
    calls = []

    def point(args, policy):
        task, name, eps, episodes, seed = args[:5]
        calls.append((name, eps))
        rate = round(1.0 - eps * 10 - 0.01 * len(name), 6)
        return {"attack": name, "eps": eps, "eps_255": eps * 255, "episodes": episodes, "seed": seed,
                "success_rate": rate, "mean_return": rate}

    monkeypatch.setattr(rob, "_sweep_point", point)
    return calls


def run_cli(*argv: str) -> int:
    """``main``'s exit status, whether the error came from argparse (SystemExit) or digr."""
    try:
        return main(["evaluate", "robustness-sweep", *argv])
    except SystemExit as exc:
        return int(exc.code)


def test_the_sweep_defaults_are_the_reports():
    from digr.attacks import ATTACK_NAMES

    assert RobustnessSweepConfig.eps == rob.DEFAULT_EPS
    assert RobustnessSweepConfig.attacks == tuple(ATTACK_NAMES)


def test_cli_rows_are_the_point_commands_rows(tmp_path, capsys):
    """The one test with real rollouts: a sweep's point is `digr evaluate robustness`'s figure."""
    ckpt = save_policy(tiny_rfg_policy(2, head_gain=20.0), tmp_path / "p", task=TASK)
    point = ["--attack-steps", "1", "--episodes", "1", "--seed", "1", "--json"]
    assert run_cli("--policy", str(ckpt), "--task", TASK, "--attacks", "pgd", "--eps", "4/255", *point) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(r["attack"], round(r["eps"] * 255)) for r in out["points"]] == [("pgd", 4)]
    assert out["metric"] == "success_rate" and "below_baseline" not in out
    assert main(["evaluate", "robustness", "--policy", str(ckpt), "--task", TASK, "--attack", "pgd",
                 "--eps", "4/255", *point]) == 0
    single = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in single.items() if k not in ("task", "policy")} == out["points"][0]


def test_rows_come_in_attack_then_eps_order_with_one_clean_rollout(tmp_path, fake_points, capsys):
    ckpt = save_policy(tiny_rfg_policy(2), tmp_path / "p", task=TASK)
    assert run_cli("--policy", str(ckpt), *ARGS, "--json") == 0
    rows = json.loads(capsys.readouterr().out)["points"]
    assert [(r["attack"], round(r["eps"] * 255)) for r in rows] == [("mad", 0), ("mad", 4), ("pgd", 0), ("pgd", 4)]
    assert fake_points == [("mad", 0.0), ("mad", 4 / 255), ("pgd", 4 / 255)]
    assert run_cli("--policy", str(ckpt), *ARGS) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[1].split() == ["eps/255", "mad", "pgd"] and text[3].split()[0] == "4"


def test_out_resumes_point_by_point_and_extends(tmp_path, fake_points, capsys):
    ckpt = save_policy(tiny_rfg_policy(3), tmp_path / "p", task=TASK)
    out = tmp_path / "sweep.json"
    assert run_cli("--policy", str(ckpt), *ARGS, "--out", str(out), "--json") == 0
    first = json.loads(capsys.readouterr().out)["points"]
    stored = json.loads(out.read_text())
    assert stored["format"] == rob.SWEEP_FORMAT and len(stored["points"]) == 3  # clean once + 2 attacked
    assert len(fake_points) == 3
    # a rerun computes nothing; an extended one only the new points
    assert run_cli("--policy", str(ckpt), *ARGS, "--out", str(out), "--json") == 0
    assert json.loads(capsys.readouterr().out)["points"] == first and len(fake_points) == 3
    more = [a if a != "mad,pgd" else "mad,pgd,mi-fgsm" for a in ARGS]
    assert run_cli("--policy", str(ckpt), *more, "--out", str(out), "--json") == 0
    rows = json.loads(capsys.readouterr().out)["points"]
    assert fake_points[3:] == [("mi-fgsm", 4 / 255)] and rows[:4] == first
    assert rows[4]["eps"] == 0.0 and rows[4]["attack"] == "mi-fgsm"  # the stored clean row, renamed
    assert len(json.loads(out.read_text())["points"]) == 4


def test_a_killed_sweep_keeps_its_finished_points(tmp_path, fake_points):
    policy = tiny_rfg_policy(3)
    cfg = RobustnessSweepConfig(attacks=("fgsm",), eps=(4 / 255, 8 / 255), episodes=1).validate()
    out = tmp_path / "s.json"
    real, n = rob._sweep_point, []

    def dies_on_second(args, p):
        if n:
            raise KeyboardInterrupt
        n.append(1)
        return real(args, p)

    rob_point = rob._sweep_point
    try:
        rob._sweep_point = dies_on_second
        with pytest.raises(KeyboardInterrupt):
            rob.sweep_to_file(policy, TASK, out, cfg, policy_digest="d")
    finally:
        rob._sweep_point = rob_point
    kept = json.loads(out.read_text())["points"]
    assert [(r["attack"], r["eps"]) for r in kept] == [("fgsm", 4 / 255)]
    rows = rob.sweep_to_file(policy, TASK, out, cfg, policy_digest="d")
    assert rows[0] == kept[0] and [r["eps"] for r in rows] == [4 / 255, 8 / 255]


def test_baseline_lists_the_points_below_it(tmp_path, fake_points, capsys):
    ckpt = save_policy(tiny_rfg_policy(4), tmp_path / "p", task=TASK)
    assert run_cli("--policy", str(ckpt), *ARGS, "--json") == 0
    rows = json.loads(capsys.readouterr().out)["points"]
    # a report cache's layout ({"key", "result"}), with one point made better than this policy
    better = [dict(r) for r in rows]
    better[3]["success_rate"] = rows[3]["success_rate"] + 0.5
    base = tmp_path / "robustness-teacher.json"
    base.write_text(json.dumps({"key": {}, "result": better}))
    assert run_cli("--policy", str(ckpt), *ARGS, "--baseline", str(base),
                 "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["compared"] == 2  # the attacked points; the clean row is not an attack
    assert out["below_baseline"] == [{"attack": "pgd", "eps_255": 4.0, "success_rate": rows[3]["success_rate"],
                                      "baseline": better[3]["success_rate"]}]
    assert run_cli("--policy", str(ckpt), *ARGS, "--baseline", str(base)) == 0
    text = capsys.readouterr().out
    assert "below the baseline at 1 of 2 points: pgd@4/255" in text


@pytest.mark.parametrize("extra, message", [
    (["--attacks", "fgsm,nope"], "unknown attack"),
    (["--attacks", "fgsm,,pgd"], "comma-separated"),
    (["--attacks", ""], "comma-separated"),
    (["--eps", "4/255,2"], "eps"),
    (["--eps", "4/255,x"], "fraction"),
    (["--attacks", "fgsm,pgd", "--attack-steps", "3"], "fgsm"),
    (["--surrogate-softplus", "-1"], "surrogate_softplus"),
    (["--baseline", "missing.json"], "does not exist"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, fake_points, extra, message):
    monkeypatch.chdir(tmp_path)
    ckpt = save_policy(tiny_rfg_policy(0), tmp_path / "p", task=TASK)
    rc = run_cli("--policy", str(ckpt), "--task", TASK, "--episodes", "1",
               "--out", "s.json", *extra)
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("digr: error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "s.json").exists() and fake_points == []


def test_out_of_another_kind_or_sweep_is_refused_and_kept(tmp_path, fake_points, capsys):
    ckpt = save_policy(tiny_rfg_policy(0), tmp_path / "p", task=TASK)
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    rc = run_cli("--policy", str(ckpt), *ARGS, "--out", str(notes))
    assert rc == 2 and "not a digr robustness sweep" in capsys.readouterr().err
    assert notes.read_text() == '{"mine": 1}'
    out = tmp_path / "s.json"
    assert run_cli("--policy", str(ckpt), *ARGS, "--out", str(out)) == 0
    capsys.readouterr()
    before = out.read_text()
    other = [a if a != "1" else "2" for a in ARGS]  # another seed: other rollouts
    rc = run_cli("--policy", str(ckpt), *other, "--out", str(out))
    assert rc == 2 and "another policy or other settings" in capsys.readouterr().err
    assert out.read_text() == before
    with pytest.raises(DigrError, match="does not exist"):
        rob.sweep_to_file(tiny_rfg_policy(0), TASK, tmp_path / "no" / "s.json",
                          RobustnessSweepConfig(attacks=("fgsm",), eps=(0.0,), episodes=1), policy_digest="d")
