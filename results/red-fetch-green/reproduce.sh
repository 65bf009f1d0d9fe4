#!/usr/bin/env bash
# Regenerate results/red-fetch-green/ from its recorded commands (written by experiments/write_reproduce.py
# from pipeline.json; edit that, not this). Stages run in order into $OUT (default
# repro/red-fetch-green); name stages to run only those, e.g. `results/red-fetch-green/reproduce.sh digr report`.
# Students read the committed teacher, so each stage can be re-checked on its own. A resumed chain
# recorded in a comment runs here as one invocation with the final budget: same settings, other
# batches, so figures agree within their seed-to-seed spread rather than bit for bit.
# The teacher stage is hours on a CPU; the datasets and students are minutes to hours.
set -euo pipefail
OUT=${OUT:-repro/red-fetch-green}
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p "$OUT"

stage_teacher() {
  # recorded: see README.md: three resumed invocations
  digr train --task red-fetch-green --out "$OUT/teacher" --seed 0 --timesteps 1200000 --threads 1
}

stage_dataset() {
  # recorded: wrote runs/rfg/ds
  digr dataset --teacher results/red-fetch-green/teacher --task red-fetch-green --out "$OUT/dataset" --workers 1 --seed 0
}

stage_digr() {
  # recorded: the default (smooth) recipe since session 22; seed 2 = the median cc of seeds 0-2 (results/recipe-ablation.md)
  digr distill --recipe smooth --teacher results/red-fetch-green/teacher --dataset "$OUT/dataset" --task red-fetch-green --out "$OUT/digr" --seed 2 --steps 3000 --eval-every 0 --eval-episodes 0 --threads 1
}

stage_distill_only() {
  digr distill --recipe paper --teacher results/red-fetch-green/teacher --task red-fetch-green --no-igr --out "$OUT/distill-only" --steps 8000 --eval-every 1000 --eval-episodes 50 --seed 0 --threads 1
}

stage_digr_relu() {
  # recorded: the default recipe of sessions 9-21 (recorded as recipe "default", now relu); seed 2 = the median cc of seeds 0-2
  digr distill --teacher results/red-fetch-green/teacher --dataset "$OUT/dataset" --task red-fetch-green --out "$OUT/digr-relu" --recipe relu --seed 2 --eval-every 1000 --eval-episodes 20
}

stage_dataset_1() {
  # recorded: wrote runs/full/dataset
  digr dataset --teacher results/red-fetch-green/teacher --task red-fetch-green --size 1000 --out "$OUT/dataset-1"
}

stage_digr_meannorm() {
  digr distill --recipe paper --teacher results/red-fetch-green/teacher --dataset "$OUT/dataset-1" --task red-fetch-green --out "$OUT/digr-meannorm" --steps 12000 --alpha 10 --igr-normalizer mean --eval-every 2000 --seed 0 --threads 1
}

stage_digr_pool4_topk_adv16() {
  # recorded: run to 8,000, then resumed to 12,000
  digr distill --recipe paper --teacher results/red-fetch-green/teacher --dataset "$OUT/dataset-1" --task red-fetch-green --out "$OUT/digr-pool4-topk-adv16" --steps 12000 --student-input-pool 4 --igr-normalizer topk --igr-topk 64 --alpha 1 --eval-every 2000 --seed 0 --threads 1 --adv-eps 16/255 --adv-steps 3
}

stage_fls() {
  # recorded: stopped at 102,416 steps; resumed with --timesteps 600000 --checkpoint-every 50000 --threads 1, then --timesteps 1200000 --checkpoint-every 100000 --threads 2
  digr train --task red-fetch-green --fls sparse-sum --out "$OUT/fls" --seed 0 --timesteps 1200000 --stop-at-success 0.99 --threads 1
}

stage_fls_digr() {
  digr distill --recipe paper --teacher results/red-fetch-green/teacher --dataset "$OUT/dataset-1" --task red-fetch-green --out "$OUT/fls-digr" --steps 8000 --alpha 10 --igr-normalizer mean --student-fls sparse-sum --eval-every 2000 --seed 0 --threads 1
}

stage_digr_paper() {
  # recorded: run first with --steps 8000, then resumed to 12000  # --recipe paper today
  digr distill --recipe paper --teacher results/red-fetch-green/teacher --dataset "$OUT/dataset-1" --task red-fetch-green --out "$OUT/digr-paper" --steps 12000 --eval-every 1000 --eval-episodes 50 --seed 0 --threads 1
}

stage_digr_adv16() {
  # recorded: launched with --steps 12000, stopped after the 6,500 checkpoint, resumed with --steps 8000
  digr distill --recipe paper --teacher results/red-fetch-green/teacher --dataset "$OUT/dataset-1" --task red-fetch-green --out "$OUT/digr-adv16" --steps 8000 --eval-every 2000 --seed 0 --threads 1 --adv-eps 16/255 --adv-steps 3
}

stage_digr_pool4_init_adv16() {
  digr distill --recipe paper --teacher results/red-fetch-green/teacher --dataset "$OUT/dataset-1" --task red-fetch-green --out "$OUT/digr-pool4-init-adv16" --steps 12000 --student-input-pool 4 --igr-normalizer topk --igr-topk 64 --alpha 1 --adv-eps 16/255 --adv-steps 3 --init teacher --eval-every 2000 --seed 0 --threads 1
}

stage_report() {
  cp results/red-fetch-green/pipeline.json "$OUT/pipeline.json"
  digr report "$OUT"
}

STAGES=(teacher dataset digr distill-only digr-relu dataset-1 digr-meannorm digr-pool4-topk-adv16 fls fls-digr digr-paper digr-adv16 digr-pool4-init-adv16 report)
for s in "${@:-${STAGES[@]}}"; do
  case " ${STAGES[*]} " in *" $s "*) ;; *) echo "reproduce.sh: unknown stage $s (stages: ${STAGES[*]})" >&2; exit 2;; esac
  echo "== $s" >&2
  "stage_${s//-/_}"
done
