"""Exported policies return digr's logits and eq. 2 saliency map (ONNX Runtime, TorchScript) or act
as digr's policy does (SB3)."""

import numpy as np
import pytest
import torch

from digr.cli.main import main
from digr.deploy import ExplainingPolicy, export_policy
from digr.errors import DigrError
from digr.models import PolicyConfig, PolicyNet, save_policy
from digr.saliency.vanilla import vanilla_gradient

# Every layer kind the map's written-out backward handles: max / sum / flatten pooling, padding,
# kernels that do not tile their input (output padding), the input blur, the input pool and softplus units.
CONFIGS = {
    "rfg-max": PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((8, 8, 8, 0), (8, 5, 1, 2), (8, 7, 1, 3)),
                            hidden=16, pool="max"),
    "atari-flatten": PolicyConfig(obs_shape=(2, 84, 84), n_actions=4, convs=((8, 8, 4, 0), (8, 4, 2, 0), (8, 3, 1, 0)),
                                  hidden=16),
    "odd-sum-blur": PolicyConfig(obs_shape=(1, 37, 29), n_actions=5, convs=((4, 5, 3, 1), (6, 3, 2, 0)), hidden=8,
                                 pool="sum", input_blur=1.25),
    "input-pool": PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((4, 4, 2, 1),), hidden=8, input_pool=4),
    "softplus": PolicyConfig(obs_shape=(2, 84, 84), n_actions=4, convs=((8, 8, 4, 0), (8, 4, 2, 0)), hidden=16,
                             softplus_beta=5.0),
}


def _net(cfg):
    torch.manual_seed(0)
    return PolicyNet(cfg).eval()


@pytest.mark.parametrize("name", CONFIGS)
def test_written_out_backward_is_the_vanilla_gradient(name):
    net = _net(CONFIGS[name])
    x = torch.rand(4, *net.config.obs_shape, generator=torch.Generator().manual_seed(1))
    logits, sal = ExplainingPolicy(net)(x)
    assert torch.equal(logits, net(x))
    torch.testing.assert_close(sal, vanilla_gradient(net, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", CONFIGS)
def test_onnx_runtime_gives_digr_logits_and_map(tmp_path, name):
    ort = pytest.importorskip("onnxruntime")
    net = _net(CONFIGS[name])
    path = export_policy(net, tmp_path / "p.onnx", fmt="onnx")
    x = torch.rand(3, *net.config.obs_shape, generator=torch.Generator().manual_seed(2))  # not the traced batch
    logits, sal = ort.InferenceSession(str(path)).run(None, {"obs": x.numpy()})
    np.testing.assert_allclose(logits, net(x).detach().numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(sal, vanilla_gradient(net, x).numpy(), rtol=0, atol=1e-4)


def test_torchscript_gives_digr_logits_and_map(tmp_path):
    net = _net(CONFIGS["odd-sum-blur"])
    path = export_policy(net, tmp_path / "p.pt", fmt="torchscript")
    x = torch.rand(5, *net.config.obs_shape)
    logits, sal = torch.jit.load(str(path))(x)
    torch.testing.assert_close(logits, net(x))
    torch.testing.assert_close(sal, vanilla_gradient(net, x), rtol=0, atol=1e-5)


def test_sb3_zip_loads_in_sb3_and_acts_the_same(tmp_path):
    from stable_baselines3 import PPO

    net = _net(CONFIGS["atari-flatten"])
    path = export_policy(net, tmp_path / "p.zip", fmt="sb3")
    model = PPO.load(str(path), device="cpu")
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, (6, *net.config.obs_shape), dtype=np.uint8)
    actions, _ = model.predict(obs, deterministic=True)
    want = net(torch.from_numpy(obs).float() / 255).argmax(-1).numpy()
    assert np.array_equal(actions, want)
    hwc = np.ascontiguousarray(obs.transpose(0, 2, 3, 1))  # digr's envs give channel-last frames
    assert np.array_equal(model.predict(hwc, deterministic=True)[0], want)


def test_cli_export_and_its_errors(tmp_path, capsys):
    save_policy(_net(CONFIGS["rfg-max"]), tmp_path / "ck", task="red-fetch-green")
    assert main(["export", str(tmp_path / "ck"), "--format", "torchscript", "--out", str(tmp_path / "m.pt"),
                 "--json"]) == 0
    assert (tmp_path / "m.pt").is_file() and '"format": "torchscript"' in capsys.readouterr().out
    assert main(["export", str(tmp_path / "ck"), "--format", "onnx", "--out", str(tmp_path / "ck")]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "ck"), "--format", "onnx", "--out", str(tmp_path / "no" / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "m.pt"]  # nothing half-written


def test_fls_policies_are_refused():
    from digr.models.fls import fls_config

    with pytest.raises(DigrError, match="attention"):
        ExplainingPolicy(PolicyNet(fls_config(CONFIGS["rfg-max"], "sparse")))


def test_committed_red_fetch_green_student_exports_to_onnx(tmp_path):
    """The issue's bar: the committed DIGR student through ``digr export``, checked in ONNX Runtime
    on held-out states of its own task.

    Eq. 2's map is ill-conditioned in float32 where the policy is nearly deterministic: its
    gradient at the logits, ``p_j (p_j - sum_a p_a^2)``, cancels for the likely action, leaving a
    relative error of about ``u / (1 - p_max)`` (``u = 2^-24``). The smooth student of session 22
    is that sure on many states (``1 - p_max`` down to 1.7e-6 on these 32), where digr's float32
    map is up to 5e-3 from the float64 one and ONNX Runtime's, rounding in another order, up to
    2e-2 (measured). Session 20's ReLU student was less sure; there the gaps came from max-pool
    ties. So: logits within 1e-4; both float32 maps within ``max(1e-4, 4 u / (1 - p_max))`` of
    the float64 map on every state (measured: at most 0.28 of that bound); and ONNX Runtime's map
    within 1e-4 of digr's wherever the policy is not that sure (``1 - p_max > 1e-3``)."""
    import copy
    from pathlib import Path

    ort = pytest.importorskip("onnxruntime")
    from digr.evaluation.agreement import heldout_states
    from digr.models import load_policy

    ck = Path(__file__).resolve().parents[2] / "results" / "red-fetch-green" / "digr"
    if not ck.exists():
        pytest.skip("no committed results in this checkout")
    assert main(["export", str(ck), "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 0
    net = load_policy(ck)
    x = heldout_states(net, "red-fetch-green", 32, seed=0)
    logits, sal = ort.InferenceSession(str(tmp_path / "x.onnx")).run(None, {"obs": x.numpy()})
    np.testing.assert_allclose(logits, net(x).detach().numpy(), rtol=0, atol=1e-4)
    ours = vanilla_gradient(net, x).numpy()
    exact = vanilla_gradient(copy.deepcopy(net).double(), x.double()).numpy()
    per_state = lambda a, b: np.abs(a - b).reshape(len(x), -1).max(1)  # noqa: E731
    with torch.no_grad():
        unsure = 1.0 - torch.softmax(net(x).double(), -1).amax(-1).numpy()  # 1 - p_max per state
    bound = np.maximum(1e-4, 4 * 2.0**-24 / unsure)
    assert (per_state(sal, exact) <= bound).all() and (per_state(ours, exact) <= bound).all()
    well = unsure > 1e-3
    assert well.sum() >= 4, "too few well-conditioned states to compare the two float32 maps"
    assert (per_state(sal, ours)[well] < 1e-4).all()
