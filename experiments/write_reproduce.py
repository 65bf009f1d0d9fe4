"""Write ``results/TASK/reproduce.sh`` from the commands recorded in ``results/TASK/pipeline.json``.

Every committed policy folder of a task gets one stage: the recorded command that made it, with its
``--out`` pointed at ``$OUT/<folder>`` (default ``OUT=repro/TASK``) so nothing committed is
touched, and any dataset it reads built first by the recorded ``digr dataset`` command (from
pipeline.json, or the task's README). Comments after ``#`` in a recorded command (resumed chains,
stops) are kept as comments: the stage runs the command once with its final budget, which trains
with the same settings but draws different batches than a chain of resumed invocations (the
trainer seeds each invocation from ``(seed, step)``), so figures are re-checked within their
seed-to-seed spread, not bit for bit. A last stage, ``report``, regenerates the report on ``$OUT``.

usage: python experiments/write_reproduce.py [TASK ...]   (default: the three tasks)
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

from digr.distill.config import RECIPE_ALIASES

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("red-fetch-green", "breakout", "highway")


def _split(command: str) -> tuple[list[str], str]:
    code, _, note = command.partition("  #")
    return shlex.split(code), note.strip()


def _dataset_commands(task: str, recorded: dict[str, str]) -> dict[str, str]:
    """``--out`` path -> the ``digr dataset`` command that wrote it (pipeline.json, then README)."""
    found = {}
    texts = list(recorded.values()) + (ROOT / "results" / task / "README.md").read_text().splitlines()
    for text in texts:
        m = re.search(r"digr dataset [^`#]*", text)
        if m:
            args, _ = _split(m.group(0))
            if "--out" in args and args.index("--out") + 1 < len(args):
                found.setdefault(args[args.index("--out") + 1], " ".join(shlex.quote(a) for a in args))
    return found


def _recipe(task: str, name: str) -> str:
    """The recipe recorded in a committed student's config.json; runs from before recipes existed
    have none and were made with what is now ``--recipe paper``."""
    cfg = ROOT / "results" / task / name / "config.json"
    if not cfg.exists():
        return "paper"
    return json.loads(cfg.read_text()).get("distill", {}).get("recipe", "paper")


def _stage(name: str, args: list[str], note: str, out_var: str) -> list[str]:
    args = list(args)
    if "--out" in args:
        args[args.index("--out") + 1] = f"${out_var}/{name}"
    lines = [f"stage_{re.sub(r'[^A-Za-z0-9]', '_', name)}() {{"]
    if note:
        lines.append(f"  # recorded: {note}")
    lines += ["  " + " ".join(f'"{a}"' if a.startswith("$") else shlex.quote(a) for a in args), "}"]
    return lines


def render(task: str) -> str:
    """The text of ``results/TASK/reproduce.sh``."""
    pipe = json.loads((ROOT / "results" / task / "pipeline.json").read_text())
    recorded: dict[str, str] = dict(pipe["commands"])
    for entry in pipe.get("entries", []):
        if entry.get("command"):
            recorded.setdefault(entry["policy"], entry["command"])
    for name, command in pipe.get("other_commands", {}).items():  # committed, not in the report
        recorded.setdefault(name, command)
    datasets = _dataset_commands(task, recorded)
    body, order, ds_stage = [], [], {}
    for name, command in recorded.items():
        if name == "dataset":
            continue
        args, note = _split(command)
        if args[:2] == ["digr", "distill"] and "--recipe" not in args:
            # the recipe the run recorded, by its current name: the default has changed since
            # (runs before recipes existed: the paper's settings; "default" until session 22: relu)
            recorded = _recipe(task, name)
            args[2:2] = ["--recipe", RECIPE_ALIASES.get(recorded, recorded)]
        if "--dataset" in args:
            path = args[args.index("--dataset") + 1]
            if path not in ds_stage:
                stage = f"dataset-{len(ds_stage)}" if ds_stage else "dataset"
                ds_stage[path] = stage
                if path in datasets:
                    body += _stage(stage, shlex.split(datasets[path]), f"wrote {path}", "OUT") + [""]
                else:
                    body += [f"stage_{stage.replace('-', '_')}() {{",
                             f"  echo 'no recorded command for the dataset {path}' >&2; return 1", "}", ""]
                order.append(stage)
            args[args.index("--dataset") + 1] = f"$OUT/{ds_stage[path]}"
        body += _stage(name, args, note, "OUT") + [""]
        order.append(name)
    body += ["stage_report() {",
             f"  cp results/{task}/pipeline.json \"$OUT/pipeline.json\"",
             "  digr report \"$OUT\"", "}", ""]
    order.append("report")
    head = [
        "#!/usr/bin/env bash",
        f"# Regenerate results/{task}/ from its recorded commands (written by experiments/write_reproduce.py",
        "# from pipeline.json; edit that, not this). Stages run in order into $OUT (default",
        f"# repro/{task}); name stages to run only those, e.g. `results/{task}/reproduce.sh digr report`.",
        "# Students read the committed teacher, so each stage can be re-checked on its own. A resumed chain",
        "# recorded in a comment runs here as one invocation with the final budget: same settings, other",
        "# batches, so figures agree within their seed-to-seed spread rather than bit for bit.",
        "# The teacher stage is hours on a CPU; the datasets and students are minutes to hours.",
        "set -euo pipefail",
        f'OUT=${{OUT:-repro/{task}}}',
        'export PATH="$PWD/.venv/bin:$PATH"',
        'mkdir -p "$OUT"',
        "",
    ]
    tail = [f"STAGES=({' '.join(order)})",
            'for s in "${@:-${STAGES[@]}}"; do',
            '  case " ${STAGES[*]} " in *" $s "*) ;; *) echo "reproduce.sh: unknown stage $s (stages: ${STAGES[*]})" >&2; exit 2;; esac',
            '  echo "== $s" >&2',
            '  "stage_${s//-/_}"',
            "done", ""]
    return "\n".join(head + body + tail)


def write(task: str) -> Path:
    path = ROOT / "results" / task / "reproduce.sh"
    path.write_text(render(task))
    path.chmod(0o755)
    return path


if __name__ == "__main__":
    for t in sys.argv[1:] or TASKS:
        print(write(t))
