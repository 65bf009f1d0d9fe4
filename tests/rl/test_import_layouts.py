"""What users bring from SB3: the RL Zoo Atari layout (4 stacked frames), DQN, A2C, any channel
order, and their own env registered by their own module."""

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from digr.cli.main import main
from digr.models import load_policy
from digr.models.checkpoint import read_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "own_env"


class _Spaces(gym.Env):
    """Only spaces: enough for SB3 to build and save a model of that layout."""

    def __init__(self, shape, n):
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.action_space = gym.spaces.Discrete(n)

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


def _save(tmp_path, cls, shape, n=4, **kw):
    model = cls("CnnPolicy", _Spaces(shape, n), device="cpu", seed=0, **kw)
    path = tmp_path / f"{cls.__name__}.zip"
    model.save(str(path))
    return model, path


def _same_actions(model, ck, obs_chw):
    policy = load_policy(ck)
    want = policy(torch.from_numpy(obs_chw).float() / 255).argmax(-1).numpy()
    got, _ = model.predict(obs_chw, deterministic=True)
    assert np.array_equal(got, want)


def test_rl_zoo_atari_layout_imports_and_evaluates_on_breakout(tmp_path, capsys):
    from stable_baselines3 import PPO

    # RL Zoo: AtariWrapper frames (84, 84, 1) stacked 4 deep channel-last, transposed by SB3
    model, zoo = _save(tmp_path, PPO, (84, 84, 4), n_steps=16, batch_size=16)
    assert main(["import-sb3", str(zoo), "--out", str(tmp_path / "ck"), "--task", "breakout"]) == 0
    assert read_config(tmp_path / "ck")["task"] == "breakout+stack4"
    assert "task breakout+stack4" in capsys.readouterr().out
    obs = np.random.default_rng(0).integers(0, 256, (3, 4, 84, 84), dtype=np.uint8)
    _same_actions(model, tmp_path / "ck", obs)
    # later commands need no restating: the task comes from the checkpoint, --task breakout fits it
    for task in ([], ["--task", "breakout"]):
        assert main(["evaluate", "performance", "--policy", str(tmp_path / "ck"), "--episodes", "1",
                     "--json", *task]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["task"] == "breakout+stack4" and out["episodes"] == 1


def test_dqn_imports_as_softmax_of_q_values(tmp_path, capsys):
    from stable_baselines3 import DQN

    model, path = _save(tmp_path, DQN, (84, 84, 2), buffer_size=100)
    assert main(["import-sb3", str(path), "--out", str(tmp_path / "ck"), "--task", "breakout"]) == 0
    assert "softmax of the Q-values" in capsys.readouterr().out
    meta = read_config(tmp_path / "ck")["meta"]
    assert meta["sb3_class"] == "DQN" and meta["policy_from"] == "softmax of the Q-values"
    obs = np.random.default_rng(1).integers(0, 256, (3, 2, 84, 84), dtype=np.uint8)
    _same_actions(model, tmp_path / "ck", obs)
    with torch.no_grad():
        q = model.policy.q_net(model.policy.obs_to_tensor(obs)[0])
    torch.testing.assert_close(load_policy(tmp_path / "ck")(torch.from_numpy(obs).float() / 255), q)


def test_a2c_channel_first_imports(tmp_path):
    from stable_baselines3 import A2C

    model, path = _save(tmp_path, A2C, (3, 64, 64))
    assert main(["import-sb3", str(path), "--out", str(tmp_path / "ck"), "--task", "red-fetch-green"]) == 0
    obs = np.random.default_rng(2).integers(0, 256, (2, 3, 64, 64), dtype=np.uint8)
    _same_actions(model, tmp_path / "ck", obs)


def test_without_task_says_what_is_missing_and_writes_nothing(tmp_path, capsys):
    from stable_baselines3 import PPO

    _, path = _save(tmp_path, PPO, (84, 84, 4), n_steps=16, batch_size=16)
    assert main(["import-sb3", str(path), "--out", str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "(4, 84, 84) with 4 actions" in err and "--task NAME or --env ID" in err
    assert not (tmp_path / "ck").exists()


def test_own_env_from_own_module_through_every_command(tmp_path, capsys, monkeypatch):
    """The issue's bar: a user's SB3 PPO on an env digr does not ship, registered by the user's
    module, through import-sb3, evaluate performance, saliency, dataset and distill with
    --env ID --env-module MOD (examples/own_env, tiny budgets)."""
    pytest.importorskip("minigrid")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    for mod in ("doorkey_env", "train_sb3"):
        sys.modules.pop(mod, None)
    import train_sb3

    zip_path = tmp_path / "ppo.zip"
    train_sb3.main(["--timesteps", "128", "--n-steps", "32", "--out", str(zip_path)])
    env = ["--env", "DoorKeyRGB-v0", "--env-module", "doorkey_env"]
    t, s = str(tmp_path / "teacher"), str(tmp_path / "student")
    steps = [
        ["import-sb3", str(zip_path), "--out", t, *env],
        ["evaluate", "performance", "--policy", t, "--episodes", "1", *env],
        ["saliency", "--policy", t, "--method", "vanilla", "--states", "1", "--out", str(tmp_path / "sal"), *env],
        ["dataset", "--teacher", t, "--out", str(tmp_path / "ds"), "--size", "2", "--stride", "8", "--workers", "1",
         "--no-progress", *env],
        ["distill", "--teacher", t, "--dataset", str(tmp_path / "ds"), "--out", s, "--steps", "2", "--n-envs", "1",
         "--batch-size", "2", "--no-progress", *env],
        ["evaluate", "performance", "--policy", s, "--episodes", "1", "--json"],  # task from the checkpoint
    ]
    for argv in steps:
        assert main(argv) == 0, argv
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["task"] == "gym:doorkey_env:DoorKeyRGB-v0"
    assert read_config(s)["task"] == "gym:doorkey_env:DoorKeyRGB-v0"
