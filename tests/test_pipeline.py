"""The main job end to end on tiny budgets, and its stage skipping."""

import json

import pytest

from digr.cli.main import main
from digr.models import save_policy
from digr.pipeline import Pipeline, PipelineConfig


@pytest.fixture
def teacher(tmp_path, rfg_policy):
    return save_policy(rfg_policy, tmp_path / "teacher", task="red-fetch-green")


def _config():
    return PipelineConfig(dataset_size=8, student_steps=3, student_eval_every=0, student_eval_episodes=1,
                          report_states=8, report_episodes=1, robustness_episodes=1, robustness_eps=(0.0, 8 / 255),
                          robustness_attacks=("fgsm",), threads=1)


def test_pipeline_runs_every_stage_then_skips_them(tmp_path, teacher):
    from dataclasses import replace

    from digr.distill.dataset import read_manifest

    out = tmp_path / "pipe"
    logs: list[str] = []
    cfg = replace(_config(), dataset_stride=2, report_stride=2)
    state = Pipeline("red-fetch-green", out, teacher=teacher, config=cfg, preset="test",
                     log=logs.append, show_progress=False).run()
    assert list(state["stages"]) == ["teacher", "dataset", "digr", "distill-only", "report"]
    for sub in ("dataset", "digr/policy", "distill-only/policy"):
        assert (out / sub).exists(), sub
    report = (out / "report.md").read_text()
    assert "Table 1" in report and "digr evaluate" in report
    assert json.loads((out / "pipeline.json").read_text())["stages"]["report"]["complete"]
    # the strides reach the dataset's maps and the report's perturbation and SARFA rows
    assert read_manifest(out / "dataset")["stride"] == 2
    assert "--setting perturbation.stride=2 --setting sarfa.stride=2" in report

    logs.clear()
    Pipeline("red-fetch-green", out, teacher=teacher, config=cfg, log=logs.append,
             show_progress=False).run()
    assert sum("skipped" in line for line in logs) == 5


def test_pipeline_trains_its_digr_student_with_the_named_recipe(tmp_path, teacher, capsys):
    from dataclasses import replace

    out = tmp_path / "pipe"
    cfg = replace(_config(), recipe="smooth", report_sections=("agreement",), agreement_states=4)
    Pipeline("red-fetch-green", out, teacher=teacher, config=cfg, log=lambda _: None, show_progress=False).run()
    digr = json.loads((out / "digr" / "config.json").read_text())["distill"]
    assert (digr["recipe"], digr["student_softplus"], digr["adv_eps"]) == ("smooth", 50.0, 16 / 255)
    assert json.loads((out / "distill-only" / "config.json").read_text())["distill"]["recipe"] == "paper"
    assert "| digr | smooth |" in (out / "report.md").read_text()
    # an unknown recipe is refused before anything is written; the CLI offers the known ones
    with pytest.raises(Exception, match="unknown recipe 'magic'"):
        Pipeline("red-fetch-green", tmp_path / "new", teacher=teacher, config=replace(cfg, recipe="magic"))
    assert not (tmp_path / "new").exists()
    with pytest.raises(SystemExit):
        main(["pipeline", "--task", "red-fetch-green", "--out", str(tmp_path / "new"), "--recipe", "magic"])
    assert "unknown recipe 'magic'; choose one of: smooth, relu, paper" in capsys.readouterr().err


def test_pipeline_refuses_another_teacher_or_task(tmp_path, teacher, tiny_policy, capsys):
    out = tmp_path / "pipe"
    out.mkdir()
    (out / "pipeline.json").write_text(json.dumps({"task": "red-fetch-green", "teacher": str(teacher),
                                                   "stages": {}}))
    other = save_policy(tiny_policy, tmp_path / "other", task="red-fetch-green")  # wrong shape
    assert main(["pipeline", "--task", "red-fetch-green", "--out", str(out), "--teacher", str(other)]) == 2
    assert "was made with teacher" in capsys.readouterr().err
    assert main(["pipeline", "--task", "red-fetch-green", "--out", str(tmp_path / "new"), "--teacher",
                 str(other)]) == 2
    assert "expects observations" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert main(["pipeline", "--task", "breakout", "--out", str(out)]) == 2
    assert "for task 'red-fetch-green'" in capsys.readouterr().err
