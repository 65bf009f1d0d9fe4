"""``digr evaluate lag``: which frame's saliency map is on screen in real time (paper Figure 6)."""

from __future__ import annotations

import argparse

from digr.cli.common import (
    add_policy,
    add_task,
    bounded_count,
    device_name,
    emit,
    nonneg_int,
    pos_int,
    resolve_task,
    seed_value,
    thread_count,
)

NAME = "lag"
HELP = "real-time lag (frames at 20 fps) of the perturbation map vs DIGR's vanilla gradient (Figure 6)"
DESCRIPTION = HELP + """

Rolls out seeded episodes greedily with --policy for --frames frames (episode e is reset with
SEED+e: the stream goes on into the next episode, as a camera does, unless --one-episode),
computes every frame's map at batch 1 and times it, then replays the measured times on a
real-time clock: a frame arrives every 1/FPS s, one worker always starts the newest arrived
frame when it is free (skipping the ones it cannot keep up with), and frame t shows the newest
map finished before frame t+1 arrives. Rows: the Gaussian-blur perturbation map (teacher; the
task's radius, --stride), the vanilla gradient (teacher) and, with --student, the vanilla
gradient of the DIGR student. Per method: median/p90 compute ms, mean and max lag in frames,
blank ticks (no map yet), the fraction of frames whose own map is ever shown, and the lag at
which the first map appears. With --out, writes lag.png (state row + one row per method, the
map shown at each tick overlaid) and lag.json there.

example:
  digr evaluate lag --task red-fetch-green --policy results/red-fetch-green/teacher \\
      --student results/red-fetch-green/digr --frames 12 --out runs/lag --json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy(p)
    add_task(p, required=False)
    p.add_argument("--student", default=None, metavar="CKPT",
                   help="DIGR student checkpoint (adds the row: vanilla gradient on the student)")
    # --frames and --fps are checked by the library so a bad value is one 'digr: error:' line
    p.add_argument("--frames", type=bounded_count(100_000), default=12,
                   help="frames of the stream (default 12, at most 100,000)")
    p.add_argument("--one-episode", action="store_true",
                   help="stop at the end of the first episode (fewer frames) instead of going on")
    p.add_argument("--fps", type=float, default=20.0,
                   help="frame rate of the real-time stream (default 20: the paper's 0.05 s camera)")
    p.add_argument("--stride", type=pos_int, default=1,
                   help="perturbation grid stride (default 1, as in the paper)")
    p.add_argument("--columns", type=pos_int, default=6, help="consecutive ticks in the figure (default 6)")
    p.add_argument("--start", type=nonneg_int, default=None,
                   help="first tick of the figure (default: the last COLUMNS ticks)")
    p.add_argument("--seed", type=seed_value, default=0,
                   help="episode e is env.reset(seed=SEED+e) (default 0)")
    p.add_argument("--device", type=device_name, default="cpu", help="cpu | cuda (default cpu)")
    p.add_argument("--threads", type=thread_count, default=None,
                   help="torch CPU threads for this command (default: digr --torch-threads, 1)")
    p.add_argument("--out", default=None, metavar="DIR", help="write lag.png and lag.json into DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from digr.errors import DigrError
    from digr.evaluation.lag import LagConfig, LagRow, measure_lag
    from digr.figures.lag import lag_figure
    from digr.io import atomic_write_json
    from digr.models import load_policy

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = LagConfig(frames=args.frames, fps=args.fps, seed=args.seed, device=args.device,
                       one_episode=args.one_episode).validate()
    spec = resolve_task(args, args.policy)
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise DigrError(f"--out {out} exists and is not a folder")
    if args.start is not None and args.start + min(args.columns, args.frames) > args.frames:
        # checked before the (possibly minutes-long) measurement; lag_figure checks it again
        # against the frames actually recorded
        raise DigrError(f"--start {args.start} leaves fewer than {min(args.columns, args.frames)} "
                        f"of {args.frames} frames for the figure")
    teacher = load_policy(args.policy, task=spec.name)
    rows = [
        LagRow(key="perturbation", label="GB perturbation (teacher)", method="perturbation", policy=teacher,
               settings={"stride": args.stride}),
        LagRow(key="vanilla", label="vanilla gradient (teacher)", method="vanilla", policy=teacher),
    ]
    if args.student:
        student = load_policy(args.student, task=spec.name)
        rows.append(LagRow(key="digr_vanilla", label="DIGR: vanilla (student)", method="vanilla",
                           policy=student))
    result = measure_lag(rows, spec.name, driver=teacher, config=config)
    report = {"policy": str(args.policy), "student": args.student, **result.to_json(), "figure": None}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        report["figure"] = str(lag_figure(result, out / "lag.png", columns=args.columns, start=args.start))
        atomic_write_json(out / "lag.json", report)
    if args.json:
        emit(report, as_json=True)
    else:
        print(f"{report['task']}: {report['frames']} frames ({report['episodes']} episodes) at "
              f"{report['fps']:g} fps, {report['machine']}, "
              f"{report['torch_threads']} thread(s)")
        for m in report["methods"].values():
            lag = "-" if m["mean_lag_frames"] is None else f"{m['mean_lag_frames']:.2f}"
            mx = "-" if m["max_lag_frames"] is None else m["max_lag_frames"]
            print(f"{m['label']:<28} {m['median_ms']:10.2f} ms/map  lag mean {lag} max {mx} frames  "
                  f"blank {m['blank_ticks']}  own map shown {m['shown_fraction']:.0%}  "
                  f"first map at lag {m['first_map_lag_frames']}")
        if report["figure"]:
            print(f"figure: {report['figure']}")
    return 0
