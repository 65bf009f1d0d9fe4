"""``digr report``: pipeline layout, cache, Table 1 rendering, and a smoke run on tiny checkpoints."""

import json
import re
import sys

import pytest
import torch

import digr.evaluation
from digr.cli.main import main
from digr.errors import DigrError
from digr.evaluation.report import (
    JsonCache,
    ReportConfig,
    load_pipeline,
    read_metrics,
    report_command,
    training_curve,
    write_report,
)
from digr.evaluation.table1 import PAPER_TABLE1, RowSpec, Table1Row, render_table1, write_table1
from digr.models import PolicyConfig, PolicyNet, save_policy

TASK = "red-fetch-green"
TINY_RFG = PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((4, 8, 8, 0), (8, 3, 1, 1)), hidden=16)
QUICK = ["--states", "3", "--agreement-states", "3", "--episodes", "2", "--robustness-episodes", "1", "--eps", "0", "8/255",
         "--attacks", "fgsm", "--repeats", "2", "--max-seconds", "0.05", "--panel-states", "2",
         "--gif-frames", "6", "--setting", "perturbation.stride=8", "--setting", "sarfa.stride=8", "--quiet",
         "--surrogate-softplus", "0"]
"""Tiny sizes; the own-gradient attack only (the twin's, the default, has its own test below)."""


def fake_pipeline(root, *, students=True):
    """Randomly initialised tiny teacher/students in the documented layout, with trainer-style logs."""
    for i, role in enumerate(["teacher", "digr", "distill-only"] if students else ["teacher"]):
        torch.manual_seed(i)
        save_policy(PolicyNet(TINY_RFG), root / role / "policy", task=TASK)
        if role != "teacher":
            rows = [{"step": s, "distill/kl": 0.5 / s, "wall_s": s} for s in (10, 20, 30)]
            rows[1].update({"eval/success_rate": 0.25, "eval/mean_return": 0.1})
            rows[2].update({"eval/success_rate": 0.5, "eval/mean_return": 0.3})
            text = "".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4'  # last line cut by a kill
            (root / role / "metrics.jsonl").write_text(text)
    return root


def test_report_smoke_and_cache(tmp_path, capsys):
    d = fake_pipeline(tmp_path / "pipe")
    assert main(["report", str(d), *QUICK, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    text = (d / "report.md").read_text()
    for section in ("agreement", "table1", "timing", "performance", "robustness", "panels", "gif"):
        assert summary["sections"][section] == "written", section
    assert set(summary["agreement"]) == {"reference", "teacher_vg", "digr", "distill-only"}
    assert "## Map agreement" in text and "| teacher (own VG, baseline) |" in text
    assert "| uniform random actions (chance) |" in text
    # Table 1's student VG rows carry the map-agreement reading
    assert re.search(r"\| DIGR \|.*\| (\*\*spike\*\*|meets goal|below goal).*: map agreement cc", text)
    for f in ("timing.png", "performance.png", "robustness.png", "saliency_panels.png", "digr_episode.gif"):
        assert (d / "figures" / f).stat().st_size > 0
        if f != "digr_episode.gif":
            assert f"figures/{f}" in text
    assert (d / "table1.md").exists() and "86.11" in text and "distill-only VG" in text
    assert len(summary["table1"]) == 9

    # every table sits under a fenced block holding the digr command(s) that print its numbers
    lines = text.splitlines()
    tables = [i for i, line in enumerate(lines) if line.startswith("|---")]
    assert len(tables) >= 5
    headings = [j for j, line in enumerate(lines) if line.startswith(("## ", "### "))]
    for i in tables:
        if "| Role | Checkpoint" in lines[i - 1]:
            continue  # the provenance table: paths and digests, not measurements
        block = "\n".join(lines[max(j for j in headings if j < i):i])  # from the table's own heading
        assert re.search(r"```sh\n(.*\n)*?.*digr (evaluate|report) ", block), lines[i - 1]
    assert "digr evaluate saliency --policy" in text and "--setting stride=8" in text
    assert "digr evaluate robustness" in text and '--eps "$EPS"' in text

    # a rerun with the same options reuses every cached result
    assert main(["report", str(d), *QUICK, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["computed"] == [] and len(again["cached"]) == len(summary["computed"])
    assert again["table1"] == summary["table1"]


def test_report_without_robustness_module_or_students(tmp_path, monkeypatch):
    d = fake_pipeline(tmp_path / "pipe", students=False)
    monkeypatch.delattr(digr.evaluation, "robustness", raising=False)
    monkeypatch.setitem(sys.modules, "digr.evaluation.robustness", None)  # import now fails
    cfg = ReportConfig(states=2, episodes=1, sections=("robustness", "gif", "performance"))
    summary = write_report(d, cfg)
    assert summary["sections"]["robustness"].startswith("skipped")
    assert summary["sections"]["gif"].startswith("skipped")
    text = (d / "report.md").read_text()
    assert "*Skipped: digr.evaluation.robustness is not available" in text
    assert "No training curve" in text


def test_load_pipeline_paths_and_errors(tmp_path):
    d = tmp_path / "pipe"
    with pytest.raises(DigrError, match="not found"):
        load_pipeline(d)
    d.mkdir()
    with pytest.raises(DigrError, match="no teacher"):
        load_pipeline(d)
    save_policy(PolicyNet(TINY_RFG), tmp_path / "elsewhere" / "policy", task=TASK)
    save_policy(PolicyNet(TINY_RFG), d / "digr" / "policy", task=TASK)
    (d / "pipeline.json").write_text(json.dumps({"teacher": "../elsewhere"}))
    p = load_pipeline(d)
    assert p.teacher == d / "../elsewhere" / "policy" and p.digr == d / "digr" / "policy"
    assert p.distill_only is None and p.task == TASK and p.run_dir("digr") == d / "digr"
    (d / "pipeline.json").write_text(json.dumps({"teacher": "nope"}))
    with pytest.raises(DigrError, match="not a digr checkpoint"):
        load_pipeline(d)
    (d / "pipeline.json").write_text("{")
    with pytest.raises(DigrError, match="not valid JSON"):
        load_pipeline(d)


def test_json_cache_keys_and_files(tmp_path):
    cache = JsonCache(tmp_path / "eval")
    calls = []

    def compute(v):
        calls.append(v)
        return {"v": v}

    assert cache("x", {"a": (1, 2)}, lambda: compute(1)) == {"v": 1}
    assert cache("x", {"a": [1, 2]}, lambda: compute(2)) == {"v": 1}  # same key after JSON round trip
    assert cache("x", {"a": [1, 3]}, lambda: compute(3)) == {"v": 3}  # new key: recomputed, replaced
    assert cache("x", {"a": [1, 3]}, lambda: compute(4), files=[tmp_path / "missing.png"]) == {"v": 4}
    assert calls == [1, 3, 4]
    assert json.loads((tmp_path / "eval" / "x.json").read_text())["key"] == {"a": [1, 3]}
    assert not [p for p in (tmp_path / "eval").iterdir() if p.name.startswith(".")]  # no temp files left


def test_metrics_log_and_curve(tmp_path):
    d = fake_pipeline(tmp_path / "pipe")
    rows = read_metrics(d / "digr" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [10, 20, 30]  # the line cut short is skipped
    assert training_curve(rows) == ([20, 30], [0.25, 0.5])
    assert training_curve(rows, "mean_return") == ([20, 30], [0.1, 0.3])
    assert read_metrics(tmp_path / "none.jsonl") == []


def test_render_table1_paper_numbers_and_commands(tmp_path):
    rows = []
    for i, p in enumerate(PAPER_TABLE1):
        spec = RowSpec(p.label, tmp_path / p.policy, p.method, p)
        rows.append(Table1Row(spec, {"important": 10.0 + i, "unimportant": 1.5, "auc": 0.9, "states": 7,
                                     "auc_error_bound": 1e-6}, f"digr evaluate saliency --method {p.method}"))
    rows.append(Table1Row(RowSpec("FLS VG", tmp_path / "fls", "vanilla"),
                          {"important": 1.0, "unimportant": 2.0, "auc": 0.5, "states": 7}, "digr evaluate x"))
    text = render_table1(rows)
    for p in PAPER_TABLE1:
        assert f"| {p.label} |" in text and f"{p.important:.2f}" in text and f"{p.auc:.3f}" in text
    assert "| FLS VG |" in text and "— |" in text  # an extra row without paper numbers
    assert text.index("```sh") < text.index("| Row |")  # commands above the table
    path = write_table1(rows, tmp_path / "results" / "table1.md")
    assert path.read_text() == text
    assert "±" not in text and "1.0e-06 (VG)" in text  # small bounds: footnote only, naming the row


def test_render_table1_prints_a_bound_that_reaches_the_third_decimal(tmp_path):
    rows = [Table1Row(RowSpec(label, tmp_path / label, "vanilla"),
                      {"important": 1.0, "unimportant": 2.0, "auc": auc, "states": 7, "auc_error_bound": b},
                      "digr evaluate x")
            for label, auc, b in (("tight", 0.9, 1e-5), ("loose", 0.527, 0.0988))]
    text = render_table1(rows)
    assert "| 0.527 ± 0.099 |" in text and "| 0.900 |" in text
    assert "9.9e-02 (loose)" in text


def test_report_command_round_trips_options(tmp_path):
    cfg = ReportConfig(states=5, eps=(0.0, 8 / 255), attacks=("pgd",),
                       settings={"perturbation": {"stride": 2}})
    cmd = report_command(tmp_path, cfg)
    assert "--states 5" in cmd and "--eps 0 8/255" in cmd and "--setting perturbation.stride=2" in cmd
    assert "--episodes" not in cmd  # defaults are left out


def test_gif_episodes_are_the_first_episodes_of_evaluate_policy():
    # the report quotes `digr evaluate performance --episodes K --seed S` for the GIF's K episodes
    from digr.evaluation.performance import evaluate_policy
    from digr.evaluation.report import episode_frames

    torch.manual_seed(3)
    student = PolicyNet(TINY_RFG).eval()
    frames, stats = episode_frames(student, TASK, seed=5, max_frames=4)
    ref = evaluate_policy(student, TASK, episodes=1, seed=5)
    (ep,) = stats["episodes"]
    assert ep["return"] == ref["mean_return"] and ep["length"] == ref["mean_length"]
    assert len(frames) == 4 and frames[0].shape == (256, 256, 3) and frames[0].dtype.name == "uint8"


def test_gif_plays_further_episodes_until_it_has_min_frames():
    from digr.evaluation.performance import evaluate_policy
    from digr.evaluation.report import episode_frames

    torch.manual_seed(3)
    student = PolicyNet(TINY_RFG).eval()
    one, _ = episode_frames(student, TASK, seed=5, max_frames=10_000)
    frames, stats = episode_frames(student, TASK, seed=5, max_frames=10_000, min_frames=len(one) + 1)
    k = len(stats["episodes"])
    assert k >= 2 and len(frames) == sum(e["length"] + 1 for e in stats["episodes"]) >= len(one) + 1
    ref = evaluate_policy(student, TASK, episodes=k, seed=5)
    assert sum(e["return"] for e in stats["episodes"]) / k == pytest.approx(ref["mean_return"])


def test_table1_rows_only_measures_the_named_rows_and_shares_the_cache(tmp_path):
    from digr.evaluation.table1 import table1_rows

    fake_pipeline(tmp_path)
    cache = JsonCache(tmp_path / "eval")
    kw = dict(states=2, seed=0, batch_size=2, cache=cache,
              settings={"perturbation": {"stride": 8}, "sarfa": {"stride": 8}})
    only = table1_rows(tmp_path / "teacher", tmp_path / "digr", None, only=["VG", "DIGR"], **kw)
    assert [r.spec.label for r in only] == ["VG", "DIGR"]
    assert sorted(cache.computed) == ["saliency-digr", "saliency-vg"]
    full = table1_rows(tmp_path / "teacher", tmp_path / "digr", None, **kw)
    assert len(full) == 8 and set(cache.hits) == {"saliency-digr", "saliency-vg"}
    assert [r.result for r in full if r.spec.label == "VG"] == [only[0].result]


def test_report_extra_rows_reach_table1_and_timing(tmp_path, capsys):
    d = fake_pipeline(tmp_path / "pipe")
    torch.manual_seed(7)
    save_policy(PolicyNet(TINY_RFG), d / "other" / "policy", task=TASK)
    (d / "pipeline.json").write_text(json.dumps({"entries": [
        {"label": "other VG", "policy": "other", "method": "vanilla", "command": "digr train --made-by-hand"}]}))
    assert main(["report", str(d), *QUICK, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    text = (d / "report.md").read_text()
    assert "other VG" in summary["table1"] and len(summary["table1"]) == 10
    assert "| other VG |" in (d / "table1.md").read_text()
    assert "digr evaluate saliency --policy" in text and "other/policy --method vanilla" in text
    assert "# other VG\ndigr train --made-by-hand" in text  # its provenance
    row = next(line for line in text.splitlines() if line.startswith("| other VG | ") and "|---" not in line
               and line.count("|") == 5)
    ms, fwd, ratio = (float(x) for x in row.strip("|").split("|")[1:])
    assert ms > 0 and fwd > 0 and ratio == pytest.approx(ms / fwd, rel=0.02, abs=0.006)


def test_report_extra_students_reach_performance_and_robustness(tmp_path, capsys):
    d = fake_pipeline(tmp_path / "pipe")
    torch.manual_seed(9)
    save_policy(PolicyNet(TINY_RFG), d / "adv" / "policy", task=TASK)
    (d / "adv" / "metrics.jsonl").write_text(json.dumps({"step": 5, "eval/success_rate": 0.75,
                                                         "eval/mean_return": 0.7}) + "\n")
    (d / "pipeline.json").write_text(json.dumps({"entries": [
        {"label": "DIGR + adv", "policy": "adv", "student": True, "command": "digr distill --adv-eps 16/255"}]}))
    assert main(["report", str(d), *QUICK, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    text = (d / "report.md").read_text()
    assert set(summary["performance"]) == {"teacher", "digr", "distill-only", "DIGR + adv"}
    assert set(summary["robustness"]) == {"teacher", "digr", "distill-only", "DIGR + adv"}
    assert len(summary["robustness"]["DIGR + adv"]) == 2  # eps 0 and 8/255, one attack
    assert "| DIGR + adv | " in text and "adv/policy --task red-fetch-green --attack fgsm" in text
    assert "# DIGR + adv\ndigr distill --adv-eps 16/255" in text
    assert (d / "eval" / "robustness-student-digr---adv.json").exists()
    assert len(summary["table1"]) == 9  # students add no Table 1 row
    assert "columns: GB perturbation (teacher), VG (teacher), VG (DIGR), VG (DIGR + adv)." in text
    # removing the extra student again leaves every cached result of the roles valid; only the
    # panels figure, which had the student's column, is redrawn
    (d / "pipeline.json").write_text("{}")
    assert main(["report", str(d), *QUICK, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["computed"] == ["panels"]
    assert "VG (DIGR + adv)" not in (d / "report.md").read_text()


@pytest.mark.parametrize("items,match", [
    ("nope", "must be a list"),
    ([{"label": "x", "student": True}], "needs string"),
    ([{"label": "digr", "policy": "teacher", "student": True}], "role name"),
    ([{"label": "x", "policy": "missing", "student": True}], "not a digr checkpoint"),
    ([{"label": "x", "policy": "teacher", "student": True}] * 2, "unique"),
    ([{"label": "x", "policy": "teacher"}], "needs a \"method\""),
    ([{"label": "x", "policy": "teacher", "student": "yes"}], "student must be true or false"),
    ([{"label": "x", "policy": "teacher", "method": 3}], "method must be"),
    ([{"label": "x", "policy": "teacher", "method": "vanilla", "settings": 3}], "settings must be"),
])
def test_entries_errors(tmp_path, items, match):
    d = fake_pipeline(tmp_path / "pipe", students=False)
    (d / "pipeline.json").write_text(json.dumps({"entries": items}))
    with pytest.raises(DigrError, match=match):
        load_pipeline(d)


@pytest.mark.parametrize("key", ["extra_rows", "extra_students"])
def test_the_old_two_lists_are_refused_with_the_way_to_move_them(tmp_path, key):
    d = fake_pipeline(tmp_path / "pipe", students=False)
    (d / "pipeline.json").write_text(json.dumps({key: []}))
    with pytest.raises(DigrError, match="one list 'entries'"):
        load_pipeline(d)


def test_one_entry_can_be_a_student_and_a_saliency_row(tmp_path):
    d = fake_pipeline(tmp_path / "pipe", students=False)
    (d / "pipeline.json").write_text(json.dumps({"entries": [
        {"label": "both", "policy": "teacher", "method": "vanilla", "student": True}]}))
    pipe = load_pipeline(d)
    assert [r.label for r in pipe.extra] == ["both"] and [s.label for s in pipe.students] == ["both"]


def test_performance_reading_flags_a_weak_teacher_and_compares_students():
    from types import SimpleNamespace

    from digr.envs import get_task
    from digr.evaluation.report.performance import performance_reading

    rep = SimpleNamespace(spec=get_task("breakout"), metric="mean_return")  # bar 150
    assert "weak teacher" in performance_reading(rep, "teacher", 19.2, 19.2)
    assert performance_reading(rep, "teacher", 160.0, 160.0).startswith("meets")
    assert performance_reading(rep, "digr", 18.13, 19.2) == "94% of the teacher"
    assert performance_reading(rep, "uniform random actions (chance)", 1.3, 19.2) == "chance level"
    rep = SimpleNamespace(spec=get_task("red-fetch-green"), metric="success_rate")  # bar 0.99
    assert performance_reading(rep, "teacher", 1.0, 1.0).startswith("meets")
    assert performance_reading(rep, "digr", 0.96, 1.0) == "-0.040 vs the teacher"


def test_report_robustness_is_the_lower_of_own_and_twin_attacks(tmp_path, capsys):
    d = fake_pipeline(tmp_path / "pipe")
    args = ["report", str(d), *QUICK[:-2], "--sections", "robustness", "--json"]  # QUICK less its "0"
    assert main([*args, "--surrogate-softplus", "0"]) == 0  # the paper's setting, asked for
    own = json.loads(capsys.readouterr().out)["robustness"]
    own_text = (d / "report.md").read_text()
    assert "follows the policy's own gradient" in own_text and "--surrogate-softplus 0.0" in own_text
    own_cache = (d / "eval" / "robustness-teacher.json").read_text()
    assert main(args) == 0  # the default: both attacks, the lower per point
    summary = json.loads(capsys.readouterr().out)
    both = summary["robustness"]
    text = (d / "report.md").read_text()
    assert "the **lower** of two attacks" in text and "softplus units of beta 50" in text
    assert "--seed 0 --surrogate-softplus 50 --json" in text  # the printed commands reproduce both
    assert "--seed 0 --json" in text
    assert "--surrogate-softplus" not in text.split("```sh", 1)[1].split("```", 1)[0]  # the default
    assert set(both) == set(own) and all(len(both[r]) == len(own[r]) for r in own)
    # no point is above its own-gradient figure, and each says which attack it came from
    for r in own:
        for o, b in zip(own[r], both[r]):
            assert (o["attack"], o["eps"]) == (b["attack"], b["eps"]) and b["through"] in ("own", "twin")
            key = next(k for k in b if k not in ("attack", "eps", "through"))
            assert b[key] <= o[key]
    # every student's points below the teacher are named in the report and its summary
    assert "**Below the teacher**" in text
    for r in both:
        if r != "teacher":
            want = [(x["attack"], x["eps"]) for x, t in zip(both[r], both["teacher"])
                    if x["eps"] > 0 and x["success_rate"] < t["success_rate"]]
            got = summary["robustness_below_teacher"][r]
            assert [(b["attack"], b["eps_255"] / 255) for b in got] == pytest.approx(want)
            line = next(x for x in text.splitlines() if x.startswith(f"- {r}: "))
            assert line.endswith(f"({len(want)} of 1 points)") and ("none" in line) == (not want)
    # the own-gradient sweep keeps its cache entry; the twin's has its own
    assert (d / "eval" / "robustness-teacher.json").read_text() == own_cache
    cached = json.loads((d / "eval" / "robustness-twin-teacher.json").read_text())
    assert cached["key"]["surrogate_softplus"] == 50.0


def test_lower_of_takes_the_stronger_attack_per_point():
    from digr.evaluation.report.robustness import lower_of

    own = [{"attack": "mad", "eps": 16 / 255, "success_rate": 0.92}, {"attack": "mad", "eps": 8 / 255,
                                                                       "success_rate": 0.40}]
    twin = [{"attack": "mad", "eps": 8 / 255, "success_rate": 0.40}, {"attack": "mad", "eps": 16 / 255,
                                                                      "success_rate": 0.00}]
    rows = lower_of(own, twin, "success_rate")
    assert [r["success_rate"] for r in rows] == [0.00, 0.40]  # in the own sweep's order
    assert rows[0]["through"] == "twin" and rows[0]["own"]["success_rate"] == 0.92
    assert rows[1]["through"] == "own"  # a tie goes to the paper's setting
    assert lower_of(own, None, "success_rate") is own


def test_below_teacher_names_each_students_weaker_points():
    from digr.evaluation.report.robustness import below_teacher

    def sweep(*rates):
        return [{"attack": "mad", "eps": e / 255, "success_rate": r} for e, r in zip((0, 8, 16), rates)]

    got = below_teacher({"teacher": sweep(1.0, 0.40, 0.34), "digr": sweep(1.0, 0.0, 0.34),
                         "smooth": sweep(0.9, 0.9, 0.9)}, "success_rate")
    assert got["digr"] == ([{"attack": "mad", "eps_255": 8.0, "success_rate": 0.0, "baseline": 0.40}], 2)
    assert got["smooth"] == ([], 2)  # the clean row (eps 0) is not an attacked point
    assert below_teacher({"digr": sweep(1, 1, 1)}, "success_rate") == {}


def test_a_killed_report_resumes_within_a_robustness_sweep(tmp_path, capsys, monkeypatch):
    import digr.evaluation.robustness as rob

    d = fake_pipeline(tmp_path / "pipe", students=False)
    args = ["report", str(d), *QUICK, "--sections", "robustness", "--json"]
    real, calls = rob._sweep_point, []

    def dies_on_second(a, p):
        if calls:
            raise KeyboardInterrupt
        calls.append(a[1:3])
        return real(a, p)

    monkeypatch.setattr(rob, "_sweep_point", dies_on_second)
    assert main(args) == 130  # interrupted after the teacher's clean point
    capsys.readouterr()
    (partial,) = (d / "eval").glob("robustness-teacher.partial-*.json")
    assert [p["eps"] for p in json.loads(partial.read_text())["points"]] == [0.0]
    monkeypatch.setattr(rob, "_sweep_point", lambda a, p: calls.append(a[1:3]) or real(a, p))
    assert main(args) == 0
    assert calls == [("fgsm", 0.0), ("fgsm", 8 / 255)]  # only the missing point was rolled out
    rows = json.loads(capsys.readouterr().out)["robustness"]["teacher"]
    assert [r["eps"] for r in rows] == [0.0, 8 / 255]
    assert not list((d / "eval").glob("*.partial-*.json"))  # the cache holds the whole sweep now
