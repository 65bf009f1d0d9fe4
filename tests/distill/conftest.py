"""Tiny Red-Fetch-Green teachers and datasets shared by the DIGR tests (seconds, not minutes)."""

import pytest
import torch

from digr.models import PolicyConfig, PolicyNet, save_policy

TASK = "red-fetch-green"
# The task's 64x64x3 input and 4 actions, but a network with a few hundred parameters per layer.
TINY_RFG = PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((4, 8, 8, 0), (8, 3, 1, 1)), hidden=16)


def make_teacher(path, seed=0, config=TINY_RFG):
    torch.manual_seed(seed)
    return save_policy(PolicyNet(config), path, task=TASK)


@pytest.fixture(scope="session")
def teacher_ckpt(tmp_path_factory):
    return make_teacher(tmp_path_factory.mktemp("teacher") / "policy")


@pytest.fixture(scope="session")
def other_teacher_ckpt(tmp_path_factory):
    return make_teacher(tmp_path_factory.mktemp("teacher2") / "policy", seed=1)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, teacher_ckpt):
    """8 states in 2 shards with a coarse (stride 8) perturbation map, made in this process."""
    from digr.distill import DatasetConfig, build_dataset

    out = tmp_path_factory.mktemp("data") / "ds"
    build_dataset(teacher_ckpt, TASK, out, DatasetConfig(size=8, shard_size=4, radius=4, stride=8), workers=1)
    return out
