"""How far from zero a teacher's hidden units sit: the median |pre-activation| of every conv and
the linear layer on the first N states of a distillation dataset.

This is the scale a smooth student's ``softplus(beta z) / beta`` is measured against: the same beta
bends a unit whose pre-activations are ~0.07 far more than one whose are ~0.5
(results/recipe-ablation.md, session 19).

usage: python experiments/preact_scale.py TASK TEACHER DATASET [--states N]
"""

from __future__ import annotations

import argparse
import json

import torch

from digr.distill.dataset import load_dataset
from digr.models import load_policy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task")
    p.add_argument("teacher")
    p.add_argument("dataset")
    p.add_argument("--states", type=int, default=256)
    args = p.parse_args()
    torch.set_num_threads(1)
    teacher = load_policy(args.teacher, task=args.task).eval()
    obs = load_dataset(args.dataset, teacher=args.teacher, task=args.task).obs(slice(0, args.states))
    trunk, medians = teacher.trunk, []
    with torch.no_grad():
        x = trunk.blur(obs)
        for layer in trunk.convs:
            x = layer(x)
            if isinstance(layer, torch.nn.Conv2d):
                medians.append(float(x.abs().median()))
        medians.append(float(trunk.linear(trunk._pool(x)).abs().median()))
    print(json.dumps({"task": args.task, "states": len(obs),
                      "median_abs_preactivation": [round(m, 4) for m in medians]}))


if __name__ == "__main__":
    main()
