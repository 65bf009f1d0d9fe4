"""The ``digr`` command. Thin: parses arguments and calls the library.

Each command lives in its own module exposing ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; this file only lists the modules. ``digr evaluate WHAT`` works the same way
with the modules in :data:`EVALUATE`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = [
    "digr.cli.train",
    "digr.cli.import_sb3",
    "digr.cli.evaluate",
    "digr.cli.saliency",
    "digr.cli.dataset",
    "digr.cli.distill",
    "digr.cli.pipeline",
    "digr.cli.report",
    "digr.cli.export",
]
"""Modules of the top-level sub-commands, in ``--help`` order; missing ones are skipped."""

EVALUATE = [
    "digr.cli.eval_performance",
    "digr.cli.eval_saliency",
    "digr.cli.eval_agreement",
    "digr.cli.eval_timing",
    "digr.cli.eval_robustness",
    "digr.cli.eval_robustness_sweep",
    "digr.cli.eval_lag",
]
"""Modules of the ``digr evaluate`` sub-commands."""


def _thread_count(text: str) -> int:
    from digr.cli.common import thread_count

    return thread_count(text)


class _Parser(argparse.ArgumentParser):
    """argparse with digr's error format: one ``digr: error:`` line (no usage block), exit 2.

    Sub-command parsers are made with the parent's class, so this covers every command."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"digr: error: {self.prog}: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _modules(names: list[str]):
    for name in names:
        try:
            yield importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module: surface it
                raise


def add_commands(subparsers, names: list[str]) -> None:
    for mod in _modules(names):
        p = subparsers.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        if "--threads" not in p._option_string_actions and not getattr(mod, "GROUP", False):
            p.add_argument("--threads", type=_thread_count, default=None,
                           help="torch CPU threads for this command (default: digr --torch-threads, 1)")
        p.set_defaults(func=mod.run)


def build_parser() -> argparse.ArgumentParser:
    from digr import __version__

    parser = _Parser(
        prog="digr", description="Make RL policies explain themselves: saliency, DIGR distillation, evaluation.")
    parser.add_argument("--version", action="version", version=f"digr {__version__}")
    parser.add_argument("--torch-threads", type=int, default=None, metavar="N",
                        help="torch CPU threads for any command (default 1: digr's networks are small, and "
                             "torch's own choice collapses when other jobs share the cores; a command's "
                             "--threads, where it has one, still applies)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_commands(sub, COMMANDS)
    return parser




def main(argv: list[str] | None = None) -> int:
    from digr.errors import DigrError

    parser = build_parser()
    args = parser.parse_args(argv)
    debug = os.environ.get("DIGR_DEBUG") == "1"
    try:
        threads = 1 if args.torch_threads is None else args.torch_threads
        if getattr(args, "threads", None) is not None:  # a command's own --threads wins
            threads = args.threads
        if not 0 < threads <= (os.cpu_count() or 1) * 4:
            raise DigrError(f"--torch-threads must be in [1, {(os.cpu_count() or 1) * 4}] "
                            f"(4 per CPU core at most), got {threads}")
        import torch

        torch.set_num_threads(threads)
        return int(args.func(args) or 0)
    except DigrError as exc:
        if debug:
            raise
        print(f"digr: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("digr: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a path that cannot be read or written: the OS's reason, one line
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"digr: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except Exception as exc:
        if debug:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"digr: error: unexpected {type(exc).__name__}: {first} (DIGR_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
