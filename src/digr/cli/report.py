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


def add_arguments(p: argparse.ArgumentParser) -> None:
    from digr.evaluation.report import SECTIONS

    p.add_argument("dir", metavar="DIR", help="pipeline output folder (layout above)")
    p.add_argument("--states", type=state_count, default=10_000, help="saliency benchmark states (default 10000)")
    p.add_argument("--agreement-states", type=pos_int, default=100,
                   help="held-out teacher states for the map-agreement section (default 100)")
    p.add_argument("--episodes", type=episode_count, default=100,
                   help="episodes per policy for performance (default 100)")
    p.add_argument("--robustness-episodes", type=episode_count, default=50,
                   help="episodes per (attack, eps) point (default 50, as the paper)")
    p.add_argument("--eps", type=eps_value, nargs="+", default=None, metavar="E",
                   help="robustness eps sweep, [0, 1] pixel scale, fractions like 8/255 accepted "
                        "(default 0 1/255 2/255 4/255 8/255 16/255)")
    p.add_argument("--attacks", nargs="+", default=None, metavar="NAME",
                   help="attacks to sweep (default all)")
    p.add_argument("--workers", type=pos_int, default=1,
                   help="Ray CPUs for the robustness sweep's points (default 1: one after the other, no Ray; "
                        "more needs pip install 'digr[ray]')")
    p.add_argument("--seed", type=seed_value, default=0,
                   help="seed of states, episodes and attacks (default 0)")
    p.add_argument("--batch-size", type=pos_int, default=64, help="states per saliency call (default 64)")
    p.add_argument("--setting", type=method_setting, action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="saliency setting for Table 1 and the panels, e.g. perturbation.stride=4 "
                        "(repeatable)")
    p.add_argument("--repeats", type=pos_int, default=20, help="timed calls per method (default 20)")
    p.add_argument("--max-seconds", type=float, default=8.0,
                   help="timing budget per method in seconds (default 8)")
    p.add_argument("--device", type=device_name, default="cpu",
                   help="cpu | cuda for the saliency benchmark and timing (default cpu)")
    p.add_argument("--threads", type=thread_count, default=None,
                   help="torch CPU threads for this command (default: digr --torch-threads, 1)")
    p.add_argument("--panel-states", type=pos_int, default=4,
                   help="states in the saliency panels (default 4)")
    p.add_argument("--gif-frames", type=pos_int, default=120,
                   help="most frames in the episode GIF (default 120)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), metavar="SECTION",
                   help=f"sections to include (default all: {' '.join(SECTIONS)})")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print a JSON summary")


def run(args: argparse.Namespace) -> int:
    from digr.errors import DigrError
    from digr.evaluation.report import ReportConfig, write_report

    if not args.max_seconds > 0:
        raise DigrError(f"--max-seconds must be > 0, got {args.max_seconds}")
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
    cfg = ReportConfig(
        states=args.states, episodes=args.episodes, robustness_episodes=args.robustness_episodes,
        eps=tuple(args.eps) if args.eps is not None else None,
        attacks=tuple(args.attacks) if args.attacks is not None else None, seed=args.seed,
        workers=args.workers,
        batch_size=args.batch_size, settings=settings, repeats=args.repeats,
        timing_max_seconds=args.max_seconds, device=args.device, threads=args.threads,
        panel_states=args.panel_states, gif_frames=args.gif_frames, sections=tuple(args.sections),
        agreement_states=args.agreement_states)
    log = None if args.quiet or args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    summary = write_report(args.dir, cfg, log=log)
    if args.json:
        emit(summary, as_json=True)
    else:
        print(summary["report"])
    return 0
