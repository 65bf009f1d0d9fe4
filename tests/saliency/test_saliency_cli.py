"""``digr saliency`` end to end on a tiny Red-Fetch-Green policy, and its errors."""

import json

import numpy as np
import pytest
import torch

from digr.cli.main import main
from digr.envs import get_task
from digr.models import PolicyConfig, PolicyNet, save_policy


@pytest.fixture
def rfg_ckpt(tmp_path):
    spec = get_task("red-fetch-green")
    torch.manual_seed(0)
    cfg = PolicyConfig(obs_shape=spec.obs_shape, n_actions=spec.n_actions, convs=((4, 8, 8, 0), (4, 3, 1, 1)),
                       hidden=8)
    return save_policy(PolicyNet(cfg).eval(), tmp_path / "policy", task=spec.name)


def test_saliency_command_writes_npz_json_and_panels(rfg_ckpt, tmp_path, capsys):
    out = tmp_path / "sal"
    rc = main(["saliency", "--policy", str(rfg_ckpt), "--task", "red-fetch-green", "--method",
               "vanilla,perturbation,sarfa", "--states", "3", "--out", str(out), "--seed", "3",
               "--stride", "4", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["states"] == 3 and summary["panels"] == 1
    with np.load(out / "saliency.npz", allow_pickle=False) as z:
        assert z["states"].shape == (3, 64, 64, 3) and z["states"].dtype == np.uint8
        assert z["methods"].tolist() == ["vanilla", "perturbation", "sarfa"]
        for name in ("vanilla", "perturbation", "sarfa"):
            assert z[name].shape == (3, 64, 64) and z[name].dtype == np.float32
            assert 0.0 <= z[name].min() and z[name].max() <= 1.0
        states = z["states"]
    meta = json.loads((out / "saliency.json").read_text())
    assert meta["methods"]["perturbation"]["settings"]["radius"] == 4  # the task's radius
    assert meta["methods"]["perturbation"]["settings"]["stride"] == 4
    png = out / meta["panels"][0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.rglob(".*")]  # no temp files left behind
    # same seed, same states
    rc = main(["saliency", "--policy", str(rfg_ckpt), "--task", "red-fetch-green", "--method", "gradcam",
               "--states", "3", "--out", str(tmp_path / "again"), "--seed", "3"])
    assert rc == 0
    with np.load(tmp_path / "again" / "saliency.npz", allow_pickle=False) as z:
        assert np.array_equal(z["states"], states)


@pytest.mark.parametrize("argv,msg", [
    (["--method", "lime"], "unknown saliency method"),
    (["--task", "breakout"], "expects observations"),
])
def test_saliency_command_errors(rfg_ckpt, tmp_path, capsys, argv, msg):
    base = {"--policy": str(rfg_ckpt), "--task": "red-fetch-green", "--method": "vanilla", "--states": "1",
            "--out": str(tmp_path / "o")}
    for k, v in zip(argv[::2], argv[1::2]):
        base[k] = v
    rc = main(["saliency", *[x for kv in base.items() for x in kv]])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("digr: error:") and msg in err and err.count("\n") == 1
