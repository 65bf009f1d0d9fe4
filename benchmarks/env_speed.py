"""Environment throughput: Breakout vector envs and the highway image env before/after profiling.

Prints steps per second (transitions, all envs together) and ratios measured in this one run.
Variants are timed in interleaved rounds so that load from other processes on a shared machine
hits all of them alike; the load average is printed before and after.

Breakout (``--atari``), 8 envs as in Table 2, random actions, training preprocessing:
  single  one :func:`digr.envs.atari.make_breakout` env
  sync    Gymnasium ``SyncVectorEnv`` of 8 of them (one process)
  async   Gymnasium ``AsyncVectorEnv`` of 8 of them (8 worker processes)
  ale-tN  ale-py's C++ ``AtariVectorEnv`` with 8 envs on N threads

Highway (``--highway``), one env, random meta-actions:
  stock   ``gym.make("highway-fast-v0")`` with highway-env's GrayscaleObservation at 128x128
  digr-slow  :class:`digr.envs.highway.HighwayImageEnv` with ``fast_road=False``
  digr    :class:`digr.envs.highway.HighwayImageEnv` (cached neighbour search, the default)

Usage: python benchmarks/env_speed.py [--atari] [--highway] [--steps N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Callable

import numpy as np


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def _interleaved(runners: dict[str, Callable[[int], int]], steps: int, rounds: int
                 ) -> dict[str, tuple[float, float]]:
    """Per variant: (transitions per wall second, transitions per CPU second of this process)."""
    wall = dict.fromkeys(runners, 0.0)
    cpu = dict.fromkeys(runners, 0.0)
    done = dict.fromkeys(runners, 0)
    for _ in range(rounds):
        for name, run in runners.items():
            t0, c0 = time.perf_counter(), time.process_time()
            done[name] += run(steps)
            wall[name] += time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
    return {k: (done[k] / wall[k], done[k] / max(cpu[k], 1e-9)) for k in runners}


def _print(title: str, res: dict[str, tuple[float, float]], base: str, cpu_note: str) -> None:
    print(f"\n{title}")
    print(f"{'variant':<10} {'steps/s (wall)':>15} {'vs ' + base:>10}   {'steps/s per CPU-s':>18}")
    for k, (w, c) in res.items():
        print(f"{k:<10} {w:>15.1f} {w / res[base][0]:>9.2f}x   {c:>18.1f}")
    print(cpu_note)


def bench_atari(steps: int, rounds: int, n_envs: int = 8) -> None:
    import gymnasium as gym

    from digr.envs.atari import make_breakout, make_breakout_vector

    rng = np.random.default_rng(0)

    single = make_breakout(training=True)
    single.reset(seed=0)

    def run_single(n: int) -> int:
        for _ in range(n):
            _, _, term, trunc, _ = single.step(int(rng.integers(4)))
            if term or trunc:
                single.reset()
        return n

    def vec_runner(venv) -> Callable[[int], int]:
        venv.reset(seed=0)

        def run(n: int) -> int:
            k = max(1, n // venv.num_envs)
            for _ in range(k):
                venv.step(rng.integers(4, size=venv.num_envs))
            return k * venv.num_envs
        return run

    fns = [lambda: make_breakout(training=True) for _ in range(n_envs)]
    sync = gym.vector.SyncVectorEnv(fns)
    asyn = gym.vector.AsyncVectorEnv(fns)
    runners = {"single": run_single, "sync": vec_runner(sync), "async": vec_runner(asyn)}
    for t in (1, 2):
        runners[f"ale-t{t}"] = vec_runner(make_breakout_vector(n_envs, training=True, num_threads=t))
    print(f"Breakout, {n_envs} envs, {rounds} rounds x {steps} transitions per variant, "
          f"load average before: {_loadavg()}")
    res = _interleaved(runners, steps, rounds)
    _print("Breakout (training preprocessing, random actions)", res, "sync",
           "(per CPU-s counts this process only: async work in child processes and ale threads "
           "inflate it; compare the wall column)")
    best = max(("async", "ale-t1", "ale-t2", "sync"), key=lambda k: res[k][0])
    print(f"fastest vector env here: {best}; ale-t2 / async = {res['ale-t2'][0] / res['async'][0]:.2f}x,"
          f" ale-t2 / sync = {res['ale-t2'][0] / res['sync'][0]:.2f}x")
    print(f"load average after: {_loadavg()}")
    asyn.close()
    sync.close()


def bench_highway(steps: int, rounds: int) -> None:
    from digr.envs.highway import HighwayImageEnv, use_headless_video

    use_headless_video()
    import gymnasium as gym
    import highway_env

    gym.register_envs(highway_env)
    stock_cfg = {"observation": {"type": "GrayscaleObservation", "observation_shape": (128, 128),
                                 "stack_size": 1, "weights": [0.2989, 0.5870, 0.1140],
                                 "scaling": 2.0}}
    envs = {
        "stock": gym.make("highway-fast-v0", config=stock_cfg),
        "digr-slow": HighwayImageEnv(fast_road=False),
        "digr": HighwayImageEnv(),
    }

    def runner(env, seed: int) -> Callable[[int], int]:
        rng = np.random.default_rng(seed)
        env.reset(seed=seed)

        def run(n: int) -> int:
            for _ in range(n):
                obs, _, term, trunc, _ = env.step(int(rng.integers(5)))
                if term or trunc:
                    env.reset()
            assert obs.max() > 0, "black frame: rendering is off"
            return n
        return run

    runners = {k: runner(e, 0) for k, e in envs.items()}
    print(f"\nHighway, 1 env, {rounds} rounds x {steps} steps per variant, "
          f"load average before: {_loadavg()}")
    res = _interleaved(runners, steps, rounds)
    _print("highway-fast image observation 128x128 (random meta-actions)", res, "stock",
           "(per CPU-s: single process, less sensitive to other jobs on the machine)")
    print(f"digr / stock: {res['digr'][0] / res['stock'][0]:.2f}x wall, "
          f"{res['digr'][1] / res['stock'][1]:.2f}x CPU")
    print(f"load average after: {_loadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atari", action="store_true", help="benchmark Breakout vector envs")
    ap.add_argument("--highway", action="store_true", help="benchmark the highway image env")
    ap.add_argument("--steps", type=int, default=None,
                    help="transitions per variant per round (default 4000 atari, 100 highway)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = ap.parse_args()
    if (args.steps is not None and args.steps < 1) or args.rounds < 1:
        ap.error("--steps and --rounds must be >= 1")
    both = not (args.atari or args.highway)
    print(f"cores: {os.cpu_count()}, load average: {_loadavg()}")
    if args.atari or both:
        bench_atari(args.steps or 4000, args.rounds)
    if args.highway or both:
        bench_highway(args.steps or 100, args.rounds)


if __name__ == "__main__":
    main()
