#!/usr/bin/env bash
# one leave-one-out run: NAME FLAGS...
set -u
cd /work/main
export OMP_NUM_THREADS=1
name=$1; shift
out=runs/rfg/LOO-$name
d=.venv/bin/digr
experiments/recipe_trial.sh red-fetch-green results/red-fetch-green/teacher runs/rfg/ds $out 100 200 \
  --recipe smooth --seed 0 --steps 3000 --eval-every 0 --eval-episodes 0 "$@" > $out.log 2>&1 || { echo "$name failed" >> runs/rfg/loo.status; exit 0; }
$d --torch-threads 1 evaluate saliency --policy $out --method vanilla --task red-fetch-green --states 1000 --json > $out.table1.json 2>> $out.err
for pt in "mad 16/255" "pgd 8/255"; do
  set -- $pt
  $d --torch-threads 1 evaluate robustness --policy $out --task red-fetch-green --attack $1 --eps $2 --episodes 50 --seed 0 --json > $out.rob-$1.json 2>> $out.err
  if grep -q '"softplus_beta": 50' $out/policy/config.json; then :; else
    $d --torch-threads 1 evaluate robustness --policy $out --task red-fetch-green --attack $1 --eps $2 --episodes 50 --seed 0 --surrogate-softplus 50 --json > $out.rob-$1-twin.json 2>> $out.err
  fi
done
echo "$name done $(date +%H:%M:%S)" >> runs/rfg/loo.status
