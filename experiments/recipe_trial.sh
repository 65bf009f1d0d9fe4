#!/usr/bin/env bash
# One recipe trial on a task: distill a student with the given flags, then measure map agreement
# (held-out teacher states, cached reference maps) and greedy performance.
# usage: experiments/recipe_trial.sh TASK TEACHER DATASET OUT STATES EPISODES [distill flags...]
set -euo pipefail
task=$1 teacher=$2 dataset=$3 out=$4 states=$5 episodes=$6; shift 6
digr=${DIGR:-.venv/bin/digr}
export OMP_NUM_THREADS=1
$digr --torch-threads 1 distill --teacher "$teacher" --dataset "$dataset" --task "$task" --out "$out" \
  --no-progress --json "$@" > "$out.distill.json"
$digr --torch-threads 1 evaluate agreement --teacher "$teacher" --policy "$out" --task "$task" \
  --states "$states" --cache runs/agreement-cache --json > "$out.agreement.json"
$digr --torch-threads 1 evaluate performance --policy "$out" --task "$task" --episodes "$episodes" \
  --seed 0 --json > "$out.performance.json"
python3 - "$out" <<'PY'
import json, sys
o = sys.argv[1]
d, a, p = (json.load(open(f"{o}.{k}.json")) for k in ("distill", "agreement", "performance"))
ag = a["agreement"][next(k for k in a["agreement"] if k not in ("reference", "teacher_vg"))]
print(json.dumps({"run": o, "steps": d["steps"], "wall_s": d["wall_s"], "kl": d.get("distill/kl"),
                  "cc": ag["cc"], "share": ag["share"], "top1": ag["top1"],
                  "success": p.get("success_rate"), "return": p.get("mean_return")}))
PY
