"""Mean and 95% t-interval over seeds of the trial summaries ``experiments/recipe_trial.sh`` prints.

usage: python experiments/summarize.py LOG [LOG ...]   (one JSON object per line; grouped by the run
name with its trailing ``-s<seed>`` removed)
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict

from digr.distill.seeds import interval95


def interval(xs: list[float]) -> str:
    mean = sum(xs) / len(xs)
    return f"{mean:.3f}" if len(xs) < 2 else f"{mean:.3f} ± {interval95(xs):.3f}"


def main(paths: list[str]) -> None:
    groups: dict[str, list[dict]] = defaultdict(list)
    for p in paths:
        for line in open(p):
            line = line.strip()
            if line.startswith("{"):
                row = json.loads(line)
                groups[re.sub(r"-s\d+$", "", row["run"])].append(row)
    keys = ("success", "return", "cc", "share", "top1", "kl")
    print("| run | seeds | " + " | ".join(keys) + " |")
    print("|---|---:|" + "---:|" * len(keys))
    for name, rows in groups.items():
        cells = [interval([r[k] for r in rows if r.get(k) is not None]) if any(r.get(k) is not None for r in rows)
                 else "—" for k in keys]
        print(f"| {name} | {len(rows)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
