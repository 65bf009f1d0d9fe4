import pytest
import torch

from digr.distill.buffer import StateBuffer
from digr.errors import DigrError


def _states(values):
    return torch.tensor(values, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()


def test_buffer_is_fifo_and_samples_floats():
    buf = StateBuffer(3, (1, 2, 2))
    buf.add(_states([1, 2]))
    assert len(buf) == 2
    buf.add(_states([3, 4]))  # 1 is the oldest and goes
    assert len(buf) == 3
    assert sorted(buf.states[:, 0, 0, 0].tolist()) == [2, 3, 4]
    batch = buf.sample(50, generator=torch.Generator().manual_seed(0))
    assert batch.dtype == torch.float32 and batch.shape == (50, 1, 2, 2)
    assert set((batch[:, 0, 0, 0] * 255).round().int().tolist()) <= {2, 3, 4}


def test_buffer_keeps_newest_of_an_oversized_add():
    buf = StateBuffer(2, (1, 2, 2))
    buf.add(_states([5, 6, 7]))
    assert sorted(buf.states[:, 0, 0, 0].tolist()) == [6, 7] and len(buf) == 2


def test_buffer_rejects_bad_states_and_empty_sampling():
    buf = StateBuffer(2, (1, 2, 2))
    with pytest.raises(DigrError):
        buf.sample(1, generator=torch.Generator())
    with pytest.raises(DigrError):
        buf.add(torch.zeros(1, 1, 2, 2))  # float, not uint8
    with pytest.raises(DigrError):
        buf.add(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
