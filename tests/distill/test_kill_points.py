"""kill -9 at every point where ``digr dataset``, ``distill`` or ``train`` commits a file, then the
same command again: it completes, and leaves what a run without the kill leaves.

Every file digr writes reaches its final name through ``os.replace`` (:mod:`digr.io`), so the
commit points are exactly the ``os.replace`` calls. A forked child runs the command and dies with
``os._exit`` (no ``finally``, no cleanup: what kill -9 does) just before its k-th call, for every k
up to the number an uninterrupted run makes. Dying there also covers a kill anywhere while the
temporary file or folder of that commit was being written.

What "leaves the same" means per command, as documented in the README's reliability section:

* dataset: the finished folder is byte-identical to an uninterrupted run's;
* distill and train: a resumed run draws fresh batches (distill) or fresh environments (train)
  from where its last complete checkpoint stood, so its final weights equal those of a run that
  was stopped cleanly at that checkpoint and continued -- one of a known, small set -- and the
  folder is consistent (``policy/`` and ``resume/`` at the final step, one log row per step, no
  temporary folders).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from contextlib import redirect_stderr, redirect_stdout

import pytest
from safetensors.torch import load_file

from digr.cli.main import main

KILLED = 137


def _run(argv: list[str], kill_at: int | None = None) -> tuple[int, int]:
    """Run ``digr argv`` in a forked child; with ``kill_at``, the child dies just before its
    ``kill_at``-th ``os.replace``. Returns ``(exit code, os.replace calls made)``."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        code, count, real = 3, [0], os.replace

        def replace(src, dst, *args, **kwargs):
            count[0] += 1
            if count[0] == kill_at:
                os._exit(KILLED)
            return real(src, dst, *args, **kwargs)

        try:
            os.replace = replace
            with open(os.devnull, "w") as null, redirect_stdout(null), redirect_stderr(null):
                code = main(argv)
        except BaseException:  # noqa: BLE001 - any escape is a failure the parent sees
            code = 3
        finally:
            os.write(w, str(count[0]).encode())
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        calls = f.read()
    return os.waitstatus_to_exitcode(status), int(calls or 0)


def _files(path):
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _weights(run):
    return {k: v for k, v in load_file(str(run / "policy" / "model.safetensors")).items()}


def _same(a, b):
    return a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def _no_temporaries(run):
    left = [str(p.relative_to(run)) for p in run.rglob(".*")]
    assert not left, f"temporary files or folders left behind: {left}"


def _kill_everywhere(argv_for, out_root, calls):
    """Yield ``(k, run folder)`` after killing a run at commit point k and rerunning it."""
    for k in range(1, calls + 1):
        run = out_root / f"killed-{k}"
        code, _ = _run(argv_for(run), kill_at=k)
        assert code == KILLED, f"the run did not reach commit point {k} of {calls}"
        code, _ = _run(argv_for(run))
        assert code == 0, f"rerun after a kill at commit point {k} failed"
        yield k, run


def test_dataset_killed_at_every_commit_point_resumes_byte_identical(tmp_path, teacher_ckpt):
    def argv(out):
        return ["dataset", "--teacher", str(teacher_ckpt), "--task", "red-fetch-green", "--out", str(out),
                "--size", "6", "--shard-size", "2", "--stride", "16", "--radius", "4", "--workers", "1",
                "--seed", "0", "--no-progress"]

    clean = tmp_path / "clean"
    code, calls = _run(argv(clean))
    assert code == 0 and calls >= 4  # three shards and the manifest at least
    want = _files(clean)
    for k, run in _kill_everywhere(argv, tmp_path, calls):
        assert _files(run) == want, f"kill at commit point {k}: dataset differs from a clean run's"
        _no_temporaries(run)
        shutil.rmtree(run)


def _check_student_run(run, steps):
    cfg = json.loads((run / "policy" / "config.json").read_text())
    state = json.loads((run / "resume" / "state.json").read_text())
    assert cfg["meta"]["steps"] == steps and state["step"] == steps
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == sorted(set(logged)) and logged[-1] == steps, logged
    _no_temporaries(run)


def _distill_argv(teacher_ckpt, tiny_dataset, *extra):
    def argv(out, steps=4):
        return ["distill", "--teacher", str(teacher_ckpt), "--dataset", str(tiny_dataset), "--task",
                "red-fetch-green", "--out", str(out), "--steps", str(steps), "--checkpoint-every", "2",
                "--log-every", "1", "--n-envs", "2", "--batch-size", "4", "--eval-episodes", "0",
                "--seed", "0", "--no-progress", "--threads", "1", *extra]
    return argv


def test_distill_killed_at_every_commit_point_resumes_consistently(tmp_path, teacher_ckpt, tiny_dataset):
    # The reference "stopped at step 2, then continued" is a 2-step run resumed to 4 steps; under
    # --lr-anneal a 2-step run decays on a 2-step schedule, so this test runs without it (the next
    # one covers the annealed default).
    argv = _distill_argv(teacher_ckpt, tiny_dataset, "--no-lr-anneal")

    clean = tmp_path / "clean"
    code, calls = _run(argv(clean))
    assert code == 0 and calls >= 4
    # The runs a kill may lead to: resumed from nothing, or from the step-2 checkpoint.
    from_2 = tmp_path / "from-2"
    assert _run(argv(from_2, steps=2))[0] == 0 and _run(argv(from_2))[0] == 0
    allowed = [_weights(clean), _weights(from_2)]
    assert not _same(*allowed), "the two reference runs should differ (fresh batches after a resume)"
    for k, run in _kill_everywhere(argv, tmp_path, calls):
        _check_student_run(run, 4)
        assert any(_same(_weights(run), w) for w in allowed), f"kill at commit point {k}: unexpected weights"
        shutil.rmtree(run)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_train_killed_at_every_commit_point_resumes_consistently(tmp_path):
    def argv(out, steps=256):  # one environment: a 128-step rollout, a checkpoint after each
        return ["train", "--task", "red-fetch-green", "--out", str(out), "--timesteps", str(steps),
                "--n-envs", "1", "--checkpoint-every", "128", "--seed", "0", "--no-progress", "--threads", "1"]

    clean = tmp_path / "clean"
    code, calls = _run(argv(clean))
    assert code == 0 and calls >= 4
    from_128 = tmp_path / "from-128"
    assert _run(argv(from_128, steps=128))[0] == 0 and _run(argv(from_128))[0] == 0
    allowed = [_weights(clean), _weights(from_128)]
    for k, run in _kill_everywhere(argv, tmp_path, calls):
        cfg = json.loads((run / "policy" / "config.json").read_text())
        state = json.loads((run / "resume" / "state.json").read_text())
        assert cfg["meta"]["steps"] == state["num_timesteps"] == 256
        rows = [int(r.split(",")[0]) for r in (run / "progress.csv").read_text().splitlines()[1:]]
        assert rows == [128, 256], f"kill at commit point {k}: progress rows {rows}"
        _no_temporaries(run)
        assert any(_same(_weights(run), w) for w in allowed), f"kill at commit point {k}: unexpected weights"
        shutil.rmtree(run)


def test_annealed_distill_killed_anywhere_ends_as_the_clean_run_or_one_resumed_run(tmp_path, teacher_ckpt,
                                                                                  tiny_dataset):
    """With the default's decaying rate (the schedule follows the command's --steps), a kill leaves
    one of two outcomes: the clean run's weights (killed before the step-2 checkpoint: redone from
    step 0, the same batches) or those of the run resumed from that checkpoint -- one and the same
    for every kill point past it."""
    argv = _distill_argv(teacher_ckpt, tiny_dataset, "--lr-anneal")
    clean = tmp_path / "clean"
    code, calls = _run(argv(clean))
    assert code == 0 and calls >= 4
    want = _weights(clean)
    resumed = []
    for k, run in _kill_everywhere(argv, tmp_path, calls):
        _check_student_run(run, 4)
        w = _weights(run)
        if not _same(w, want):
            resumed.append((k, w))
        shutil.rmtree(run)
    assert resumed, "no kill point led to a resumed run"
    assert all(_same(w, resumed[0][1]) for _, w in resumed), [k for k, _ in resumed]
