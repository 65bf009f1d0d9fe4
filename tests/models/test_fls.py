"""FLS attention networks: configs, forward pass, parameter counts, checkpoints, SB3, training switch."""

import json
import math
import re

import gymnasium as gym
import pytest
import torch

import digr.models.fls as fls_module
from digr.envs import get_task
from digr.errors import DigrError
from digr.models import PolicyConfig, PolicyNet, conv_geometry, fls_config, load_policy, save_policy
from digr.models.fls import VARIANTS, count_parameters, fls_variant

OLD_KEYS = {"obs_shape", "n_actions", "convs", "hidden", "pool"}  # config.json before attention existed


def _net(config, seed=0):
    torch.manual_seed(seed)
    return PolicyNet(config).eval()


def _obs(b, shape, seed=0):
    return torch.rand(b, *shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ configs
def test_plain_config_dict_is_unchanged_and_old_dicts_load(tiny_config):
    d = tiny_config.to_dict()
    assert set(d) == OLD_KEYS  # run folders compare these dicts to resume: old runs must still match
    assert PolicyConfig.from_dict(d) == tiny_config
    old = {k: v for k, v in d.items() if k != "pool"}  # written before pool existed
    cfg = PolicyConfig.from_dict(json.loads(json.dumps(old)))
    assert cfg.attention is None and cfg.pool == "flatten" and cfg == tiny_config
    assert not any(k.startswith("trunk.attention") for k in PolicyNet(cfg).state_dict())


@pytest.mark.parametrize("variant", VARIANTS)
def test_fls_config_round_trips_and_names_its_variant(tiny_config, variant):
    cfg = fls_config(tiny_config, variant)
    assert cfg.attention == "fls" and fls_variant(cfg) == variant and fls_variant(tiny_config) is None
    d = json.loads(json.dumps(cfg.to_dict()))
    assert {"attention", "attention_channels", "attention_kernel"} <= set(d)
    assert PolicyConfig.from_dict(d) == cfg
    assert cfg.pool == ("flatten" if variant == "sparse" else "sum")
    assert (cfg.obs_shape, cfg.n_actions, cfg.hidden) == (tiny_config.obs_shape, tiny_config.n_actions,
                                                          tiny_config.hidden)


def test_dense_keeps_resolution_with_the_papers_kernels(tiny_config):
    cfg = fls_config(tiny_config, "dense")
    assert [(k, s, p) for _, k, s, p in cfg.convs] == [(7, 1, 3), (5, 1, 2), (3, 1, 1)]
    assert [c[0] for c in cfg.convs] == [4, 4, 4]  # widths 4, 8, 8 // 4, at least 4
    assert cfg.attention_channels == 4  # as wide as the last conv by default
    feats = PolicyNet(cfg).trunk.features(_obs(1, cfg.obs_shape))
    assert feats.shape[-2:] == cfg.obs_shape[-2:]
    paper = fls_config(PolicyConfig.for_task(get_task("breakout")), "dense", dense_widths=(32, 64, 64),
                       attention_channels=256)
    assert [c[0] for c in paper.convs] == [32, 64, 64] and paper.attention_channels == 256


def test_bad_configs_raise_one_line_errors(tiny_config):
    cases = [
        lambda: fls_config(tiny_config, "sparse_sum"),
        lambda: fls_config(fls_config(tiny_config, "sparse"), "sparse"),
        lambda: fls_config(PolicyConfig((3, 16, 16), 4, ((4, 4, 4, 0),), 8), "dense"),
        lambda: fls_config(tiny_config, "dense", dense_widths=(4, 4)),
        lambda: fls_config(tiny_config, "sparse", dense_widths=(4, 4, 4)),
        lambda: PolicyNet(PolicyConfig((3, 16, 16), 4, ((4, 4, 4, 0),), 8, pool="avg")),
        lambda: PolicyNet(PolicyConfig((3, 16, 16), 4, ((4, 4, 4, 0),), 8, attention="spatial")),
        lambda: PolicyNet(PolicyConfig((3, 16, 16), 4, ((4, 4, 4, 0),), 8, attention="fls",
                                       attention_kernel=2)),
        lambda: PolicyNet(PolicyConfig((3, 16, 16), 4, ((4, 4, 4, 0),), 8, attention="fls",
                                       attention_channels=0)),
    ]
    for make in cases:
        with pytest.raises(DigrError) as info:
            make()
        assert "\n" not in str(info.value)


def test_conv_geometry_by_hand():
    # Nature-CNN: 8 + 3*4 + 2*8 = 36 px, stride 4*2 = 8, no padding (the FLS code's 36/8/0).
    nature = get_task("breakout").convs
    assert conv_geometry(nature) == fls_module.ConvGeometry(36, 8, 0)
    # Red-Fetch-Green: 8 + 4*8 + 6*8 = 88 px, stride 8, padding 2*8 + 3*8 = 40.
    assert conv_geometry(get_task("red-fetch-green").convs) == fls_module.ConvGeometry(88, 8, 40)
    # Dense 7/5/3 at stride 1, same padding: 1 + 6 + 4 + 2 = 13 px, padding 3 + 2 + 1 = 6 (FLS code).
    assert conv_geometry(((8, 7, 1, 3), (8, 5, 1, 2), (8, 3, 1, 1))) == fls_module.ConvGeometry(13, 1, 6)


# ------------------------------------------------------------------------------------------ forward
def test_constant_attention_scales_the_pooled_features(tiny_config):
    """With zero FLS weights and score bias log(e^2 - 1), A = softplus(bias) = 2 everywhere, so the
    sum-pooled features are exactly twice the plain trunk's."""
    cfg = fls_config(tiny_config, "sparse-sum")
    net = _net(cfg)
    att = net.trunk.attention
    with torch.no_grad():
        for conv in (att.hidden, att.score):
            conv.weight.zero_()
            conv.bias.zero_()
        att.score.bias.fill_(math.log(math.e ** 2 - 1))
    obs = _obs(3, cfg.obs_shape)
    with torch.no_grad():
        a = net.trunk.attention_map(obs)
        torch.testing.assert_close(a, torch.full((3, 1, 4, 4), 2.0))
        expected = torch.relu(net.trunk.linear(2 * net.trunk.features(obs).sum((2, 3))))
        torch.testing.assert_close(net.trunk(obs), expected)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_gates_features_and_returns_the_same_map(tiny_config, variant):
    cfg = fls_config(tiny_config, variant)
    net = _net(cfg)
    obs = _obs(4, cfg.obs_shape, seed=3)
    with torch.no_grad():
        feats = net.trunk.features(obs)
        a = net.trunk.attention_map(obs)
        assert a.shape == (4, 1, *feats.shape[-2:]) and bool((a > 0).all())
        gated = feats * a
        pooled = gated.flatten(1) if variant == "sparse" else gated.sum((2, 3))
        logits = net.pi(torch.relu(net.trunk.linear(pooled)))
        torch.testing.assert_close(net(obs), logits)
        same_logits, same_a = net.logits_and_attention(obs)
        torch.testing.assert_close(same_logits, logits)
        torch.testing.assert_close(same_a, a)
    plain_logits, none = _net(tiny_config).logits_and_attention(obs)
    assert none is None and plain_logits.shape == (4, 4)
    with pytest.raises(DigrError, match="no attention module"):
        _net(tiny_config).trunk.attention_map(obs)


def test_sum_pool_without_attention(tiny_config):
    from dataclasses import replace

    net = _net(replace(tiny_config, pool="sum"))
    obs = _obs(2, tiny_config.obs_shape)
    with torch.no_grad():
        torch.testing.assert_close(net.trunk(obs),
                                   torch.relu(net.trunk.linear(net.trunk.features(obs).sum((2, 3)))))


def test_input_gradients_are_differentiable_through_the_attention(tiny_config):
    """DIGR's loss needs double backprop (eq. 4) through the FLS module for an 'FLS + DIGR' student."""
    from digr.saliency import vanilla_gradient

    net = _net(fls_config(tiny_config, "sparse-sum"))
    maps = vanilla_gradient(net, _obs(2, tiny_config.obs_shape), create_graph=True)
    maps.sum().backward()
    grads = [p.grad for p in net.trunk.attention.parameters()]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


# ------------------------------------------------------------------------------- parameter counts
def _docstring_table():
    rows = {}
    for line in fls_module.__doc__.splitlines():
        m = re.match(r"\s+(Breakout|Red-Fetch-Green)\b.*?((?:\s+[\d,]+){4})\s*$", line)
        if m:
            rows[m.group(1)] = [int(x.replace(",", "")) for x in m.group(2).split()]
    return rows


def test_documented_parameter_counts_match_the_networks():
    table = _docstring_table()
    assert set(table) == {"Breakout", "Red-Fetch-Green"}
    for name, task in (("Breakout", "breakout"), ("Red-Fetch-Green", "red-fetch-green")):
        base = PolicyConfig.for_task(get_task(task))
        built = [count_parameters(PolicyNet(base))] + [count_parameters(PolicyNet(fls_config(base, v)))
                                                        for v in VARIANTS]
        assert built == table[name], name
    paper = fls_config(PolicyConfig.for_task(get_task("breakout")), "dense", dense_widths=(32, 64, 64),
                       attention_channels=256)
    assert f"{count_parameters(PolicyNet(paper)):,}" in fls_module.__doc__


def test_fls_module_parameters_by_hand():
    # conv C->256 3x3 (+bias) and conv 256->1 3x3 (+bias): 64*256*9 + 256 + 256*9 + 1 on Nature-CNN
    base = PolicyConfig.for_task(get_task("breakout"))
    net = PolicyNet(fls_config(base, "sparse"))
    assert count_parameters(net.trunk.attention) == 64 * 256 * 9 + 256 + 256 * 9 + 1
    # sparse-sum's head reads 64 summed channels instead of 7*7*64 flattened ones
    plain, summed = PolicyNet(base), PolicyNet(fls_config(base, "sparse-sum"))
    assert count_parameters(plain) - count_parameters(summed) == (7 * 7 * 64 - 64) * 512 - count_parameters(
        summed.trunk.attention)


# ------------------------------------------------------------------------------ checkpoints & SB3
@pytest.mark.parametrize("variant", VARIANTS)
def test_checkpoint_round_trip(tmp_path, tiny_config, variant):
    net = _net(fls_config(tiny_config, variant))
    save_policy(net, tmp_path / "ck", task="t", meta={"fls": variant})
    loaded = load_policy(tmp_path / "ck")
    assert loaded.config == net.config and loaded.trunk.attention is not None
    obs = _obs(2, tiny_config.obs_shape)
    with torch.no_grad():
        torch.testing.assert_close(loaded(obs), net(obs), rtol=0, atol=0)
        torch.testing.assert_close(loaded.trunk.attention_map(obs), net.trunk.attention_map(obs),
                                   rtol=0, atol=0)


def test_plain_checkpoint_files_are_as_before(tmp_path, tiny_policy):
    save_policy(tiny_policy, tmp_path / "ck", task="t")
    assert set(json.loads((tmp_path / "ck" / "config.json").read_text())["policy"]) == OLD_KEYS
    obs = _obs(1, (3, 16, 16))
    torch.testing.assert_close(load_policy(tmp_path / "ck")(obs), tiny_policy(obs), rtol=0, atol=0)


def test_sb3_extractor_with_fls_converts_exactly(tiny_config):
    from stable_baselines3.common.policies import ActorCriticCnnPolicy

    from digr.rl.sb3 import policy_from_sb3, policy_kwargs

    cfg = fls_config(tiny_config, "sparse-sum")
    space = gym.spaces.Box(0, 255, cfg.obs_shape, dtype="uint8")
    torch.manual_seed(0)
    sb3 = ActorCriticCnnPolicy(space, gym.spaces.Discrete(cfg.n_actions), lambda _: 1e-3,
                               **policy_kwargs(cfg))
    ours = policy_from_sb3(sb3)
    assert ours.config == cfg
    raw = torch.randint(0, 256, (3, *cfg.obs_shape), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = sb3.get_distribution(raw.float()).distribution.probs  # SB3 divides by 255 itself
        torch.testing.assert_close(torch.softmax(ours(raw.float() / 255), -1), theirs, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------ training CLI
def test_cli_variants_match_the_library():
    from digr.cli.train import FLS_VARIANTS

    assert tuple(FLS_VARIANTS) == VARIANTS


def test_train_fls_records_the_variant_and_refuses_a_plain_resume(tmp_path, capsys):
    from digr.cli.main import main
    from digr.models.checkpoint import read_config

    out = tmp_path / "run"
    args = ["train", "--task", "red-fetch-green", "--out", str(out), "--timesteps", "256", "--n-envs", "2",
            "--checkpoint-every", "256", "--no-progress", "--threads", "1"]
    assert main(args + ["--fls", "sparse-sum"]) == 0
    run_cfg = json.loads((out / "config.json").read_text())
    assert run_cfg["fls"] == "sparse-sum" and run_cfg["policy"]["attention"] == "fls"
    assert run_cfg["policy"]["pool"] == "sum"
    ck = read_config(out / "policy")
    assert ck["meta"]["fls"] == "sparse-sum"
    policy = load_policy(out, task="red-fetch-green")
    assert fls_variant(policy.config) == "sparse-sum"
    assert policy.config == fls_config(PolicyConfig.for_task(get_task("red-fetch-green")), "sparse-sum")
    capsys.readouterr()
    assert main(args[:6] + ["512"] + args[7:]) == 2  # resuming without --fls: another network
    assert "--fls sparse-sum" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # argparse: "invalid choice", exit status 2
        main(args + ["--fls", "sparse_sum"])
    assert info.value.code == 2
