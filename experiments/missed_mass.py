"""Diagnostic: where the vanilla-gradient mass that misses the perturbation map lies, any task.

On an agreement cache's held-out states and reference maps (written by `digr evaluate agreement
--cache DIR`), for each policy: its share (mass on reference > 0.1, the agreement figure), its mass
on the reference's fainter bands, its mass off the marked pixels but within d pixels of them (is the
miss a blur/offset of the right region, or somewhere else?), and its mass on "object" pixels (any
channel differs from that frame's most common value: the background).

usage: python experiments/missed_mass.py CACHE.npz TASK POLICY_DIR...
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
from digr.evaluation.agreement import agreement_scores, gradient_maps  # noqa: E402
from digr.models import load_policy  # noqa: E402

cache, task, *policies = sys.argv[1:]
with np.load(cache, allow_pickle=False) as z:
    obs_u8, ref = z["obs"], z["maps"].astype(np.float64)
obs = torch.from_numpy(obs_u8).float().div_(255.0)
ref = ref / np.maximum(ref.reshape(len(ref), -1).max(1), 1e-12)[:, None, None]
kept = ref > 0.1
kept_t = torch.from_numpy(kept).float()[:, None]


def dilate(mask: torch.Tensor, d: int) -> np.ndarray:
    return (F.max_pool2d(mask, 2 * d + 1, stride=1, padding=d)[:, 0] > 0).numpy()


near = {d: dilate(kept_t, d) & ~kept for d in (1, 2, 4, 8)}
# background = each frame's most common value; an object pixel differs from it in any channel
objects = np.zeros(kept.shape, bool)
for i, s in enumerate(obs_u8):
    for c in s:
        vals, counts = np.unique(c, return_counts=True)
        objects[i] |= c != vals[counts.argmax()]
bands = [(0.05, 0.1), (0.01, 0.05), (0.0, 0.01)]
print(f"{len(obs)} states; marked pixels {kept.mean():.3f}; object pixels {objects.mean():.3f}; "
      + "; ".join(f"within {d}px {m.mean():.3f}" for d, m in near.items()))
ref_t = torch.from_numpy(ref)
print("reference itself: share %.3f" % agreement_scores(ref_t, ref_t)["share"].mean())
for path in policies:
    maps = gradient_maps(load_policy(path, task=task), obs)
    row = {"share": agreement_scores(maps, ref_t)["share"].mean()}  # the agreement figure itself
    g = maps.double().numpy()
    g = g / np.maximum(g.reshape(len(g), -1).sum(1), 1e-12)[:, None, None]
    for lo, hi in bands:
        row[f"ref {lo}-{hi}"] = (g * ((ref > lo) & (ref <= hi))).sum((1, 2)).mean()
    for d, m in near.items():
        row[f"off, <= {d}px"] = (g * m).sum((1, 2)).mean()
    row["objects"] = (g * objects).sum((1, 2)).mean()
    row["objects & off"] = (g * (objects & ~kept)).sum((1, 2)).mean()
    print(path, " ".join(f"{k} {v:.3f}" for k, v in row.items()))
