"""Dataset throughput: perturbation maps per second, serial vs Ray with 1 and 2 workers, one run.

    python benchmarks/dataset_throughput.py --json              # Red-Fetch-Green, committed teacher
    python benchmarks/dataset_throughput.py --states 48 --task breakout --teacher results/breakout/teacher

Each configuration builds the same dataset (same seed, so the same states and maps) into a fresh
folder; the Ray runs include Ray's start-up, which a real dataset of thousands of states
amortises, so the reported scaling is a lower bound. ``ray_2_vs_1`` is the scaling with 2 workers
over 1 (ideal 2.0 on two free cores); run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="red-fetch-green")
    p.add_argument("--teacher", default="results/red-fetch-green/teacher")
    p.add_argument("--states", type=int, default=64)
    p.add_argument("--shard-size", type=int, default=8)
    p.add_argument("--stride", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from digr.distill import DatasetConfig, build_dataset, load_dataset
    from digr.envs import get_task
    from digr.parallel import ParallelConfig

    torch.set_num_threads(1)
    spec = get_task(args.task)
    cfg = DatasetConfig.for_task(spec, size=args.states, shard_size=args.shard_size, stride=args.stride)
    root = Path(tempfile.mkdtemp(prefix="digr-throughput-"))
    runs = {"serial": ParallelConfig(), "ray_1": ParallelConfig(ray=True, workers=1),
            "ray_2": ParallelConfig(ray=True, workers=2)}
    out, data = {}, {}
    try:
        for name, par in runs.items():
            t0 = time.perf_counter()
            build_dataset(args.teacher, spec.name, root / name, cfg, parallel=par)
            wall = time.perf_counter() - t0
            out[name] = {"wall_s": round(wall, 2), "maps_per_s": round(args.states / wall, 3)}
            data[name] = load_dataset(root / name)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    same = all(np.array_equal(data["serial"].maps.numpy(), d.maps.numpy())
               and np.array_equal(data["serial"].states.numpy(), d.states.numpy()) for d in data.values())
    result = {"task": spec.name, "states": args.states, "stride": args.stride, **out,
              "ray_2_vs_1": round(out["ray_2"]["maps_per_s"] / out["ray_1"]["maps_per_s"], 3),
              "ray_2_vs_serial": round(out["ray_2"]["maps_per_s"] / out["serial"]["maps_per_s"], 3),
              "same_dataset": same}
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
