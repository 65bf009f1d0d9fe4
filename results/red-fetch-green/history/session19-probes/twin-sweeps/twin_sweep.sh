#!/usr/bin/env bash
# The robustness sweep through the policy's smooth twin (experiments/smoothed_attack.py), 50 episodes.
set -euo pipefail
p=$1 out=$2
export OMP_NUM_THREADS=1
for a in fgsm pgd mi-fgsm mad; do for e in 1 2 4 8 16; do
  f=$out.$a.$e.json; [ -s $f ] && continue
  .venv/bin/python experiments/smoothed_attack.py $p --task red-fetch-green --attack $a --eps $e/255 --episodes 50 --seed 0 > $f.tmp && mv $f.tmp $f
done; done
