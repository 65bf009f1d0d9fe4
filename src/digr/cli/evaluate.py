"""``digr evaluate WHAT``: performance, saliency, timing, robustness."""

from __future__ import annotations

import argparse

NAME = "evaluate"
HELP = "measure a policy: performance | saliency | agreement | timing | robustness | robustness-sweep | lag (JSON with --json)"
GROUP = True
"""A group of sub-commands: each gets its own --threads, the group none."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from digr.cli.main import EVALUATE, add_commands

    sub = p.add_subparsers(dest="what", metavar="WHAT")
    sub.required = True
    add_commands(sub, EVALUATE)


def run(args: argparse.Namespace) -> int:  # pragma: no cover - the sub-command's func runs
    raise AssertionError("unreachable")
