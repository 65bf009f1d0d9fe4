"""One contract test over every registered saliency method, plus the registry and bad input."""

import math

import pytest
import torch

from digr.errors import DigrError
from digr.saliency import ALIASES, METHODS, canonical_name, get_method

# Small settings where a method has a per-task one; everything else runs on its paper defaults.
SETTINGS = {"perturbation": dict(radius=3), "sarfa": dict(radius=3)}
# Methods that read a module only some networks have: they are checked on that network's variant.
NEEDS_FLS = {"fls"}


def policy_for(name, plain):
    """``plain`` itself, or for a method that needs FLS attention its sparse-sum FLS variant."""
    if name not in NEEDS_FLS:
        return plain
    from digr.models import PolicyNet, fls_config

    torch.manual_seed(0)
    return PolicyNet(fls_config(plain.config, "sparse-sum")).eval()


def make(name, policy, **extra):
    return get_method(name, policy, **{**SETTINGS.get(name, {}), **extra})


def _obs(b, seed=0, shape=(3, 16, 16)):
    return torch.rand(b, *shape, generator=torch.Generator().manual_seed(seed))


def test_registry_lists_every_paper_method():
    assert list(METHODS) == ["vanilla", "guided_backprop", "gradcam", "integrated_gradients", "smoothgrad",
                             "perturbation", "sarfa", "fls"]
    for name, cls in METHODS.items():
        assert cls.name == name
    for alias, name in ALIASES.items():
        assert canonical_name(alias) == name
    assert canonical_name("Guided-Backprop") == "guided_backprop"


@pytest.mark.parametrize("name", list(METHODS))
def test_contract(name, tiny_policy):
    # supports() tells "every method" lists (timing, --method all) which networks a method explains
    assert METHODS[name].supports(tiny_policy) == (name not in NEEDS_FLS)
    tiny_policy = policy_for(name, tiny_policy)
    assert METHODS[name].supports(tiny_policy)
    before = {k: v.clone() for k, v in tiny_policy.state_dict().items()}
    method = make(name, tiny_policy)
    obs = _obs(8, seed=1)
    maps = method.attribute(obs)
    # shape, dtype, range, finite, per-map max normalisation
    assert maps.shape == (8, 16, 16) and maps.dtype == torch.float32
    assert bool(torch.isfinite(maps).all())
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    peaks = maps.flatten(1).amax(1)
    assert all(math.isclose(float(p), 1.0, abs_tol=1e-6) or float(p) == 0.0 for p in peaks)
    assert not maps.requires_grad
    # deterministic
    assert torch.equal(maps, method.attribute(obs))
    # a state's map does not depend on its batch
    for i in (0, 5):
        torch.testing.assert_close(method.attribute(obs[i:i + 1])[0], maps[i], atol=1e-5, rtol=1e-4)
    # explicit greedy target = default target
    greedy = tiny_policy(obs).argmax(-1)
    torch.testing.assert_close(method.attribute(obs, target=greedy), maps, atol=1e-6, rtol=1e-5)
    # the policy is left as it was: weights, grads, hooks, mode
    after = tiny_policy.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in tiny_policy.parameters())
    assert all(not m._forward_hooks and not m._backward_hooks for m in tiny_policy.modules())
    assert not tiny_policy.training


@pytest.mark.parametrize("name", list(METHODS))
def test_stacked_frames_and_grey_inputs(name):
    from digr.models import PolicyConfig, PolicyNet

    torch.manual_seed(0)
    policy = PolicyNet(PolicyConfig(obs_shape=(2, 12, 20), n_actions=3, convs=((4, 4, 2, 0), (4, 3, 1, 1)),
                                    hidden=8)).eval()
    policy = policy_for(name, policy)
    maps = make(name, policy).attribute(_obs(2, 2, shape=(2, 12, 20)))
    assert maps.shape == (2, 12, 20) and float(maps.max()) <= 1.0


@pytest.mark.parametrize("name", list(METHODS))
def test_bad_input_raises_one_clear_error(name, tiny_policy):
    tiny_policy = policy_for(name, tiny_policy)
    method = make(name, tiny_policy)
    good = _obs(2)
    bad = {
        "ndim": good[0],
        "shape": _obs(2, shape=(3, 16, 15)),
        "channels": _obs(2, shape=(1, 16, 16)),
        "nan": good.clone().index_fill_(2, torch.tensor([3]), float("nan")),
        "inf": good.clone().index_fill_(2, torch.tensor([3]), float("inf")),
        "empty": good[:0],
        "uint8": (good * 255).to(torch.uint8),
        "range": good * 255,
        "numpy": good.numpy(),
    }
    for what, obs in bad.items():
        with pytest.raises(DigrError) as info:
            method.attribute(obs)
        assert "\n" not in str(info.value), what
    if method.uses_target:
        for target in (4, -1, [0, 1, 2], torch.tensor([0.5, 1.0])):
            with pytest.raises(DigrError):
                method.attribute(good, target=target)


def test_unknown_method_and_setting(tiny_policy):
    with pytest.raises(DigrError, match="unknown saliency method 'lime'.*vanilla"):
        get_method("lime", tiny_policy)
    with pytest.raises(DigrError, match="bad settings"):
        get_method("gradcam", tiny_policy, radius=3)
    with pytest.raises(DigrError):
        get_method("integrated_gradients", tiny_policy, steps=0)
    with pytest.raises(DigrError):
        get_method("smoothgrad", tiny_policy, samples=-2)
    with pytest.raises(DigrError):
        get_method("smoothgrad", tiny_policy, sigma=-0.1)
    with pytest.raises(DigrError, match="FLS attention module"):
        get_method("fls", tiny_policy)  # a network without the module cannot give its map


def test_vanilla_create_graph_is_the_differentiable_one(tiny_policy):
    maps = get_method("vanilla", tiny_policy, create_graph=True).attribute(_obs(2))
    assert maps.requires_grad
    # only vanilla with create_graph=True builds a graph; every default instance is detached
    assert [n for n in METHODS if make(n, policy_for(n, tiny_policy)).differentiable] == []
