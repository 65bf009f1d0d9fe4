import pytest

from digr.distill import DatasetConfig, DistillConfig
from digr.envs import get_task
from digr.errors import DigrError


def test_table3_defaults_per_task():
    rfg = DistillConfig.for_task(get_task("red-fetch-green"))
    assert (rfg.alpha, rfg.learning_rate, rfg.optimizer, rfg.threshold, rfg.buffer_size, rfg.igr_normalizer) == \
        (0.01, 1e-3, "adam", 0.1, 10_000, "max")
    drive = DistillConfig.for_task(get_task("highway"))
    assert (drive.alpha, drive.learning_rate, drive.optimizer) == (1.0, 2e-4, "rmsprop")


def test_overrides_and_none_values():
    cfg = DistillConfig.for_task(get_task("red-fetch-green"), alpha=0.5, steps=None)
    assert cfg.alpha == 0.5 and cfg.steps == DistillConfig().steps
    with pytest.raises(DigrError, match="unknown DIGR settings: nope"):
        DistillConfig.for_task(get_task("red-fetch-green"), nope=1)
    with pytest.raises(DigrError, match="buffer_size"):
        DistillConfig(batch_size=64, buffer_size=10).validate()


def test_dataset_defaults_come_from_the_task():
    for name, size, radius in (("red-fetch-green", 1000, 4), ("breakout", 10_000, 8), ("highway", 2500, 5)):
        cfg = DatasetConfig.for_task(get_task(name))
        assert (cfg.size, cfg.radius, cfg.stride) == (size, radius, 1)
    assert DatasetConfig.for_task(get_task("red-fetch-green"), size=64).size == 64


def test_config_roundtrip():
    cfg = DistillConfig(alpha=0.3, max_grad_norm=1.0)
    assert DistillConfig.from_dict(cfg.to_dict()) == cfg
