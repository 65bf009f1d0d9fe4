"""Mean and 95% t-interval over seeds of the trial summaries ``experiments/recipe_trial.sh`` prints.

usage: python experiments/summarize.py LOG [LOG ...]   (one JSON object per line; grouped by the run
name with its trailing ``-s<seed>`` removed)
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import defaultdict

# two-sided 95% Student-t quantiles for n - 1 degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def interval(xs: list[float]) -> str:
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return f"{mean:.3f}"
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return f"{mean:.3f} ± {T95.get(n - 1, 1.96) * sd / math.sqrt(n):.3f}"


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
