"""``digr evaluate lag``: which frame's saliency map is on screen in real time (paper Figure 6)."""

from __future__ import annotations

import argparse

from digr.cli.common import (
    add_policy,
    add_task,
    device_name,
    emit,
    nonneg_int,
    pos_int,
    resolve_task,
    seed_value,
)
from digr.cli.fields import add_fields, config_from, field_names
from digr.evaluation.settings import LagConfig

FIELDS = field_names(LagConfig)
"""Every :class:`LagConfig` field is an option."""
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
    add_fields(p, LagConfig, FIELDS, switch=("one_episode",), defaults=True,
               types={"frames": pos_int, "stride": pos_int, "columns": pos_int, "start": nonneg_int,
                      "seed": seed_value, "device": device_name})
    p.add_argument("--out", default=None, metavar="DIR", help="write lag.png and lag.json into DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from digr.errors import DigrError
    from digr.evaluation.lag import LagRow, measure_lag
    from digr.figures.lag import lag_figure
    from digr.io import atomic_write_json
    from digr.models import load_policy

    config = config_from(LagConfig, args, FIELDS)
    spec = resolve_task(args, args.policy)
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise DigrError(f"--out {out} exists and is not a folder")
    teacher = load_policy(args.policy, task=spec.name)
    rows = [
        LagRow(key="perturbation", label="GB perturbation (teacher)", method="perturbation", policy=teacher,
               settings={"stride": config.stride}),
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
        report["figure"] = str(lag_figure(result, out / "lag.png", columns=config.columns, start=config.start))
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
