"""A corpus of bad inputs across every command, tried as a hostile user would.

Each case must end with a non-zero exit, exactly one ``digr: error:`` line on stderr that names
what is wrong (the expected fragment), nothing on stdout, no traceback, and the workspace byte for
byte as it was: nothing partial written, nothing good changed or deleted.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile

import pytest
import torch
from safetensors.torch import load_file, save_file

from digr.cli.main import main
from digr.models import PolicyConfig, PolicyNet, save_policy

TASK = "red-fetch-green"
TINY = PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((4, 8, 8, 0), (8, 3, 1, 1)), hidden=16)
SMALL = PolicyConfig(obs_shape=(3, 16, 16), n_actions=4, convs=((4, 4, 4, 0),), hidden=8)


def _edit_config(path, edit):
    cfg = json.loads((path / "config.json").read_text())
    edit(cfg)
    (path / "config.json").write_text(json.dumps(cfg))


def _bad_weights(ws, name, change):
    save_policy(PolicyNet(TINY), ws / name, task=TASK)
    w = load_file(str(ws / name / "model.safetensors"))
    save_file(change(w), str(ws / name / "model.safetensors"))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """The workspace every case runs in: good inputs beside bad ones."""
    from digr.distill import DatasetConfig, build_dataset

    ws = tmp_path_factory.mktemp("corpus")
    torch.manual_seed(0)
    save_policy(PolicyNet(TINY), ws / "teacher", task=TASK)
    save_policy(PolicyNet(SMALL), ws / "small", task="other")
    save_policy(PolicyNet(TINY), ws / "teacher2", task=TASK)  # same network, other weights
    build_dataset(ws / "teacher", TASK, ws / "ds", DatasetConfig(size=4, shard_size=2, radius=4, stride=16),
                  workers=1)
    (ws / "afile").write_text("precious\n")
    (ws / "userdir").mkdir()
    (ws / "userdir" / "notes.txt").write_text("precious\n")
    (ws / "studentrun").mkdir()
    (ws / "studentrun" / "config.json").write_text(json.dumps({"distill": {"alpha": 1.0}}))
    (ws / "notazip.zip").write_text("not a zip\n")
    with zipfile.ZipFile(ws / "emptyzip.zip", "w") as z:
        z.writestr("readme.txt", "no policy here")

    _bad_weights(ws, "nan", lambda w: {k: v.fill_(math.nan) if i == 0 else v for i, (k, v) in enumerate(w.items())})
    _bad_weights(ws, "inf", lambda w: {k: v.fill_(math.inf) if i == 0 else v for i, (k, v) in enumerate(w.items())})
    _bad_weights(ws, "int", lambda w: {k: v.long() for k, v in w.items()})
    _bad_weights(ws, "missing-tensor", lambda w: dict(list(w.items())[1:]))
    bad_configs = {
        "version-string": lambda c: c.update(format_version="1"),
        "version-future": lambda c: c.update(format_version=99),
        "huge-channels": lambda c: c["policy"].update(convs=[[10**9, 8, 8, 0], [8, 3, 1, 1]]),
        "negative-size": lambda c: c["policy"].update(hidden=-16),
        "big-kernel": lambda c: c["policy"].update(convs=[[4, 100, 8, 0], [8, 3, 1, 1]]),
        "short-conv": lambda c: c["policy"].update(convs=[[4, 8, 8], [8, 3, 1, 1]]),
        "float-size": lambda c: c["policy"].update(hidden=16.5),
        "no-policy": lambda c: c.pop("policy"),
        "wrong-format": lambda c: c.update(format="something-else"),
    }
    for name, edit in bad_configs.items():
        save_policy(PolicyNet(TINY), ws / name, task=TASK)
        _edit_config(ws / name, edit)
    save_policy(PolicyNet(TINY), ws / "infinity", task=TASK)
    text = (ws / "infinity" / "config.json").read_text().replace('"hidden": 16', '"hidden": Infinity')
    (ws / "infinity" / "config.json").write_text(text)
    save_policy(PolicyNet(TINY), ws / "list-config", task=TASK)
    (ws / "list-config" / "config.json").write_text("[1, 2, 3]\n")
    save_policy(PolicyNet(TINY), ws / "not-json", task=TASK)
    (ws / "not-json" / "config.json").write_text("{oops\n")
    save_policy(PolicyNet(TINY), ws / "no-weights", task=TASK)
    (ws / "no-weights" / "model.safetensors").unlink()

    # run folders digr made, then damaged: their settings or resume state can no longer be trusted
    quiet = ["--no-progress", "--threads", "1"]
    assert main(["distill", "--teacher", str(ws / "teacher"), "--dataset", str(ws / "ds"), "--task", TASK,
                 "--out", str(ws / "distrun"), "--steps", "1", "--n-envs", "1", "--batch-size", "2", *quiet]) == 0
    assert main(["train", "--task", TASK, "--out", str(ws / "trainrun"), "--timesteps", "128", "--n-envs", "1",
                 *quiet]) == 0
    import shutil

    for name in ("distrun-badcfg", "distrun-badresume"):
        shutil.copytree(ws / "distrun", ws / name)
    (ws / "distrun-badcfg" / "config.json").write_text("{oops\n")
    (ws / "distrun-badresume" / "resume" / "state.json").write_text("[1, 2]\n")
    (ws / "trainrun" / "resume" / "state.json").write_text('{"num_timesteps": "many"}\n')
    (ws / "pipe-list").mkdir()
    (ws / "pipe-list" / "pipeline.json").write_text("[]\n")
    return ws


def _snapshot(ws):
    return {str(p.relative_to(ws)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(ws.rglob("*"))}


P, T = "--policy", "--teacher"
PERF = ["evaluate", "performance", "--task", TASK, "--episodes", "1"]


def perf(ck, *extra):
    return [*PERF, P, "{ws}/" + ck, *extra]


def distill(*extra, out="{ws}/new-run", dataset="{ws}/ds", teacher="{ws}/teacher"):
    return ["distill", T, teacher, "--dataset", dataset, "--task", TASK, "--out", out, "--steps", "2",
            "--no-progress", *extra]


def dataset(*extra, out="{ws}/new-ds", teacher="{ws}/teacher"):
    return ["dataset", T, teacher, "--task", TASK, "--out", out, "--size", "2", "--stride", "16", "--workers", "1",
            "--no-progress", *extra]


def train(*extra, out="{ws}/new-train"):
    return ["train", "--task", TASK, "--out", out, "--timesteps", "128", "--n-envs", "1", "--no-progress", *extra]


def sal(*extra, out="{ws}/new-sal", ck="teacher"):
    return ["saliency", P, "{ws}/" + ck, "--task", TASK, "--method", "vanilla", "--states", "1", "--out", out,
            *extra]


EV = "{ws}/teacher"
CASES = [
    # -- checkpoints that must not load (every command reads them through one loader) --------------
    ("ckpt-missing", perf("nope"), "not found"),
    ("ckpt-is-file", perf("afile"), "afile"),
    ("ckpt-user-folder", perf("userdir"), "config.json"),
    ("ckpt-nan", perf("nan"), "NaN or inf"),
    ("ckpt-inf", perf("inf"), "NaN or inf"),
    ("ckpt-int", perf("int"), "not floating point"),
    ("ckpt-missing-tensor", perf("missing-tensor"), "do not match its config"),
    ("ckpt-version-string", perf("version-string"), "format_version"),
    ("ckpt-version-future", perf("version-future"), "version"),
    ("ckpt-huge-channels", perf("huge-channels"), "conv 0 channels"),
    ("ckpt-negative-size", perf("negative-size"), "hidden"),
    ("ckpt-big-kernel", perf("big-kernel"), "larger than its input"),
    ("ckpt-short-conv", perf("short-conv"), "convs"),
    ("ckpt-float-size", perf("float-size"), "hidden"),
    ("ckpt-infinity", perf("infinity"), "hidden"),
    ("ckpt-no-policy", perf("no-policy"), "policy"),
    ("ckpt-wrong-format", perf("wrong-format"), "format"),
    ("ckpt-list-config", perf("list-config"), "config.json"),
    ("ckpt-not-json", perf("not-json"), "config.json"),
    ("ckpt-no-weights", perf("no-weights"), "model.safetensors"),
    ("ckpt-other-task", perf("small"), "expects observations"),
    # -- evaluate performance -----------------------------------------------------------------------
    ("perf-task", [*perf("teacher")[:-2], P, EV, "--task", "pong"], "unknown task 'pong'"),
    ("perf-episodes-0", perf("teacher", "--episodes", "0"), "episodes"),
    ("perf-episodes-huge", perf("teacher", "--episodes", str(10**12)), "episodes"),
    ("perf-seed-negative", perf("teacher", "--seed", "-1"), "seed"),
    ("perf-seed-huge", perf("teacher", "--seed", str(2**40)), "seed"),
    ("perf-episodes-text", perf("teacher", "--episodes", "many"), "--episodes"),
    # -- evaluate saliency / timing / robustness / agreement / lag ------------------------------------
    ("sal-bench-method", ["evaluate", "saliency", P, EV, "--task", TASK, "--method", "nope", "--states", "1"],
     "nope"),
    ("sal-bench-states", ["evaluate", "saliency", P, EV, "--task", TASK, "--method", "vanilla", "--states", "0"],
     "states"),
    ("sal-bench-setting", ["evaluate", "saliency", P, EV, "--task", TASK, "--method", "vanilla", "--states", "1",
                           "--setting", "garbage"], "KEY=VALUE"),
    ("sal-bench-device", ["evaluate", "saliency", P, EV, "--task", TASK, "--method", "vanilla", "--states", "1",
                          "--device", "cuda"], "cuda"),
    ("sal-bench-batch", ["evaluate", "saliency", P, EV, "--task", TASK, "--method", "vanilla", "--states", "1",
                         "--batch-size", "0"], "batch"),
    ("timing-repeats", ["evaluate", "timing", P, EV, "--task", TASK, "--repeats", "0"], "repeats"),
    ("timing-student", ["evaluate", "timing", P, EV, "--task", TASK, "--student", "{ws}/nope"], "not found"),
    ("rob-attack", ["evaluate", "robustness", P, EV, "--task", TASK, "--attack", "nope", "--eps", "0.01"],
     "nope"),
    ("rob-eps-big", ["evaluate", "robustness", P, EV, "--task", TASK, "--attack", "pgd", "--eps", "2"], "eps"),
    ("rob-eps-nan", ["evaluate", "robustness", P, EV, "--task", TASK, "--attack", "pgd", "--eps", "nan"], "eps"),
    ("rob-eps-text", ["evaluate", "robustness", P, EV, "--task", TASK, "--attack", "pgd", "--eps", "a/255"],
     "eps"),
    ("rob-steps", ["evaluate", "robustness", P, EV, "--task", TASK, "--attack", "pgd", "--eps", "0.01",
                   "--attack-steps", "-1"], "attack-steps"),
    ("rob-episodes-huge", ["evaluate", "robustness", P, EV, "--task", TASK, "--attack", "pgd", "--eps", "0.01",
                           "--episodes", str(10**12)], "episodes"),
    ("sweep-attack", ["evaluate", "robustness-sweep", P, EV, "--task", TASK, "--attacks", "pgd,nope"], "nope"),
    ("sweep-eps", ["evaluate", "robustness-sweep", P, EV, "--task", TASK, "--eps", "0,4/255,2"], "eps"),
    ("sweep-fgsm-steps", ["evaluate", "robustness-sweep", P, EV, "--task", TASK, "--attack-steps", "2"], "fgsm"),
    ("sweep-out-user-file", ["evaluate", "robustness-sweep", P, EV, "--task", TASK, "--eps", "0",
                             "--out", "{ws}/afile"], "afile"),
    ("sweep-out-dir", ["evaluate", "robustness-sweep", P, EV, "--task", TASK, "--eps", "0",
                       "--out", "{ws}/userdir"], "not a file"),
    ("sweep-out-nofolder", ["evaluate", "robustness-sweep", P, EV, "--task", TASK, "--eps", "0",
                            "--out", "{ws}/nope/s.json"], "does not exist"),
    ("sweep-baseline", ["evaluate", "robustness-sweep", P, EV, "--task", TASK, "--baseline", "{ws}/afile"],
     "not readable JSON"),
    ("agree-states", ["evaluate", "agreement", T, EV, P, EV, "--task", TASK, "--states", "0"], "states"),
    ("agree-radius", ["evaluate", "agreement", T, EV, P, EV, "--task", TASK, "--states", "1", "--radius", "-1"],
     "radius"),
    ("agree-cache-file", ["evaluate", "agreement", T, EV, P, EV, "--task", TASK, "--states", "1",
                          "--cache", "{ws}/afile"], "afile"),
    ("agree-other-net", ["evaluate", "agreement", T, EV, P, "{ws}/small", "--task", TASK, "--states", "1"],
     "expects observations"),
    ("lag-frames", ["evaluate", "lag", P, EV, "--task", TASK, "--frames", "0"], "frames"),
    ("lag-frames-huge", ["evaluate", "lag", P, EV, "--task", TASK, "--frames", str(10**9)], "frames"),
    ("lag-fps", ["evaluate", "lag", P, EV, "--task", TASK, "--frames", "2", "--fps", "0"], "fps"),
    ("lag-out-file", ["evaluate", "lag", P, EV, "--task", TASK, "--frames", "2", "--out", "{ws}/afile"], "afile"),
    # -- saliency --------------------------------------------------------------------------------------
    ("saliency-method", sal("--method", "nope"), "nope"),
    ("saliency-states", sal("--states", "-1"), "states"),
    ("saliency-out-file", sal(out="{ws}/afile"), "afile"),
    ("saliency-stride", sal("--stride", "0"), "stride"),
    ("saliency-nan", sal(ck="nan"), "NaN or inf"),
    # -- train -------------------------------------------------------------------------------------------
    ("train-timesteps", train("--timesteps", "-5"), "--timesteps: must be >= 0"),
    ("train-task", ["train", "--task", "nope", "--out", "{ws}/new-train"], "unknown task"),
    ("train-out-file", train(out="{ws}/afile"), "is a file"),
    ("train-out-user", train(out="{ws}/userdir"), "other content"),
    ("train-out-student", train(out="{ws}/studentrun"), "student run"),
    ("train-out-dataset", train(out="{ws}/ds"), "dataset"),
    ("train-seed", train("--seed", "-1"), "seed"),
    ("train-envs-huge", train("--n-envs", "100000000"), "n_envs"),
    ("train-lr-nan", train("--learning-rate", "nan"), "learning_rate"),
    ("train-threads", train("--threads", "0"), "threads"),
    ("train-ckpt-every", train("--checkpoint-every", "0"), "checkpoint"),
    # -- import-sb3 --------------------------------------------------------------------------------------
    ("sb3-missing", ["import-sb3", "{ws}/nope.zip", "--out", "{ws}/imp", "--task", TASK], "not found"),
    ("sb3-not-zip", ["import-sb3", "{ws}/notazip.zip", "--out", "{ws}/imp", "--task", TASK], "zip"),
    ("sb3-empty-zip", ["import-sb3", "{ws}/emptyzip.zip", "--out", "{ws}/imp", "--task", TASK], "cannot load"),
    ("sb3-out-dataset", ["import-sb3", "{ws}/notazip.zip", "--out", "{ws}/ds", "--task", TASK], "dataset"),
    ("sb3-out-file", ["import-sb3", "{ws}/notazip.zip", "--out", "{ws}/afile", "--task", TASK], "is a file"),
    ("sb3-task", ["import-sb3", "{ws}/notazip.zip", "--out", "{ws}/imp", "--task", "pong"], "unknown task"),
    # -- dataset -----------------------------------------------------------------------------------------
    ("ds-size", dataset("--size", "0"), "size"),
    ("ds-size-huge", dataset("--size", str(10**12)), "size"),
    ("ds-out-file", dataset(out="{ws}/afile"), "is a file"),
    ("ds-out-student", dataset(out="{ws}/studentrun"), "student run"),
    ("ds-out-user", dataset(out="{ws}/userdir"), "other content"),
    ("ds-radius", dataset("--radius", "-1"), "radius"),
    ("ds-stride", dataset("--stride", "0"), "stride"),
    ("ds-keep-prob", dataset("--keep-prob", "2"), "keep"),
    ("ds-truncate", dataset("--truncate", "0"), "truncate"),
    ("ds-teacher-nan", dataset(teacher="{ws}/nan"), "NaN or inf"),
    ("ds-workers", dataset("--workers", "0"), "workers"),
    ("ds-other-teacher", dataset(out="{ws}/ds", teacher="{ws}/teacher2"), "teacher"),
    # -- distill -----------------------------------------------------------------------------------------
    ("distill-dataset-missing", distill(dataset="{ws}/nope"), "nope"),
    ("distill-dataset-user", distill(dataset="{ws}/userdir"), "manifest"),
    ("distill-alpha-nan", distill("--alpha", "nan"), "alpha"),
    ("distill-lr-nan", distill("--learning-rate", "nan"), "learning_rate"),
    ("distill-steps", distill("--steps", "-1"), "steps"),
    ("distill-out-dataset", distill(out="{ws}/ds"), "dataset"),
    ("distill-out-file", distill(out="{ws}/afile"), "is a file"),
    ("distill-topk", distill("--igr-normalizer", "topk", "--igr-topk", str(10**9)), "topk"),
    ("distill-blur", distill("--student-input-blur", "-1"), "blur"),
    ("distill-batch", distill("--batch-size", "0"), "batch"),
    ("distill-init-other", distill("--init", "{ws}/small"), "small"),
    ("distill-adv-eps", distill("--adv-eps", "2"), "adv"),
    ("distill-envs-huge", distill("--n-envs", "100000000"), "n_envs"),
    ("distill-teacher-nan", distill(teacher="{ws}/nan"), "NaN or inf"),
    ("distill-other-teacher", distill(teacher="{ws}/teacher2"), "teacher"),
    ("distill-corrupt-config", distill("--steps", "3", out="{ws}/distrun-badcfg"), "not a student run"),
    ("distill-bad-resume", distill("--steps", "3", out="{ws}/distrun-badresume"), "resume"),
    ("distill-changed-setting", distill("--steps", "3", "--alpha", "3", out="{ws}/distrun"), "alpha"),
    ("train-bad-resume", train("--timesteps", "256", out="{ws}/trainrun"), "resume"),
    ("ds-out-proc", dataset(out="/proc/digr-corpus"), "/proc"),
    # -- pipeline and report -----------------------------------------------------------------------------
    ("pipe-preset", ["pipeline", "--task", TASK, "--out", "{ws}/new-pipe", "--preset", "nope"], "nope"),
    ("pipe-out-file", ["pipeline", "--task", TASK, "--out", "{ws}/afile", "--teacher", EV], "is a file"),
    ("pipe-out-dataset", ["pipeline", "--task", TASK, "--out", "{ws}/ds", "--teacher", EV], "dataset"),
    ("pipe-teacher-nan", ["pipeline", "--task", TASK, "--out", "{ws}/new-pipe", "--teacher", "{ws}/nan"],
     "NaN or inf"),
    ("report-pipeline-list", ["report", "{ws}/pipe-list"], "pipeline.json"),
    ("pipe-json-list", ["pipeline", "--task", TASK, "--out", "{ws}/pipe-list", "--teacher", EV], "pipeline.json"),
    ("report-user", ["report", "{ws}/userdir"], "pipeline"),
    ("report-file", ["report", "{ws}/afile"], "afile"),
    ("report-missing", ["report", "{ws}/nope"], "nope"),
    ("report-section", ["report", "{ws}/userdir", "--sections", "nope"], "nope"),
    ("report-eps", ["report", "{ws}/userdir", "--eps", "5"], "eps"),
    ("export-format", ["export", EV, "--format", "nope", "--out", "{ws}/x.onnx"], "nope"),
    ("export-nan", ["export", "{ws}/nan", "--format", "torchscript", "--out", "{ws}/x.pt"], "NaN or inf"),
    ("export-out-folder", ["export", EV, "--format", "torchscript", "--out", "{ws}/userdir"], "is a folder"),
    ("export-out-missing-folder", ["export", EV, "--format", "sb3", "--out", "{ws}/no/x.zip"], "does not exist"),
    # -- global ------------------------------------------------------------------------------------------
    ("threads-0", ["--torch-threads", "0", *perf("teacher")], "--torch-threads"),
    ("threads-huge", ["--torch-threads", "100000000", *perf("teacher")], "--torch-threads"),
    ("no-command", [], "COMMAND"),
    ("unknown-option", [*perf("teacher"), "--frobnicate"], "--frobnicate"),
]


@pytest.mark.parametrize("argv,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(ws, capsys, argv, fragment):
    argv = [a.replace("{ws}", str(ws)) for a in argv]
    before = _snapshot(ws)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code not in (0, None), f"exit status {code}; stderr: {err!r}"
    assert len(lines) == 1 and lines[0].startswith("digr: error: "), err
    assert "Traceback" not in err and "unexpected" not in err, err
    assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert out == ""
    assert _snapshot(ws) == before, "the workspace changed"


def test_corpus_covers_every_command():
    from digr.cli.main import COMMANDS, EVALUATE

    covered = {c[1][0] for c in CASES if c[1]} | {c[1][1] for c in CASES if c[1][:1] == ["evaluate"]}
    want = {m.rsplit(".", 1)[1].replace("_", "-") for m in COMMANDS}
    want |= {m.rsplit(".", 1)[1].removeprefix("eval_").replace("_", "-") for m in EVALUATE}
    assert want <= covered, want - covered
    assert len(CASES) >= 100
