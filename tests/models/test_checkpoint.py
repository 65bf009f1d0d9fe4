import json

import pytest
import torch

from digr.errors import DigrError
from digr.models import PolicyNet, load_policy, save_policy
from digr.models.checkpoint import read_config


def test_roundtrip_is_exact(tmp_path, rfg_policy):
    save_policy(rfg_policy, tmp_path / "ck", task="red-fetch-green", meta={"note": "x"})
    loaded = load_policy(tmp_path / "ck", task="red-fetch-green")
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(loaded(x), rfg_policy(x), rtol=0, atol=0)
    cfg = read_config(tmp_path / "ck")
    assert cfg["format"] == "digr-policy" and cfg["digr_version"] and cfg["meta"] == {"note": "x"}
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors"]


def test_save_replaces_atomically_and_leaves_no_temp(tmp_path, rfg_policy, tiny_policy):
    save_policy(tiny_policy, tmp_path / "ck", task="t")
    save_policy(rfg_policy, tmp_path / "ck", task="red-fetch-green")
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]
    assert load_policy(tmp_path / "ck").config == rfg_policy.config


def test_run_folder_resolves_to_policy(tmp_path, tiny_policy):
    save_policy(tiny_policy, tmp_path / "run" / "policy", task="t")
    assert isinstance(load_policy(tmp_path / "run"), PolicyNet)


def test_weights_file_is_not_pickle(tmp_path, tiny_policy):
    save_policy(tiny_policy, tmp_path / "ck", task="t")
    head = (tmp_path / "ck" / "model.safetensors").read_bytes()[:16]
    assert not head.startswith(b"\x80"), "pickle protocol header"
    json.loads((tmp_path / "ck" / "config.json").read_text())


@pytest.mark.parametrize("damage,msg", [
    ("missing", "not found"),
    ("no_weights", "no model.safetensors"),
    ("truncated", "corrupt or truncated"),
    ("bad_json", "corrupt"),
    ("other_shape", "expects observations"),
    ("wrong_weights", "do not match"),
])
def test_bad_checkpoints_give_clear_errors(tmp_path, rfg_policy, tiny_policy, damage, msg):
    ck = tmp_path / "ck"
    save_policy(tiny_policy if damage == "other_shape" else rfg_policy, ck, task="red-fetch-green")
    if damage == "missing":
        ck = tmp_path / "nope"
    elif damage == "no_weights":
        (ck / "model.safetensors").unlink()
    elif damage == "truncated":
        data = (ck / "model.safetensors").read_bytes()
        (ck / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "bad_json":
        (ck / "config.json").write_text("{not json")
    elif damage == "wrong_weights":
        save_policy(tiny_policy, tmp_path / "other", task="x")
        (tmp_path / "other" / "model.safetensors").replace(ck / "model.safetensors")
    with pytest.raises(DigrError, match=msg):
        load_policy(ck, task="red-fetch-green")


@pytest.mark.parametrize("field,value", [
    ("obs_shape", [3, 64]), ("obs_shape", [3, -64, 64]), ("n_actions", "4"), ("n_actions", 10**9),
    ("hidden", 2.5), ("convs", [[16, 8, 8]]), ("convs", [[10**9, 8, 8, 0]]), ("convs", [[16, 100, 1, 0]]),
    ("convs", []), ("input_blur", "x"), ("obs_shape", [3, float("inf"), 64]),
    ("softplus_beta", "x"), ("softplus_beta", -1.0), ("softplus_beta", True),
])
def test_hostile_checkpoint_configs_are_one_line_errors(tmp_path, field, value):
    """Sizes are checked before anything is built: no huge allocation, no traceback."""
    import json

    from digr.models import PolicyConfig, PolicyNet, load_policy, save_policy

    cfg = PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((4, 8, 8, 0),), hidden=8)
    ck = save_policy(PolicyNet(cfg), tmp_path / "ck", task="red-fetch-green")
    doc = json.loads((ck / "config.json").read_text())
    doc["policy"][field] = value
    (ck / "config.json").write_text(json.dumps(doc))
    with pytest.raises(DigrError):
        load_policy(ck)


def test_version_as_a_string_and_mismatched_weights_are_refused(tmp_path):
    import json

    from digr.models import PolicyConfig, PolicyNet, load_policy, save_policy

    cfg = PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((4, 8, 8, 0),), hidden=8)
    ck = save_policy(PolicyNet(cfg), tmp_path / "ck", task="red-fetch-green")
    doc = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**doc, "format_version": "1"}))
    with pytest.raises(DigrError, match="format_version"):
        load_policy(ck)
    doc["policy"]["hidden"] = 4096  # a valid but different network: caught before it is built
    (ck / "config.json").write_text(json.dumps(doc))
    with pytest.raises(DigrError, match="do not match"):
        load_policy(ck)
