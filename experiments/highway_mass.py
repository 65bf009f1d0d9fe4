"""Diagnostic: where a highway policy's vanilla-gradient mass lies, on the agreement cache's 64
held-out states (runs/agreement-cache, written by `digr evaluate agreement --task highway --states 64
--cache runs/agreement-cache`): on the pixels the perturbation map marks (> 0.1), on white pixels
(lane markings, car outlines), on any pixel that is not road grey.

The mean-normalised student left results/ in session 11 (the 150 MB budget); rebuild it with the
command in results/highway/README.md ("Students") into runs/hw2/digr-mean. Policies whose folder
is missing are skipped.

usage: python experiments/highway_mass.py
"""
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)
from digr.evaluation.agreement import gradient_maps
from digr.models import load_policy

d=np.load('runs/agreement-cache/agreement-5e1a900ec39205d1.npz')
obs=torch.from_numpy(d['obs']).float()/255; ref=d['maps']
print('obs range', obs.min().item(), obs.max().item())
o=obs[:,0].numpy()
vals,counts=np.unique(np.round(o*255),return_counts=True)
top=np.argsort(-counts)[:6]; print('common values', [(vals[i],counts[i]) for i in top])
road=vals[np.argmax(counts)]/255
POLICIES = [('teacher', 'results/highway/teacher'), ('d9-s0', 'runs/hw/d9-s0'), ('meannorm', 'runs/hw2/digr-mean')]
print('skipped (missing):', [p for _, p in POLICIES if not Path(p).exists()])
POLICIES = [(n, p) for n, p in POLICIES if Path(p).exists()]
for name,path in POLICIES:
    p=load_policy(path, task='highway')
    g=gradient_maps(p, obs).numpy()
    g=g/ g.reshape(len(g),-1).sum(1)[:,None,None]
    kept=ref>0.1
    bright=o>0.8   # lane markings / car outlines (white)
    nongrey=np.abs(o-road)>0.02
    print(name, 'share kept %.3f'%(g*kept).sum((1,2)).mean(), 'white px mass %.3f'%(g*bright).sum((1,2)).mean(),
          'white&~kept %.3f'%(g*(bright&~kept)).sum((1,2)).mean(), 'nonroad mass %.3f'%(g*nongrey).sum((1,2)).mean(),
          'frac white px %.3f'%bright.mean(), 'frac nonroad %.3f'%nongrey.mean())


def near(mask, px):
    """``mask`` dilated by ``px`` pixels (max-pool)."""
    t = torch.from_numpy(mask.astype(np.float32))[:, None]
    return torch.nn.functional.max_pool2d(t, 2 * px + 1, stride=1, padding=px)[:, 0].numpy() > 0


for name, path in POLICIES:
    g = gradient_maps(load_policy(path, task='highway'), obs).numpy()
    g = g / g.reshape(len(g), -1).sum(1)[:, None, None]
    kept = ref > 0.1
    for px in (4, 8):
        ring = near(o > 0.8, px) & ~kept
        print(name, f'within {px} px of a white pixel, off the map: mass {(g * ring).sum((1, 2)).mean():.3f}, '
              f'pixels {ring.mean():.3f}')
