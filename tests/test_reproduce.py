"""Every committed task folder has a reproduce.sh, in step with its pipeline.json, that bash parses
and that refuses an unknown stage."""

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("red-fetch-green", "breakout", "highway")


def _generator():
    spec = importlib.util.spec_from_file_location("write_reproduce", ROOT / "experiments" / "write_reproduce.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("task", TASKS)
def test_reproduce_script_matches_the_recorded_commands(task, tmp_path):
    script = ROOT / "results" / task / "reproduce.sh"
    if not (ROOT / "results" / task / "pipeline.json").exists():
        pytest.skip("no committed results in this checkout")
    assert script.read_text() == _generator().render(task), "rerun experiments/write_reproduce.py"
    subprocess.run(["bash", "-n", str(script)], check=True)
    bad = subprocess.run(["bash", str(script), "no-such-stage"], capture_output=True, text=True,
                         env={"OUT": str(tmp_path / "out"), "PATH": "/usr/bin:/bin"}, cwd=ROOT)
    assert bad.returncode == 2 and "unknown stage no-such-stage" in bad.stderr
    text = script.read_text()
    assert "stage_report" in text and "results/" + task + "/teacher" in text
    # every student is rebuilt with the recipe it recorded, named: the default has changed since
    # some were made (before recipes existed: the paper's settings; "default" until session 22: relu)
    for line in text.splitlines():
        if line.strip().startswith("digr distill"):
            assert "--recipe" in line, line
            out = line.split('--out "$OUT/', 1)[1].split('"', 1)[0]
            cfg = ROOT / "results" / task / out / "config.json"
            if cfg.exists():
                named = line.split("--recipe ", 1)[1].split(" ", 1)[0]
                assert named in _recipes_of(json.loads(cfg.read_text())), line


def _recipes_of(cfg: dict) -> set[str]:
    """The recipe names a run config answers to: the one it recorded (by its current name) and any
    whose settings it has exactly (a run made with a preset's options spelled out)."""
    from digr.distill.config import RECIPE_ALIASES, RECIPES, RESUMABLE_FIELDS, DistillConfig
    from digr.envs import get_task

    d = cfg.get("distill", {})
    recorded = d.get("recipe", "paper")
    names = {RECIPE_ALIASES.get(recorded, recorded)}
    skip = RESUMABLE_FIELDS | {"seed", "eval_seed", "recipe"}
    for r in RECIPES:
        base = DistillConfig.for_task(get_task(cfg["task"]), recipe=r).to_dict()
        if all(d.get(k) == v for k, v in base.items() if k not in skip and k in d):
            names.add(r)
    return names


@pytest.mark.parametrize("task", TASKS)
def test_every_committed_checkpoint_has_a_stage(task):
    folder = ROOT / "results" / task
    if not (folder / "pipeline.json").exists():
        pytest.skip("no committed results in this checkout")
    text = (folder / "reproduce.sh").read_text()
    for ckpt in folder.rglob("model.safetensors"):
        name = ckpt.relative_to(folder).parts[0]
        assert f'--out "$OUT/{name}"' in text or name == "teacher", f"{name} has no reproduce.sh stage"


def _flag(command: str, name: str) -> str | None:
    words = command.split("#", 1)[0].split()
    return words[words.index(name) + 1] if name in words else None


@pytest.mark.parametrize("task", TASKS)
def test_recorded_distill_commands_match_the_committed_students(task):
    """The seed and update count in each recorded ``digr distill`` command are the committed
    checkpoint's own (a command left over from an earlier student would reproduce another one)."""
    folder = ROOT / "results" / task
    if not (folder / "pipeline.json").exists():
        pytest.skip("no committed results in this checkout")
    text = (folder / "reproduce.sh").read_text()
    checked = 0
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("digr distill"):
            continue
        name = line.split('--out "$OUT/', 1)[1].split('"', 1)[0]
        ckpt = folder / name / "policy" / "config.json"
        if ckpt.exists():
            meta = json.loads(ckpt.read_text())["meta"]
        else:  # weights removed from results/ for its size budget: the run's own config.json
            cfg = json.loads((folder / name / "config.json").read_text())["distill"]
            meta = {"seed": cfg["seed"], "steps": cfg["steps"]}
        seed = _flag(line, "--seed")
        assert int(seed or 0) == meta["seed"], f"{name}: recorded --seed {seed}, checkpoint seed {meta['seed']}"
        steps = _flag(line, "--steps")
        if steps is not None:  # without --steps the recipe's default budget applies
            assert int(steps) == meta["steps"], f"{name}: recorded --steps {steps}, checkpoint {meta['steps']}"
        checked += 1
    assert checked >= 1
