"""Print the leave-one-part-out table (results/recipe-ablation.md, session 23) from its run files.

Each run NAME has, beside ``runs/rfg/LOO-NAME/``: ``.log`` (the last line of
``experiments/recipe_trial.sh``: cc, share, top1, success), ``.table1.json`` (``digr evaluate
saliency``) and ``.rob-ATTACK.json`` (``digr evaluate robustness``), plus ``.rob-ATTACK-twin.json``
for a ReLU student, where the lower of the two success rates counts.

usage: python experiments/loo_table.py [PREFIX]   (default runs/rfg/LOO-)
       python experiments/loo_table.py results/red-fetch-green/history/session23-loo/   (the committed copy)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

NAMES = ("base", "no-softplus", "no-adv", "no-corr", "no-share", "no-online-mix", "no-anneal", "no-warm",
         "no-igr")


def _load(path: Path) -> dict | None:
    try:
        text = path.read_text().strip()
        return json.loads(text.splitlines()[-1])  # a trial's log ends with its summary line
    except (OSError, ValueError, IndexError):
        return None


def _files(base: str, name: str) -> tuple[Path, Path, str]:
    """(trial line, Table 1 json, prefix of the robustness files) of run ``name``."""
    if Path(base).is_dir():  # the committed copy: one folder per run
        return (Path(base, name, "trial.json"), Path(base, name, "table1.json"),
                str(Path(base, name, f"LOO-{name}")))
    return Path(f"{base}{name}.log"), Path(f"{base}{name}.table1.json"), f"{base}{name}"


def _attacked(prefix: str, attack: str) -> str:
    own = _load(Path(f"{prefix}.rob-{attack}.json"))
    if own is None:
        return "—"
    twin = _load(Path(f"{prefix}.rob-{attack}-twin.json"))
    if twin is None:
        return f"{own['success_rate']:.2f}"
    low = min(own["success_rate"], twin["success_rate"])
    return f"{low:.2f} (own {own['success_rate']:.2f})" if twin["success_rate"] < own["success_rate"] else f"{low:.2f}"


def main() -> None:
    base = sys.argv[1] if len(sys.argv) > 1 else "runs/rfg/LOO-"
    print("| run | cc | share | top1 | success (200) | KL | Table 1 important / unimportant / AUC (1k) "
          "| MAD 16/255 | PGD 8/255 |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|")
    for name in NAMES:
        trial_path, t1_path, p = _files(base, name)
        trial = _load(trial_path)
        if trial is None:
            print(f"| {name} | not run | | | | | | | |")
            continue
        t1 = _load(t1_path)
        t1s = (f"{t1['important']:.2f} / {t1['unimportant']:.4f} / {t1['auc']:.4f}" if t1 else "—")
        print(f"| {name} | {trial['cc']:.3f} | {trial['share']:.3f} | {trial['top1']:.3f} | {trial['success']:.3f} "
              f"| {trial['kl']:.4f} | {t1s} | {_attacked(p, 'mad')} | {_attacked(p, 'pgd')} |")


if __name__ == "__main__":
    main()
