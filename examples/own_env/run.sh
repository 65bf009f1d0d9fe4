#!/usr/bin/env bash
# From a user's own SB3 model on an env digr does not ship to a DIGR student, its report figures
# and an ONNX file that explains itself. Budgets are small; raise TIMESTEPS, SIZE and STEPS for a
# real run. Usage: examples/own_env/run.sh [WORKDIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-runs/own-env}
TIMESTEPS=${TIMESTEPS:-200000} SIZE=${SIZE:-500} STEPS=${STEPS:-3000} EPISODES=${EPISODES:-50}
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
env=(--env DoorKeyRGB-v0 --env-module doorkey_env)
mkdir -p "$work"
python "$here/train_sb3.py" --timesteps "$TIMESTEPS" --out "$work/doorkey_ppo.zip"
digr import-sb3 "$work/doorkey_ppo.zip" --out "$work/teacher" "${env[@]}"
digr evaluate performance --policy "$work/teacher" --episodes "$EPISODES" "${env[@]}"
digr saliency --policy "$work/teacher" --method vanilla,perturbation --states 4 --out "$work/saliency" "${env[@]}"
digr dataset --teacher "$work/teacher" --out "$work/ds" --size "$SIZE" "${env[@]}"
digr distill --teacher "$work/teacher" --dataset "$work/ds" --out "$work/student" --steps "$STEPS" "${env[@]}"
digr evaluate agreement --teacher "$work/teacher" --policy "$work/student" --states 50 "${env[@]}"
digr evaluate performance --policy "$work/student" --episodes "$EPISODES" "${env[@]}"
digr export "$work/student" --format onnx --out "$work/student.onnx"
# the whole comparison (DIGR and distill-only students of this teacher, agreement, timing,
# performance, robustness, figures) as one resumable folder with report.md:
digr pipeline --teacher "$work/teacher" --out "$work/pipeline" --preset demo "${env[@]}"
