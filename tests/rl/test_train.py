import json

import numpy as np
import torch

from digr.cli.main import main
from digr.models import load_policy
from digr.models.checkpoint import read_config


def _train(out, steps, capsys=None):
    return main(["train", "--task", "red-fetch-green", "--out", str(out), "--timesteps", str(steps),
                 "--n-envs", "2", "--checkpoint-every", "256", "--no-progress", "--threads", "1"])


def test_train_writes_checkpoint_and_resumes(tmp_path):
    out = tmp_path / "run"
    assert _train(out, 256) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["ppo"]["learning_rate"] == 1e-3 and cfg["ppo"]["n_envs"] == 2  # Table 2 + override
    assert cfg["software"]["torch"] == torch.__version__
    assert read_config(out / "policy")["meta"]["steps"] == 256
    first = load_policy(out, task="red-fetch-green")
    assert (out / "resume" / "optimizer.pt").exists() and list((out / "tb").iterdir())

    assert _train(out, 512) == 0  # same folder, more steps: continues from 256
    assert read_config(out / "policy")["meta"]["steps"] == 512
    rows = (out / "progress.csv").read_text().strip().splitlines()
    assert rows[0].startswith("steps,") and [int(r.split(",")[0]) for r in rows[1:]] == [256, 512]
    second = load_policy(out)
    x = torch.rand(1, 3, 64, 64)
    assert not torch.equal(first(x), second(x)), "resumed training must keep learning"

    assert _train(out, 512) == 0  # nothing left to do: no change
    assert read_config(out / "policy")["meta"]["steps"] == 512


def test_resumed_optimizer_state_is_loaded_without_pickle(tmp_path):
    out = tmp_path / "run"
    _train(out, 256)
    state = torch.load(out / "resume" / "optimizer.pt", weights_only=True)
    assert state["state"], "Adam moments are saved"
    assert np.isfinite(json.loads((out / "resume" / "state.json").read_text())["num_timesteps"])


def test_init_from_a_checkpoint_continues_its_weights_and_step_count(tmp_path):
    src = tmp_path / "src"
    assert _train(src, 256) == 0
    out = tmp_path / "next"
    args = ["train", "--task", "red-fetch-green", "--out", str(out), "--n-envs", "2", "--checkpoint-every", "256",
            "--no-progress", "--threads", "1", "--init-from", str(src / "policy")]
    # as many steps as the checkpoint has: nothing to train, so policy/ is the checkpoint's weights
    assert main([*args, "--timesteps", "256"]) == 0
    x = torch.rand(4, 3, 64, 64)
    a, b = load_policy(src / "policy"), load_policy(out / "policy")
    assert all(torch.equal(p, q) for p, q in zip(a(x), b(x), strict=True)), "actor and critic copied"
    assert read_config(out / "policy")["meta"]["steps"] == 256
    assert main([*args, "--timesteps", "512"]) == 0  # then trains on from step 256
    assert read_config(out / "policy")["meta"]["steps"] == 512
    assert not torch.equal(a(x)[0], load_policy(out / "policy")(x)[0])


def test_init_from_a_checkpoint_of_another_task_is_one_clear_error(tmp_path, capsys):
    src = tmp_path / "src"
    assert _train(src, 256) == 0
    rc = main(["train", "--task", "breakout", "--out", str(tmp_path / "b"), "--timesteps", "512",
               "--no-progress", "--init-from", str(src / "policy")])
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err and "expects observations" in err
    assert not (tmp_path / "b").exists(), "nothing is created for a refused --init-from"
