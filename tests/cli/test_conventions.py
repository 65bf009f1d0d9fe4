"""One convention across commands: every command takes --threads and --json, and the global
--torch-threads default is one thread."""

import argparse

from digr.cli.main import build_parser


def _commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))
            return
    yield prefix, parser


def test_every_command_takes_threads_and_json():
    found = list(_commands(build_parser()))
    assert len(found) >= 14
    for name, p in found:
        opts = p._option_string_actions
        assert "--threads" in opts and "--json" in opts, " ".join(name)
        assert opts["--threads"].default is None, " ".join(name)  # None: the global default (1) applies
