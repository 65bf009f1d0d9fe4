"""An independent check of `digr evaluate agreement`: the same three figures computed from scratch.

Nothing from ``digr.saliency`` or ``digr.evaluation`` is used: the perturbation map is a plain
NumPy loop over window centres (Greydanus et al.: an untruncated Gaussian window of sigma =
radius, the whole frame blurred with sigma 3 and edge replication, scored by
KL(pi(s) || pi(s')) in float64), the gradient map is eq. 2 taken with ``torch.autograd`` on the
policy's logits, and cc / share / top1 come from NumPy. digr only loads the checkpoints and
supplies the held-out states (the ``.npz`` that ``digr evaluate agreement --cache`` wrote, whose
maps are not read).

usage: python experiments/independent_agreement.py CACHE.npz TEACHER POLICY [POLICY ...] [--states N]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

torch.set_num_threads(1)


def blur_frame(x: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Separable Gaussian blur of ``x: (C, H, W)``, kernel cut at 4 sigma, edges replicated."""
    half = int(4 * sigma + 0.5)
    k = np.exp(-np.arange(-half, half + 1) ** 2 / (2 * sigma ** 2))
    k /= k.sum()

    def conv(v: np.ndarray) -> np.ndarray:
        return np.convolve(np.pad(v, half, mode="edge"), k, mode="valid")

    out = np.apply_along_axis(conv, 1, x)  # down each column (axis 1 of (C, H, W))
    return np.apply_along_axis(conv, 2, out)  # along each row


def perturbation_map(policy, x: np.ndarray, radius: float) -> np.ndarray:
    c, h, w = x.shape
    blurred = blur_frame(x.astype(np.float64))
    ys, xs = np.mgrid[0:h, 0:w]
    with torch.no_grad():
        p = torch.log_softmax(policy(torch.from_numpy(x[None]).float()).double(), -1)[0].numpy()
    out = np.zeros((h, w))
    for i in range(h):
        rows = []
        for j in range(w):
            m = np.exp(-((ys - i) ** 2 + (xs - j) ** 2) / (2 * radius ** 2))
            rows.append(x * (1 - m) + blurred * m)
        with torch.no_grad():
            q = torch.log_softmax(policy(torch.from_numpy(np.stack(rows)).float()).double(), -1).numpy()
        out[i] = np.maximum((np.exp(p) * (p - q)).sum(-1), 0)
    return out / max(out.max(), 1e-300)


def gradient_map(policy, x: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(x[None]).float().requires_grad_(True)
    probs = torch.softmax(policy(t), -1)
    (g,) = torch.autograd.grad(0.5 * (probs ** 2).sum(), t)
    return g[0].abs().sum(0).numpy().astype(np.float64)


def figures(m: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    cc = float(np.corrcoef(m.ravel(), ref.ravel())[0, 1]) if m.std() > 0 else 0.0
    share = float(m[ref > 0.1].sum() / m.sum()) if m.sum() > 0 else 0.0
    k = int(np.ceil(0.01 * m.size))
    top1 = float(np.sort(m.ravel())[::-1][:k].sum() / m.sum()) if m.sum() > 0 else 0.0
    return cc, share, top1


def main() -> None:
    from digr.models import load_policy
    from digr.models.checkpoint import read_config

    ap = argparse.ArgumentParser()
    ap.add_argument("cache")
    ap.add_argument("teacher")
    ap.add_argument("policies", nargs="+")
    ap.add_argument("--states", type=int, default=20)
    ap.add_argument("--radius", type=float, required=True)
    args = ap.parse_args()
    obs = np.load(args.cache, allow_pickle=False)["obs"][: args.states].astype(np.float64) / 255.0
    teacher = load_policy(args.teacher)
    refs = [perturbation_map(teacher, x, args.radius) for x in obs]
    out = {}
    for name in ["teacher", *args.policies]:
        pol = teacher if name == "teacher" else load_policy(name)
        rows = np.array([figures(gradient_map(pol, x), r) for x, r in zip(obs, refs)])
        out[name] = dict(zip(("cc", "share", "top1"), np.round(rows.mean(0), 4).tolist()))
    print(json.dumps({"states": len(obs), "task": read_config(args.teacher)["task"], "agreement": out}))


if __name__ == "__main__":
    main()
