"""``digr report DIR``: Table 1, timing, performance, robustness, saliency panels and a GIF as report.md."""

from __future__ import annotations

import argparse
import sys

from digr.cli.common import (
    device_name,
    emit,
    episode_count,
    eps_value,
    pos_int,
    seed_value,
    state_count,
    thread_count,
)

NAME = "report"
HELP = "write DIR/report.md for a pipeline folder: Table 1, timing, performance, robustness, figures"


def _description() -> str:
    from digr.evaluation.report import PIPELINE_LAYOUT

    return HELP + f"""

Measures whatever is not cached in DIR/eval/ yet (keyed by checkpoint digests and options), then
writes DIR/report.md, DIR/table1.md and DIR/figures/. Every number in the report sits under the
digr command that prints it. Defaults are the full-size run (10k benchmark states, 50 episodes per
robustness point); shrink them for a quick look.

Expected layout:
{PIPELINE_LAYOUT}
example (quick):
  digr report runs/rfg-pipeline --states 200 --episodes 20 --robustness-episodes 5 \\
      --eps 0 8/255 --setting perturbation.stride=4 --threads 1
"""


DESCRIPTION = _description()


def method_setting(text: str) -> tuple[str, str, object]:
    """``METHOD.KEY=VALUE`` (VALUE read as JSON, else kept as a string)."""
    from digr.cli.eval_saliency import setting

    lhs, value = setting(text)
    method, dot, key = lhs.partition(".")
    if not dot or not method or not key:
        raise argparse.ArgumentTypeError(f"expected METHOD.KEY=VALUE (e.g. perturbation.stride=4), "
                                         f"got {text!r}")
    return method, key, value


from digr.evaluation.report.config import OPTION_FIELDS as FIELDS
from digr.evaluation.report.config import OPTION_FLAGS


def add_arguments(p: argparse.ArgumentParser) -> None:
    from digr.cli.fields import add_fields
    from digr.evaluation.report.config import SECTIONS, ReportConfig

    p.add_argument("dir", metavar="DIR", help="pipeline output folder (layout above)")
    add_fields(p, ReportConfig, FIELDS, flags=OPTION_FLAGS,
               types={"states": state_count, "agreement_states": pos_int, "episodes": episode_count,
                      "robustness_episodes": episode_count, "workers": pos_int, "seed": seed_value,
                      "batch_size": pos_int, "repeats": pos_int, "device": device_name, "panel_states": pos_int,
                      "gif_frames": pos_int, "gif_min_frames": pos_int},
               metavars={"timing_max_seconds": "SECONDS", "surrogate_softplus": "BETA"})
    p.add_argument("--eps", type=eps_value, nargs="+", default=None, metavar="E",
                   help="robustness eps sweep, [0, 1] pixel scale, fractions like 8/255 accepted "
                        "(default 0 1/255 2/255 4/255 8/255 16/255)")
    p.add_argument("--attacks", nargs="+", default=None, metavar="NAME",
                   help="attacks to sweep (default all)")
    p.add_argument("--setting", type=method_setting, action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="saliency setting for Table 1 and the panels, e.g. perturbation.stride=4 "
                        "(repeatable)")
    p.add_argument("--threads", type=thread_count, default=None,
                   help="torch CPU threads for this command (default: digr --torch-threads, 1)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), metavar="SECTION",
                   help=f"sections to include (default all: {' '.join(SECTIONS)})")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print a JSON summary")


def run(args: argparse.Namespace) -> int:
    from digr.cli.fields import field_values
    from digr.errors import DigrError
    from digr.evaluation.report import ReportConfig, write_report

    if args.timing_max_seconds is not None and not args.timing_max_seconds > 0:
        raise DigrError(f"--max-seconds must be > 0, got {args.timing_max_seconds}")
    bad_eps = [e for e in args.eps or () if not 0 <= e <= 1]  # before any folder is read (NaN too)
    if bad_eps:
        raise DigrError(f"--eps must lie in [0, 1] (the pixel scale), got {bad_eps[0]}")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    settings: dict[str, dict] = {}
    if args.setting:
        from digr.saliency import canonical_name

        for method, key, value in args.setting:
            settings.setdefault(canonical_name(method), {})[key] = value
    given = {k: v for k, v in field_values(args, FIELDS).items() if v is not None}
    cfg = ReportConfig(**given, eps=tuple(args.eps) if args.eps is not None else None,
                       attacks=tuple(args.attacks) if args.attacks is not None else None, settings=settings,
                       threads=args.threads, sections=tuple(args.sections))
    log = None if args.quiet or args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    summary = write_report(args.dir, cfg, log=log)
    if args.json:
        emit(summary, as_json=True)
    else:
        print(summary["report"])
    return 0
