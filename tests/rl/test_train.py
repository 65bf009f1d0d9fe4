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
