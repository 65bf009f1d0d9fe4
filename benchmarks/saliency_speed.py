"""Speed of every saliency method, and two ratios measured in the same run.

For each task's input shape and network (``get_task(...)`` configs, random weights: timing does not
depend on training), batch 1:

* ``ms``: median milliseconds per map of every registered method (paper settings; the
  perturbation family at the task's radius and the benchmark ``--stride``);
* ``forward_ms``: median milliseconds of one plain forward pass (no grad);
* ``vanilla_over_forward``: median vanilla-gradient map (``get_method("vanilla").attribute``, input
  checks and normalisation included) over median plain forward, timed alternately call by call
  (goal <= 3);
* ``perturbation_speedup`` = straightforward loop / ours (medians; the loop runs 3 times, 1 with
  ``--quick``, interleaved with ours), at the same stride and radius (goal >= 10),
  ours with its default settings (window truncated at ``TRUNCATE`` radii, ``engine="auto"``:
  incremental inference where it pays, see ``digr.saliency.incremental``). The straightforward
  loop follows Greydanus et al.'s released code: for each grid location, build the (untruncated)
  Gaussian window, blur the image and blend (their ``occlude`` blurs on every call), then one
  forward pass and the KL score;
* ``perturbation_speedup_vs_cached_loop``: the same but against a loop that already reuses the
  blur and the windows, so only the one-forward-per-location structure differs;
* ``perturbation_speedup_vs_batched``: our previous path (untruncated windows, every perturbed
  state through the full network in large batches) / ours -- the gain of incremental inference;
* ``max_abs_diff_vs_loop``: largest difference between the loop's normalised map and ours (the
  truncation's effect plus rounding); ``batched_max_abs_diff_vs_loop``: the same for the
  previous batched path (rounding only).

    python benchmarks/saliency_speed.py --json            # full run
    python benchmarks/saliency_speed.py --json --quick    # smaller: fewer repetitions, stride 8

Runs with ``--threads`` torch threads (default: torch's own default, every core here; both sides of
each ratio get the same threads). Every timing is taken twice: wall clock (``ms``, ``*_ms``) and
process CPU time (``cpu_ms``, ``*_cpu_ms``). The headline ratios use wall clock, the time a user
waits for a map; their ``*_cpu`` twins use process CPU time, which counts every thread's work and
which a busy machine does not inflate by descheduling us. With one thread on an idle machine the
two agree; on a shared box run ``--threads 1`` and read the ``*_cpu`` ratios (extra OpenMP threads
spin against other processes and make wall timings swing tenfold). A one-forward-per-location loop
at batch 1 gains little from a second thread, our batched maps nearly 2x, so the perturbation
ratio depends on the thread count: the committed table gives both.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch

SHAPES = {"3x64x64": "red-fetch-green", "2x84x84": "breakout", "1x128x128": "highway"}


class Times:
    """Wall-clock and process-CPU seconds of repeated calls; medians in milliseconds."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def call(self, fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        self.cpu.append(time.process_time() - c)
        self.wall.append(time.perf_counter() - w)
        return out

    def run(self, fn, reps: int, warmup: int = 1) -> "Times":
        for _ in range(warmup):
            fn()
        for _ in range(reps):
            self.call(fn)
        return self

    @property
    def wall_ms(self) -> float:
        return statistics.median(self.wall) * 1000

    @property
    def cpu_ms(self) -> float:
        return statistics.median(self.cpu) * 1000


def greydanus_loop(policy, obs, *, radius: float, stride: int, cached: bool) -> torch.Tensor:
    """One forward per location, coarse ``(Ly, Lx)`` KL scores of a single state ``obs: (1, C, H, W)``.

    ``cached=False``: window and whole-image blur are rebuilt at every location, as in Greydanus
    et al.'s code. ``cached=True``: both are computed once; only the forwards are per location.
    """
    from digr.saliency.perturbation import gaussian_blur, mask_grid

    _, _, h, w = obs.shape
    yy = torch.arange(h, dtype=obs.dtype)[:, None]
    xx = torch.arange(w, dtype=obs.dtype)[None, :]
    rows, cols = range(0, h, stride), range(0, w, stride)
    out = torch.empty(len(rows), len(cols))
    with torch.no_grad():  # the KL in float64, as ours: in float32 it cancels to ~1e-7 absolute
        logp = torch.log_softmax(policy(obs).double(), -1)
        if cached:
            blurred, grid = gaussian_blur(obs), mask_grid(h, w, radius=radius, stride=stride, truncate=None)
        for a, i in enumerate(rows):
            for b, j in enumerate(cols):
                if cached:
                    m, blur = grid.masks(torch.tensor([a * len(cols) + b]))[0], blurred
                else:
                    m = torch.exp(-((yy - i) ** 2 + (xx - j) ** 2) / (2 * radius ** 2))
                    blur = gaussian_blur(obs)
                logq = torch.log_softmax(policy(obs * (1 - m) + blur * m).double(), -1)
                out[a, b] = (logp.exp() * (logp - logq)).sum()
    return out


def bench_shape(key: str, task: str, *, stride: int, reps: int, slow_reps: int, loop_reps: int, seed: int
                ) -> dict:
    from digr.envs import get_task
    from digr.errors import DigrError
    from digr.models import PolicyConfig, PolicyNet
    from digr.saliency import METHODS, get_method
    from digr.saliency.base import normalize_maps
    from digr.saliency.perturbation import incremental_plan, kl_score, mask_grid, perturbation_scores

    spec = get_task(task)
    torch.manual_seed(seed)
    policy = PolicyNet(PolicyConfig.for_task(spec)).eval()
    obs = torch.rand(1, *spec.obs_shape, generator=torch.Generator().manual_seed(seed))
    radius = spec.perturbation_radius
    times, skipped = {}, {}
    for name in METHODS:
        settings = {"radius": radius, "stride": stride} if name in ("perturbation", "sarfa") else {}
        try:
            method = get_method(name, policy, **settings)
        except DigrError as e:  # a method that needs another kind of policy (e.g. fls)
            skipped[name] = str(e)
            continue
        slow = name in ("perturbation", "sarfa", "integrated_gradients", "smoothgrad")
        times[name] = Times().run(lambda: method.attribute(obs), slow_reps if slow else reps)

    # vanilla vs one plain forward, alternating call by call so load swings hit both alike
    vanilla = get_method("vanilla", policy)
    fwd, van = Times(), Times()
    for _ in range(3):
        vanilla.attribute(obs)
    for _ in range(max(4 * reps, 40)):
        with torch.no_grad():
            fwd.call(lambda: policy(obs))
        van.call(lambda: vanilla.attribute(obs))

    # perturbation vs the loops: ours (and the previous batched path) are timed before, between
    # and after the loops, alternating call by call
    ours = lambda: perturbation_scores(policy, obs, kl_score, radius=radius, stride=stride)  # noqa: E731
    old = lambda: perturbation_scores(policy, obs, kl_score, radius=radius, stride=stride,  # noqa: E731
                                      truncate=None, engine="batched")
    mine, batched = Times(), Times()

    def both(n: int) -> None:
        for _ in range(n):
            mine.call(ours)
            batched.call(old)

    ours(), old()
    both(slow_reps)
    naive_t, cached_t = Times(), Times()
    for _ in range(loop_reps):  # the loops' times swing by 20-40% from run to run on a busy box
        naive = naive_t.call(lambda: greydanus_loop(policy, obs, radius=radius, stride=stride, cached=False))
        both(slow_reps)
        cached_t.call(lambda: greydanus_loop(policy, obs, radius=radius, stride=stride, cached=True))
        both(slow_reps)
    grid = mask_grid(*spec.obs_shape[1:], radius=radius, stride=stride)
    loop_map = normalize_maps(grid.upsample(naive[None].to(obs.dtype)))
    diff = float((loop_map - normalize_maps(ours())).abs().max())
    diff_old = float((loop_map - normalize_maps(old())).abs().max())
    chosen = incremental_plan(policy, grid, obs, radius=radius, stride=stride, engine="auto")
    return {
        "task": task,
        "ms": {k: round(t.wall_ms, 3) for k, t in times.items()},
        "cpu_ms": {k: round(t.cpu_ms, 3) for k, t in times.items()},
        "forward_ms": round(fwd.wall_ms, 4),
        "forward_cpu_ms": round(fwd.cpu_ms, 4),
        "vanilla_over_forward": round(van.wall_ms / fwd.wall_ms, 2),
        "vanilla_over_forward_cpu": round(van.cpu_ms / fwd.cpu_ms, 2),
        "perturbation_speedup": round(naive_t.wall_ms / mine.wall_ms, 2),
        "perturbation_speedup_cpu": round(naive_t.cpu_ms / mine.cpu_ms, 2),
        "perturbation_speedup_vs_cached_loop": round(cached_t.wall_ms / mine.wall_ms, 2),
        "perturbation_speedup_vs_cached_loop_cpu": round(cached_t.cpu_ms / mine.cpu_ms, 2),
        "perturbation_speedup_vs_batched": round(batched.wall_ms / mine.wall_ms, 2),
        "perturbation_speedup_vs_batched_cpu": round(batched.cpu_ms / mine.cpu_ms, 2),
        "perturbation_engine": "batched" if chosen is None else "incremental",
        "perturbation_estimated_mac_gain": None if chosen is None else round(chosen[1].gain, 2),
        "perturbation_ms_ours": round(mine.wall_ms, 2),
        "perturbation_cpu_ms_ours": round(mine.cpu_ms, 2),
        "perturbation_cpu_ms_batched": round(batched.cpu_ms, 2),
        "naive_loop_ms": round(naive_t.wall_ms, 1),
        "naive_loop_cpu_ms": round(naive_t.cpu_ms, 1),
        "cached_loop_ms": round(cached_t.wall_ms, 1),
        "cached_loop_cpu_ms": round(cached_t.cpu_ms, 1),
        "perturbation_ms_batched": round(batched.wall_ms, 2),
        "max_abs_diff_vs_loop": diff,
        "batched_max_abs_diff_vs_loop": diff_old,
        "skipped_methods": skipped,
        "stride": stride,
        "radius": radius,
        "locations": grid.n_locations,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object keyed by input shape")
    p.add_argument("--quick", action="store_true", help="fewer repetitions and stride 8 (about a minute)")
    p.add_argument("--stride", type=int, default=None,
                   help="perturbation grid stride (default 4; 8 with --quick)")
    p.add_argument("--reps", type=int, default=None,
                   help="repetitions of the fast methods (default 15; 5 quick)")
    p.add_argument("--threads", type=int, default=None,
                   help=f"torch threads (default: torch's default, {torch.get_num_threads()} here)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated subset of " + ",".join(SHAPES))
    args = p.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            p.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)  # a script, not library code
    threads = torch.get_num_threads()
    stride = args.stride or (8 if args.quick else 4)
    reps = args.reps or (5 if args.quick else 15)
    slow_reps = 2 if args.quick else 3
    loop_reps = 1 if args.quick else 3
    result = {}
    t_start = time.perf_counter()
    for key in args.shapes.split(","):
        if key not in SHAPES:
            p.error(f"unknown shape {key!r}; choose from {', '.join(SHAPES)}")
        result[key] = bench_shape(key, SHAPES[key], stride=stride, reps=reps, slow_reps=slow_reps,
                                  loop_reps=loop_reps, seed=args.seed)
        result[key]["setup"] = {"threads": threads, "torch": torch.__version__,
                                "python": platform.python_version(),
                                "cpu": platform.processor() or platform.machine(), "batch": 1,
                                "reps": reps, "slow_reps": slow_reps, "loop_reps": loop_reps}
        if not args.json:
            r = result[key]
            print(f"{key} ({r['task']}): " + ", ".join(f"{k} {v:.2f} ms" for k, v in r["ms"].items()))
            print(f"  forward {r['forward_ms']:.3f} ms, vanilla/forward {r['vanilla_over_forward']:.2f} "
                  f"(cpu {r['vanilla_over_forward_cpu']:.2f}), "
                  f"perturbation speedup {r['perturbation_speedup']:.1f}x (cpu {r['perturbation_speedup_cpu']:.1f}x) "
                  f"(vs cached loop {r['perturbation_speedup_vs_cached_loop']:.1f}x, "
                  f"vs batched {r['perturbation_speedup_vs_batched']:.2f}x, {r['perturbation_engine']}), "
                  f"stride {stride}, {r['locations']} locations", flush=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"total {time.perf_counter() - t_start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
