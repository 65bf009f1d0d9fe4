import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from digr.cli.main import main
from digr.envs import get_task, make_env
from digr.models import PolicyConfig, load_policy, to_tensor
from digr.rl.sb3 import policy_kwargs


def _probs_sb3(model, obs):
    t, _ = model.policy.obs_to_tensor(obs)
    return model.policy.get_distribution(t).distribution.probs


@pytest.mark.parametrize("kind", ["digr", "nature"])
def test_import_matches_sb3_outputs(tmp_path, kind):
    env = make_env("red-fetch-green")
    kw = {} if kind == "nature" else dict(policy_kwargs=policy_kwargs(PolicyConfig.for_task(get_task("red-fetch-green"))))
    model = PPO("CnnPolicy", env, n_steps=16, batch_size=16, device="cpu", seed=0, **kw)
    model.save(tmp_path / "m.zip")
    assert main(["import-sb3", str(tmp_path / "m.zip"), "--out", str(tmp_path / "ck"),
                 "--task", "red-fetch-green"]) == 0
    policy = load_policy(tmp_path / "ck", task="red-fetch-green")
    obs = np.stack([env.reset(seed=s)[0] for s in range(3)])
    with torch.no_grad():
        ours = torch.softmax(policy(to_tensor(obs)), -1)
        theirs = _probs_sb3(model, obs)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
        t, _ = model.policy.obs_to_tensor(obs)
        torch.testing.assert_close(policy.value(to_tensor(obs)), model.policy.predict_values(t).squeeze(-1))


def test_import_rejects_hidden_mlp_layers(tmp_path, capsys):
    env = make_env("red-fetch-green")
    PPO("CnnPolicy", env, n_steps=16, batch_size=16, device="cpu",
        policy_kwargs=dict(net_arch=[32])).save(tmp_path / "m.zip")
    assert main(["import-sb3", str(tmp_path / "m.zip"), "--out", str(tmp_path / "ck")]) == 2
    assert "net_arch" in capsys.readouterr().err
    assert not (tmp_path / "ck").exists()


def test_import_help_warns_about_pickle(capsys):
    with pytest.raises(SystemExit):
        main(["import-sb3", "--help"])
    assert "pickle" in capsys.readouterr().out.lower()
