"""Cost of one DIGR training step against one distillation-only step (issue bar: <= 3x).

Both use the Red-Fetch-Green network, the same batch size and the trainer's own code
(:class:`digr.distill.distiller.Distiller`). Two figures per variant, measured interleaved in one
run so that background load hits both alike:

* ``update``: the gradient computation(s), PCGrad and the optimizer step;
* ``step``: a whole trainer iteration: the student steps ``n_envs`` environments, a buffer batch
  is labelled by the teacher, DIGR samples its IGR batch from a uint8 store as the trainer does
  from the dataset, then the update.

The DIGR update adds the IGR term: the student's input gradient with ``create_graph=True`` and
the backward pass through it (double backprop), plus PCGrad. The IGR maps are random (their values
do not change the cost); the states are real Red-Fetch-Green observations.

    python benchmarks/digr_step_cost.py [--teacher CKPT] [--batch-size 64] [--reps 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default=None, help="teacher checkpoint (default: a random network)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--n-envs", type=int, default=8)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    args = ap.parse_args()

    from digr.distill.buffer import StateBuffer
    from digr.distill.config import DistillConfig
    from digr.distill.distiller import Distiller, init_student
    from digr.distill.trainer import Rollouts
    from digr.envs import get_task
    from digr.models import PolicyConfig, load_policy

    torch.set_num_threads(args.threads)
    task = "red-fetch-green"
    spec = get_task(task)
    teacher = (load_policy(args.teacher, task=task) if args.teacher
               else init_student(PolicyConfig.for_task(spec), seed=123)).eval()
    b = args.batch_size
    cfgs = {name: DistillConfig.for_task(spec, batch_size=b, n_envs=args.n_envs, use_igr=name == "digr")
            for name in ("digr", "distill")}
    distillers = {name: Distiller(init_student(teacher.config, seed=0), config=cfg)
                  for name, cfg in cfgs.items()}
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    rollouts = {name: Rollouts(task, args.n_envs, rng=rng) for name in cfgs}
    buffers = {name: StateBuffer(10_000, spec.obs_shape) for name in cfgs}
    for name in cfgs:
        while len(buffers[name]) < 4 * b:
            buffers[name].add(rollouts[name].step(distillers[name].student, generator=gen))
    # A stand-in for the saliency dataset D (uint8 states, float maps), sampled every full step
    # the way the trainer samples the real one.
    igr_store = (buffers["digr"].sample(4 * b, generator=gen) * 255).round().to(torch.uint8)
    igr_store_maps = torch.rand(4 * b, *spec.obs_shape[1:], generator=gen)
    igr_states, igr_maps = igr_store[:b].float().div_(255.0), igr_store_maps[:b]

    def step(name: str, *, full: bool) -> float:
        d = distillers[name]
        t0 = time.process_time()
        x, m = igr_states, igr_maps
        if full:
            buffers[name].add(rollouts[name].step(d.student, generator=gen))
            if d.config.use_igr:
                idx = torch.randint(len(igr_store), (b,), generator=gen)
                x, m = igr_store[idx].float().div_(255.0), igr_store_maps[idx]
        obs = buffers[name].sample(b, generator=gen)
        with torch.no_grad():
            probs = torch.softmax(teacher(obs), -1)
        if not full:
            t0 = time.process_time()  # update only: leave out the env step and the labelling
        d.update(obs, probs, igr_obs=x, igr_maps=m)
        return (time.process_time() - t0) * 1000

    times: dict[str, list[float]] = {f"{n}_{k}": [] for n in cfgs for k in ("update", "step")}
    for i in range(args.warmup + args.reps):
        for name in cfgs:  # interleaved: both variants see the same machine load
            for kind in ("update", "step"):
                ms = step(name, full=kind == "step")
                if i >= args.warmup:
                    times[f"{name}_{kind}"].append(ms)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "benchmark": "digr_step_cost", "task": task, "batch_size": b, "n_envs": args.n_envs,
        "threads": args.threads, "reps": args.reps, "device": "cpu",
        **{f"{k}_ms": round(v, 2) for k, v in med.items()},
        "update_ratio": round(med["digr_update"] / med["distill_update"], 2),
        "step_ratio": round(med["digr_step"] / med["distill_step"], 2),
        "goal_ratio": 3.0,
    }
    if not args.json:
        for k, v in result.items():
            print(f"{k:>20}: {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
