from dataclasses import replace

import pytest

from digr.distill import DatasetConfig, DistillConfig
from digr.envs import get_task
from digr.errors import DigrError


def test_table3_defaults_per_task_are_the_paper_recipe():
    rfg = DistillConfig.for_task(get_task("red-fetch-green"), recipe="paper")
    assert (rfg.alpha, rfg.learning_rate, rfg.optimizer, rfg.threshold, rfg.buffer_size, rfg.igr_normalizer) == \
        (0.01, 1e-3, "adam", 0.1, 10_000, "max")
    assert (rfg.recipe, rfg.warm_start, rfg.student_input_blur) == ("paper", False, 0.0)
    drive = DistillConfig.for_task(get_task("highway"), recipe="paper")
    assert (drive.alpha, drive.learning_rate, drive.optimizer) == (1.0, 2e-4, "rmsprop")


@pytest.mark.parametrize("task", ["red-fetch-green", "breakout", "highway"])
def test_relu_recipe_is_the_same_on_every_task(task):
    spec = get_task(task)
    cfg = DistillConfig.for_task(spec, recipe="relu")
    assert cfg.recipe == "relu" and cfg.warm_start and cfg.igr_normalizer == "mean+pearson" and cfg.alpha == 10.0
    assert cfg.student_input_blur == 0.0 and cfg.student_input_pool == 1 and cfg.student_fls is None
    assert (cfg.adv_eps, cfg.adv_steps) == (8 / 255, 1)
    # Table 3's optimiser settings stay the task's
    assert (cfg.learning_rate, cfg.optimizer) == (spec.distill["learning_rate"], spec.distill["optimizer"])
    # an option given explicitly wins over the recipe
    assert DistillConfig.for_task(spec, recipe="relu", student_input_blur=1.5, alpha=1.0).student_input_blur == 1.5
    with pytest.raises(DigrError, match="unknown recipe"):
        DistillConfig.for_task(spec, recipe="magic")


@pytest.mark.parametrize("task", ["red-fetch-green", "breakout", "highway"])
def test_the_default_smooth_recipe_is_relu_plus_the_same_extensions_on_every_task(task):
    spec = get_task(task)
    relu, smooth = DistillConfig.for_task(spec, recipe="relu"), DistillConfig.for_task(spec)
    assert smooth == DistillConfig.for_task(spec, recipe="smooth")
    changed = {k: v for k, v in smooth.to_dict().items() if relu.to_dict()[k] != v}
    assert changed == {"recipe": "smooth", "student_softplus": 50.0, "adv_eps": 16 / 255, "adv_weight": 0.25,
                       "adv_project": True, "rollout_greedy": 1.0, "rollout_teacher": 0.5, "lr_anneal": True}
    assert DistillConfig.for_task(spec, recipe="smooth", adv_eps=8 / 255).adv_eps == 8 / 255


def test_runs_recorded_under_the_old_name_still_load_with_the_relu_settings():
    spec = get_task("breakout")
    old = DistillConfig.for_task(spec, recipe="default")
    assert replace(old, recipe="relu") == DistillConfig.for_task(spec, recipe="relu")
    assert DistillConfig.from_dict(old.to_dict()).recipe == "default"  # a record is read as written


def test_smooth_recipe_is_distilled_at_the_sweeps_largest_radius():
    from digr.distill.config import LARGEST_ATTACK_EPS
    from digr.evaluation.robustness import DEFAULT_EPS

    assert LARGEST_ATTACK_EPS == max(DEFAULT_EPS)


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


@pytest.mark.parametrize("field,value", [("alpha", float("nan")), ("learning_rate", float("nan")),
                                         ("threshold", float("inf")), ("seed", -1), ("seed", 2**40),
                                         ("n_envs", 10**8), ("adv_eps", float("nan")),
                                         ("student_softplus", -1.0), ("student_softplus", float("inf"))])
def test_nan_huge_and_negative_settings_are_refused(field, value):
    with pytest.raises(DigrError, match=field):
        DistillConfig(**{field: value}).validate()


@pytest.mark.parametrize("field,value", [("learning_rate", float("nan")), ("seed", -3), ("n_envs", 10**8)])
def test_ppo_settings_are_checked_the_same_way(field, value):
    from digr.rl.config import PPOConfig

    with pytest.raises(DigrError, match=field):
        PPOConfig(**{field: value}).validate()


def test_report_names_each_students_recipe_and_the_options_beyond_it(tmp_path):
    import json

    from digr.distill.config import DistillConfig
    from digr.envs import get_task
    from digr.evaluation.report import student_recipe

    def run(name, cfg, **extra):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"task": "breakout", "distill": cfg.to_dict(), **extra}))
        return d

    spec = get_task("breakout")
    plain = DistillConfig.for_task(spec, recipe="relu", steps=9000, seed=2, eval_episodes=0)  # length, seed aside
    assert student_recipe(run("a", plain)) == "relu"
    more = DistillConfig.for_task(spec, recipe="relu", rollout_greedy=1.0, rollout_teacher=0.5)
    assert student_recipe(run("b", more)) == "relu + rollout_greedy=1, rollout_teacher=0.5"
    # runs of sessions 17-21 record the relu recipe as "default": reported under its current name
    legacy = DistillConfig.for_task(spec, recipe="default", adv_eps=16 / 255)
    assert student_recipe(run("f", legacy)) == "relu + adv_eps=16/255"
    paper = DistillConfig.for_task(spec, recipe="paper", use_igr=False)
    assert student_recipe(run("c", paper)) == "paper, --no-igr"
    assert student_recipe(run("d", DistillConfig.for_task(spec, recipe="smooth"))) == "smooth"
    # a run made before the preset, with its options spelled out, reads as the recipe plus them
    spelled = DistillConfig.for_task(spec, recipe="relu", student_softplus=50.0, adv_eps=16 / 255)
    assert student_recipe(run("e", spelled)) == "relu + adv_eps=16/255, student_softplus=50"
    # options spelled out that make up another recipe exactly are named as that recipe
    smooth_spelled = replace(DistillConfig.for_task(spec, recipe="smooth"), recipe="default", steps=5)
    assert student_recipe(run("g", smooth_spelled)) == "smooth (recorded as relu + options)"
    assert student_recipe(tmp_path / "none") == "—"
