"""`digr distill` options reach the student's settings (Table 3 defaults for the rest)."""

import pytest

from digr.cli.distill import config_from_args
from digr.cli.main import build_parser
from digr.errors import DigrError


def _args(*extra):
    return build_parser().parse_args(["distill", "--teacher", "t", "--dataset", "d", "--task", "red-fetch-green",
                                      "--out", "o", *extra])


def test_recipe_paper_is_table_3():
    cfg = config_from_args(_args("--recipe", "paper"))
    assert (cfg.alpha, cfg.threshold, cfg.learning_rate, cfg.optimizer) == (0.01, 0.1, 1e-3, "adam")
    assert cfg.igr_normalizer == "max" and cfg.adv_eps == 0.0
    assert not cfg.warm_start and cfg.student_input_blur == 0


def test_relu_recipe_with_table_3_optimiser():
    cfg = config_from_args(_args("--recipe", "relu"))
    assert (cfg.recipe, cfg.alpha, cfg.igr_normalizer, cfg.warm_start, cfg.student_input_blur) == \
        ("relu", 10.0, "mean+pearson", True, 0.0)
    assert (cfg.threshold, cfg.learning_rate, cfg.optimizer) == (0.1, 1e-3, "adam")
    assert (cfg.student_softplus, cfg.adv_eps, cfg.adv_project, cfg.lr_anneal) == (0.0, 8 / 255, False, False)
    assert config_from_args(_args("--student-input-blur", "1")).student_input_blur == 1


def test_the_default_is_the_smooth_recipe_a_softplus_student_with_the_adversarial_kl_at_16():
    cfg = config_from_args(_args())
    assert cfg == config_from_args(_args("--recipe", "smooth"))
    assert (cfg.recipe, cfg.student_softplus, cfg.adv_eps, cfg.adv_weight, cfg.adv_project) == \
        ("smooth", 50.0, 16 / 255, 0.25, True)
    assert (cfg.rollout_greedy, cfg.rollout_teacher, cfg.lr_anneal) == (1.0, 0.5, True)
    assert (cfg.alpha, cfg.igr_normalizer, cfg.warm_start) == (10.0, "mean+pearson", True)
    assert config_from_args(_args("--student-softplus", "0")).student_softplus == 0


def test_the_old_recipe_name_is_no_longer_offered_and_says_its_new_name(capsys):
    with pytest.raises(SystemExit):
        _args("--recipe", "default")
    assert "recipe 'default' is now called 'relu'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _args("--recipe", "magic")
    assert "unknown recipe 'magic'; choose one of: smooth, relu, paper" in capsys.readouterr().err


def test_options_are_forwarded():
    cfg = config_from_args(_args("--alpha", "3", "--igr-normalizer", "max", "--steps", "7",
                                 "--student-input-blur", "1.5"))
    assert (cfg.alpha, cfg.igr_normalizer, cfg.steps, cfg.student_input_blur) == (3.0, "max", 7, 1.5)


def test_student_softplus_option():
    assert config_from_args(_args("--recipe", "relu")).student_softplus == 0.0  # the teacher's ReLU units
    assert config_from_args(_args("--recipe", "relu", "--student-softplus", "50")).student_softplus == 50.0


def test_lr_anneal_switch():
    assert config_from_args(_args("--recipe", "relu")).lr_anneal is False  # Table 3's constant rate
    assert config_from_args(_args("--recipe", "relu", "--lr-anneal")).lr_anneal is True
    assert config_from_args(_args("--no-lr-anneal")).lr_anneal is False


def test_adv_project_switch():
    assert config_from_args(_args("--recipe", "relu")).adv_project is False
    assert config_from_args(_args("--recipe", "relu", "--adv-project")).adv_project is True
    assert config_from_args(_args("--no-adv-project")).adv_project is False


def test_retired_options_are_gone():
    with pytest.raises(SystemExit):
        _args("--margin-l1-weight", "1")
    with pytest.raises(SystemExit):
        _args("--igr-normalizer", "kept_max")


def test_adversarial_options():
    assert config_from_args(_args("--recipe", "paper")).adv_eps == 0.0
    assert config_from_args(_args("--recipe", "relu")).adv_eps == 8 / 255
    assert config_from_args(_args()).adv_eps == 16 / 255  # the default recipe's
    cfg = config_from_args(_args("--adv-eps", "16/255", "--adv-weight", "0.5", "--adv-steps", "2"))
    assert (cfg.adv_eps, cfg.adv_weight, cfg.adv_steps) == (16 / 255, 0.5, 2)
    with pytest.raises(DigrError, match="adv_eps"):
        config_from_args(_args("--adv-eps", "2"))


def test_topk_normalizer_options():
    cfg = config_from_args(_args("--igr-normalizer", "topk", "--igr-topk", "32"))
    assert (cfg.igr_normalizer, cfg.igr_topk) == ("topk", 32)
    assert config_from_args(_args()).igr_topk == 64


def test_student_input_pool_option():
    assert config_from_args(_args()).student_input_pool == 1
    assert config_from_args(_args("--student-input-pool", "4")).student_input_pool == 4


def test_init_option_reaches_the_trainer(monkeypatch):
    """--init teacher names the --teacher checkpoint; any other value is passed on as a path."""
    import digr.distill.trainer as trainer
    from digr.cli import distill

    seen = []
    monkeypatch.setattr(trainer, "train_student", lambda *a, init=None, **kw: seen.append(init) or {})
    from digr.envs import get_task

    monkeypatch.setattr(distill, "resolve_task", lambda args, checkpoint=None: get_task(args.task))  # no files
    for value, want in (("teacher", "t"), ("some/ckpt", "some/ckpt"), (None, None)):
        args = _args(*(["--init", value] if value else []), "--json")
        assert distill.run(args) == 0
        assert seen[-1] == want


def test_no_warm_start_option():
    assert config_from_args(_args()).warm_start
    assert not config_from_args(_args("--no-warm-start")).warm_start
