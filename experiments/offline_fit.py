"""Diagnostic: how far can a student's map be fitted to eq. 4, with the environment taken out?

A DIGR update (the trainer's own :class:`digr.distill.distiller.Distiller`) on dataset states only:
the distillation batch is drawn from the dataset with the teacher's stored probabilities instead
of the student's own rollouts, so an update costs the double backward pass and nothing else. It
answers "does the student underfit eq. 4 because of the architecture / optimiser, or because of the
online part", in minutes instead of hours. Not a way to train students for results: the trainer's
online buffer is what keeps the student's behaviour on its own states.

Prints, every ``--every`` updates, the training batches' eq. 4 term (unweighted: the penalised
share with the mean normaliser, plus 1 - r with mean+pearson) and the map agreement on held-out
states (cached reference maps); with ``--table1 N`` also Table 1's vanilla-gradient row
(important / unimportant / AUC) on N benchmark states, for tasks with ground-truth masks. With
``--softplus BETA`` it first prints the warm-started smooth student's KL to the teacher on the
dataset's first 512 states.

usage: python experiments/offline_fit.py --task highway --teacher results/highway/teacher \
    --dataset runs/hw/ds --steps 1000 [--optimizer adam --lr 1e-3 --alpha 10 --blur 1.25 ...]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch

from digr.distill.config import DistillConfig
from digr.distill.dataset import load_dataset
from digr.distill.distiller import Distiller, init_student
from digr.distill.losses import distillation_loss
from digr.distill.trainer import init_weights
from digr.envs import get_task
from digr.evaluation.agreement import map_agreement
from digr.evaluation.saliency_benchmark import evaluate_saliency
from digr.models import load_policy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", required=True)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--states", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--table1", type=int, default=0, metavar="N",
                    help="also Table 1's vanilla-gradient row on N benchmark states (tasks with masks)")
    ap.add_argument("--train-frac", type=float, default=1.0, help="use only this share of the dataset")
    ap.add_argument("--init-from", metavar="POLICY_DIR",
                    help="start from this trained student's weights (same architecture) instead")
    ap.add_argument("--softplus", type=float, default=0.0, metavar="BETA",
                    help="the student's ReLUs become softplus(BETA x) / BETA (same as --set student_softplus=BETA)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                    help="override a DistillConfig field of the default recipe, e.g. --set alpha=1")
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = get_task(args.task)
    over = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    cfg = DistillConfig.for_task(spec, **over).validate()
    teacher = load_policy(args.teacher, task=spec.name)
    data = load_dataset(args.dataset, teacher=args.teacher, task=spec.name, policy=teacher)
    n = int(len(data) * args.train_frac)
    sconf = teacher.config
    if cfg.student_input_blur > 0:
        sconf = replace(sconf, input_blur=float(cfg.student_input_blur)).validate()
    beta = args.softplus or cfg.student_softplus
    if beta > 0:
        sconf = replace(sconf, softplus_beta=float(beta)).validate()
    student = init_student(sconf, seed=cfg.seed)
    if args.init_from:
        student.load_state_dict(load_policy(args.init_from, task=spec.name).state_dict(), strict=True)
    elif cfg.warm_start:
        student.load_state_dict(init_weights(teacher, sconf, args.teacher), strict=True)
    if beta > 0:  # the warm-started smooth student's distance from the teacher
        with torch.no_grad():
            i = torch.arange(min(512, n))
            _, m0 = distillation_loss(student(data.obs(i)), data.probs[i])
        print(json.dumps({"softplus_beta": beta, "kl_at_start": round(m0.kl, 5)}), flush=True)
    dist = Distiller(student, config=cfg)
    gen = torch.Generator().manual_seed(args.seed)
    print(json.dumps({"config": {k: getattr(cfg, k) for k in over} | {"n": n}}), flush=True)
    window: list[float] = []
    t0 = time.time()
    for step in range(1, args.steps + 1):
        i = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        j = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        m = dist.update(data.obs(i), data.probs[i], igr_obs=data.obs(j), igr_maps=data.maps[j], generator=gen)
        window.append((m["distill/kl"], m.get("distill/igr", float("nan"))))
        if step % args.every == 0 or step == args.steps:
            student.eval()
            ag = map_agreement({"s": student}, teacher, spec.name, states=args.states, seed=0,
                               cache="runs/agreement-cache")["s"]
            kl, igr = np.mean(window, 0)
            window = []
            row = {"step": step, "wall_s": round(time.time() - t0), "kl": round(float(kl), 4),
                   "igr": round(float(igr), 4), "cc": round(ag.cc, 4),
                   "share": round(ag.share, 4), "top1": round(ag.top1, 4)}
            if args.table1:
                t1 = evaluate_saliency(student, "vanilla", task=spec.name, states=args.table1, seed=0)
                row |= {k: round(float(t1[k]), 4) for k in ("important", "unimportant", "auc")}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
