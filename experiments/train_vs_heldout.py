"""Diagnostic: is a student's share limited by fitting, by generalisation, or by the dataset's maps?

On the first N states of a DIGR dataset (training states), it scores each policy's
vanilla-gradient map against (a) the dataset's own maps (the coarse, strided maps eq. 4 was fitted
to) and (b) the exact maps map agreement uses (stride 1, computed here by the same function), and
scores the dataset's maps against the exact ones. Compare with the held-out figures of
`digr evaluate agreement`: (a) high and held-out low = generalisation; (a) high and (b) low = the
dataset's maps differ from the measure's; both low = eq. 4 is not fitted.

usage: python experiments/train_vs_heldout.py DATASET TASK TEACHER N POLICY_DIR...
(TEACHER makes the exact maps and is scored too.)
"""
import sys
import time

import torch

torch.set_num_threads(1)
from digr.distill.dataset import load_dataset  # noqa: E402
from digr.envs import get_task  # noqa: E402
from digr.evaluation.agreement import agreement_scores, gradient_maps, reference_maps  # noqa: E402
from digr.models import load_policy  # noqa: E402

dataset, task, teacher_dir, n, *policies = sys.argv[1:]
n = int(n)
teacher = load_policy(teacher_dir, task=task)
data = load_dataset(dataset, teacher=teacher_dir, task=task, policy=teacher)  # checked against the teacher
obs, coarse = data.obs(slice(0, n)), data.maps[:n]
t0 = time.perf_counter()
exact = reference_maps(teacher, obs, radius=get_task(task).perturbation_radius)
print(f"{n} training states; exact maps in {time.perf_counter() - t0:.0f} s")


def fmt(s: dict) -> str:
    return " ".join(f"{k} {v.mean():.3f}" for k, v in s.items())


print("dataset maps vs exact:", fmt(agreement_scores(coarse, exact)))
print("exact vs itself:", fmt(agreement_scores(exact, exact)))
for path in [teacher_dir, *policies]:
    g = gradient_maps(load_policy(path, task=task), obs)
    print(path, "| vs dataset maps:", fmt(agreement_scores(g, coarse)), "| vs exact:", fmt(agreement_scores(g, exact)))
