import os

import pytest
import torch

from digr.models import PolicyConfig, PolicyNet

# Tests run on a 2-core machine: keep torch from oversubscribing.
torch.set_num_threads(1)
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


@pytest.fixture
def tiny_config():
    return PolicyConfig(obs_shape=(3, 16, 16), n_actions=4, convs=((4, 4, 4, 0), (8, 3, 1, 1), (8, 3, 1, 1)),
                        hidden=16)


@pytest.fixture
def tiny_policy(tiny_config):
    torch.manual_seed(0)
    return PolicyNet(tiny_config).eval()


@pytest.fixture
def rfg_policy():
    """A randomly initialised Red-Fetch-Green policy (64x64x3, 4 actions)."""
    from digr.envs import get_task

    torch.manual_seed(0)
    return PolicyNet(PolicyConfig.for_task(get_task("red-fetch-green"))).eval()


@pytest.fixture
def rfg_teacher(tmp_path, rfg_policy):
    """``rfg_policy`` saved as a checkpoint folder (a random Red-Fetch-Green teacher)."""
    from digr.models import save_policy

    save_policy(rfg_policy, tmp_path / "teacher", task="red-fetch-green")
    return tmp_path / "teacher"
