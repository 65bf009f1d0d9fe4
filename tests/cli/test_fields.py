"""Options generated from the config dataclasses: every DistillConfig field is an option of
``digr distill`` whose help is the field's docstring, and the torch-free choice lists match the
library's."""

import argparse
from dataclasses import fields

import pytest
import torch

from digr.cli import distill as distill_cli
from digr.cli.fields import field_docs, plain
from digr.distill.config import NORMALIZERS, STUDENT_FLS, DistillConfig


def _parser():
    p = argparse.ArgumentParser()
    distill_cli.add_arguments(p)
    return p


def test_every_distill_field_is_an_option_with_its_docstring_as_help():
    docs = field_docs(DistillConfig)
    assert set(docs) == {f.name for f in fields(DistillConfig)}  # every field documented
    actions = {a.dest: a for a in _parser()._actions}
    for name in {f.name for f in fields(DistillConfig)} - {"recipe", "torch_threads"}:
        assert name in actions, name
        assert plain(docs[name]) in actions[name].help
    assert "recipe" in actions and "threads" in actions  # the two fields with options of their own


def test_options_not_given_leave_the_recipe_alone():
    args = _parser().parse_args(["--teacher", "t", "--out", "o", "--task", "red-fetch-green"])
    assert distill_cli.config_from_args(args) == DistillConfig.for_task(
        __import__("digr.envs", fromlist=["get_task"]).get_task("red-fetch-green"))
    args = _parser().parse_args(["--teacher", "t", "--out", "o", "--task", "red-fetch-green", "--no-igr",
                                 "--no-pcgrad", "--optimizer", "rmsprop", "--adv-eps", "4/255"])
    cfg = distill_cli.config_from_args(args)
    assert (cfg.use_igr, cfg.pcgrad, cfg.optimizer, cfg.adv_eps) == (False, False, "rmsprop", pytest.approx(4 / 255))


def test_torch_free_choice_lists_match_the_library():
    from digr.distill.losses import selective_penalty
    from digr.models.fls import VARIANTS

    assert STUDENT_FLS == VARIANTS
    maps = torch.rand(1, 9, 9)
    for name in NORMALIZERS:  # each form the CLI offers is one the loss implements
        assert torch.isfinite(selective_penalty(maps, maps, threshold=0.5, normalizer=name, topk=4))


@pytest.mark.parametrize("command,config,not_options", [
    ("dataset", "digr.distill.config:DatasetConfig", ()),
    ("train", "digr.rl.config:PPOConfig", ("frame_stack", "torch_threads")),  # the layout; --threads
    ("report", "digr.evaluation.report.config:ReportConfig",
     ("eps", "attacks", "settings", "threads", "sections")),  # lists and maps: options of their own
    ("pipeline", "digr.pipeline:PipelineConfig",
     ("robustness_eps", "robustness_attacks", "report_sections", "threads")),  # lists: the preset's
    ("eval_performance", "digr.evaluation.settings:PerformanceConfig", ()),
    ("eval_robustness", "digr.evaluation.settings:RobustnessConfig", ()),
    ("eval_robustness_sweep", "digr.evaluation.settings:RobustnessSweepConfig", ()),
    ("eval_agreement", "digr.evaluation.settings:AgreementConfig", ()),
    ("eval_saliency", "digr.evaluation.settings:SaliencyBenchmarkConfig", ()),
    ("eval_timing", "digr.evaluation.settings:TimingConfig", ()),
    ("eval_lag", "digr.evaluation.settings:LagConfig", ()),
    ("saliency", "digr.evaluation.settings:ExplainConfig", ()),
    ("export", "digr.evaluation.settings:ExportConfig", ()),
])
def test_every_field_is_an_option_with_its_docstring_as_help(command, config, not_options):
    import importlib

    module, name = config.split(":")
    cls = getattr(importlib.import_module(module), name)
    p = argparse.ArgumentParser()
    importlib.import_module(f"digr.cli.{command}").add_arguments(p)
    actions = {a.dest: a for a in p._actions}
    docs = field_docs(cls)
    for f in fields(cls):
        if f.name not in not_options:
            assert plain(docs[f.name]) in actions[f.name].help, f.name


def test_train_fls_choices_match_the_library():
    from digr.cli import train as train_cli

    assert train_cli.FLS_VARIANTS == STUDENT_FLS


@pytest.mark.parametrize("command,config,argv", [
    ("eval_performance", "PerformanceConfig", ["--policy", "p"]),
    ("eval_robustness", "RobustnessConfig", ["--policy", "p", "--attack", "pgd", "--eps", "8/255"]),
    ("eval_robustness_sweep", "RobustnessSweepConfig", ["--policy", "p"]),
    ("eval_timing", "TimingConfig", ["--policy", "p"]),
    ("eval_lag", "LagConfig", ["--policy", "p"]),
    ("saliency", "ExplainConfig", ["--policy", "p", "--out", "o"]),
])
def test_options_not_given_keep_the_library_defaults(command, config, argv):
    """The command's settings with no option given are the config's defaults, the same object the
    library's functions take their defaults from."""
    import importlib

    from digr.cli.fields import config_from
    from digr.evaluation import settings

    mod = importlib.import_module(f"digr.cli.{command}")
    p = argparse.ArgumentParser()
    mod.add_arguments(p)
    cls = getattr(settings, config)
    got = config_from(cls, p.parse_args(argv), mod.FIELDS)
    given = {"attack": "pgd", "eps": pytest.approx(8 / 255)} if config == "RobustnessConfig" else {}
    for f in fields(cls):
        assert getattr(got, f.name) == given.get(f.name, f.default), f.name


def test_library_defaults_come_from_the_configs():
    import inspect

    from digr.evaluation import agreement, robustness, saliency_benchmark, timing
    from digr.evaluation.settings import (
        AgreementConfig,
        RobustnessConfig,
        SaliencyBenchmarkConfig,
        TimingConfig,
    )

    assert inspect.signature(agreement.map_agreement).parameters["states"].default == AgreementConfig.states
    assert inspect.signature(robustness.evaluate_robustness).parameters["episodes"].default == RobustnessConfig.episodes
    bench = inspect.signature(saliency_benchmark.evaluate_saliency).parameters
    assert (bench["states"].default, bench["batch_size"].default) == (SaliencyBenchmarkConfig.states,
                                                                      SaliencyBenchmarkConfig.batch_size)
    assert inspect.signature(timing.time_saliency).parameters["repeats"].default == TimingConfig.repeats
