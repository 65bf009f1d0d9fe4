#!/usr/bin/env bash
# Regenerate results/breakout/ from its recorded commands (written by experiments/write_reproduce.py
# from pipeline.json; edit that, not this). Stages run in order into $OUT (default
# repro/breakout); name stages to run only those, e.g. `results/breakout/reproduce.sh digr report`.
# Students read the committed teacher, so each stage can be re-checked on its own. A resumed chain
# recorded in a comment runs here as one invocation with the final budget: same settings, other
# batches, so figures agree within their seed-to-seed spread rather than bit for bit.
# The teacher stage is hours on a CPU; the datasets and students are minutes to hours.
set -euo pipefail
OUT=${OUT:-repro/breakout}
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p "$OUT"

stage_teacher() {
  # recorded: stopped after the 702,464-step checkpoint; see README.md
  digr train --task breakout --out "$OUT/teacher" --seed 0 --threads 2 --checkpoint-every 100000
}

stage_dataset() {
  # recorded: wrote runs/bo8/ds10k
  digr dataset --teacher results/breakout/teacher --task breakout --out "$OUT/dataset" --size 10000 --seed 0 --stride 4 --truncate 3.53
}

stage_digr() {
  # recorded: the default recipe; run to 3,000 updates, then resumed to 6,000 and 9,000; seed 1 = the median cc of seeds 0-2 at 9,000
  digr distill --teacher results/breakout/teacher --dataset "$OUT/dataset" --task breakout --out "$OUT/digr" --seed 1 --steps 9000 --eval-every 0 --eval-episodes 0 --checkpoint-every 500 --threads 1
}

stage_distill_only() {
  # recorded: run with --steps 3000, then resumed to 6000 and 9000
  digr distill --recipe paper --teacher results/breakout/teacher --task breakout --no-igr --out "$OUT/distill-only" --steps 9000 --eval-every 1000 --eval-episodes 10 --checkpoint-every 250 --seed 0 --threads 1
}

stage_digr_paper() {
  # recorded: run on runs/bo/dataset, the same 10k-state dataset (sha256 312bea00..., as runs/bo8/ds10k); run with --steps 3000, then resumed to 6000 and 9000
  digr distill --teacher results/breakout/teacher --dataset "$OUT/dataset" --task breakout --recipe paper --out "$OUT/digr-paper" --steps 9000 --eval-every 1000 --eval-episodes 10 --checkpoint-every 250 --seed 0 --threads 1
}

stage_digr_meannorm() {
  # recorded: run on runs/bo/dataset, the same 10k-state dataset (sha256 312bea00..., as runs/bo8/ds10k)
  digr distill --recipe paper --teacher results/breakout/teacher --dataset "$OUT/dataset" --task breakout --out "$OUT/digr-meannorm" --steps 6000 --alpha 10 --igr-normalizer mean --eval-every 1000 --eval-episodes 10 --checkpoint-every 250 --seed 0 --threads 1
}

stage_fls() {
  # recorded: stopped right after the 200,704-step checkpoint
  digr train --task breakout --fls sparse --out "$OUT/fls" --seed 0 --timesteps 400000 --checkpoint-every 100000 --threads 1
}

stage_teacher_next() {
  # recorded: the teacher's run continued from its 702,464-step resume state in resumable chunks to ~5.94M (sessions 7-11), then from the committed 5,720,064-step checkpoint with --init-from results/breakout/teacher-next/policy (session 12); policy/ is the 8,028,160-step checkpoint; see README.md
  digr train --task breakout --out "$OUT/teacher-next" --seed 0 --threads 1 --checkpoint-every 100000
}

stage_report() {
  cp results/breakout/pipeline.json "$OUT/pipeline.json"
  digr report "$OUT"
}

STAGES=(teacher dataset digr distill-only digr-paper digr-meannorm fls teacher-next report)
for s in "${@:-${STAGES[@]}}"; do
  case " ${STAGES[*]} " in *" $s "*) ;; *) echo "reproduce.sh: unknown stage $s (stages: ${STAGES[*]})" >&2; exit 2;; esac
  echo "== $s" >&2
  "stage_${s//-/_}"
done
