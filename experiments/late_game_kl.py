"""Where a Breakout student departs from its teacher: KL(teacher || student) and the agreement of
their greedy actions, by the score reached so far in the game (session 14's diagnostic).

    python experiments/late_game_kl.py results/breakout/teacher results/breakout/digr [--games 4] [--seed 77]

The teacher plays (first sampling from its distribution, then greedily, as evaluations do); the
student only labels the states. One torch thread.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from digr.envs import get_task, make_env
from digr.models.checkpoint import load_policy
from digr.models.cnn import to_tensor

BINS = ((0, 25), (25, 75), (75, 150), (150, 10_000))


def play(teacher, student, spec, *, greedy: bool, games: int, seed: int):
    """Per state of ``games`` games played by ``teacher``: (score so far, KL, greedy actions agree)."""
    rng = np.random.default_rng(seed)
    env = make_env(spec)
    rows, returns = [], []
    for g in range(games):
        obs, _ = env.reset(seed=seed + g)
        ret, done = 0.0, False
        while not done:
            x = to_tensor(obs[None], spec.obs_shape)
            with torch.no_grad():
                lt, ls = teacher(x)[0], student(x)[0]
            log_p, log_q = torch.log_softmax(lt, -1), torch.log_softmax(ls, -1)
            p = log_p.exp()
            rows.append((ret, float((p * (log_p - log_q)).sum()), float(lt.argmax() == ls.argmax())))
            q = p.double().numpy()
            a = int(lt.argmax()) if greedy else int(rng.choice(len(q), p=q / q.sum()))
            obs, r, term, trunc, _ = env.step(a)
            ret += r
            done = term or trunc
        returns.append(ret)
    env.close()
    return np.array(rows), returns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("teacher")
    ap.add_argument("student")
    ap.add_argument("--games", type=int, default=4)
    ap.add_argument("--seed", type=int, default=77)
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = get_task("breakout")
    teacher, student = (load_policy(p, task=spec.name) for p in (args.teacher, args.student))
    for greedy in (False, True):
        rows, returns = play(teacher, student, spec, greedy=greedy, games=args.games, seed=args.seed)
        print(f"teacher {'greedy' if greedy else 'sampling'}: returns {returns}")
        for lo, hi in BINS:
            m = (rows[:, 0] >= lo) & (rows[:, 0] < hi)
            if m.any():
                print(f"  score {lo}-{hi - 1}: states {int(m.sum())}  KL {rows[m, 1].mean():.3f}  "
                      f"agree {rows[m, 2].mean():.3f}")


if __name__ == "__main__":
    main()
