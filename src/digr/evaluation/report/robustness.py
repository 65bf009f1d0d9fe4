"""Section: robustness to the four attacks (paper Figure 8)."""

from __future__ import annotations

import hashlib
import json
import shlex
from typing import Any

from digr.evaluation.report.base import Report, cmd_block
from digr.evaluation.report.config import fmt_eps
from digr.evaluation.report.metrics import cache_slug
from digr.evaluation.settings import RobustnessSweepConfig


def robustness_section(rep: Report) -> None:
    from digr import figures

    cfg, spec, metric = rep.cfg, rep.spec, rep.metric
    rep.md += ["## Robustness to observation attacks (paper Figure 8)", ""]
    try:  # owned by the attacks work; the report works without it
        from digr.attacks import ATTACK_NAMES, resolve_attack_name
        from digr.evaluation import robustness as rob
    except ImportError as exc:
        rep.skip("robustness", f"digr.evaluation.robustness is not available ({exc})")
        return
    attacks = [resolve_attack_name(a) for a in (cfg.attacks or ATTACK_NAMES)]
    eps_list = list(rob.DEFAULT_EPS if cfg.eps is None else cfg.eps)

    def cached_sweep(r: str, name: str, key: dict[str, Any], beta: float = 0.0) -> list[dict[str, Any]]:
        """One role's sweep from the cache, or rolled out with every finished point kept in
        ``eval/NAME.partial-TAG.json`` (TAG: the key's digest), so that a killed report resumes
        within a sweep (one sweep of a failing policy can take most of an hour); the partial file
        goes once the cache holds the whole sweep."""
        def compute() -> list[dict[str, Any]]:
            tag = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
            rep.cache.dir.mkdir(parents=True, exist_ok=True)
            scfg = RobustnessSweepConfig(attacks=tuple(attacks), eps=tuple(eps_list),
                                         episodes=cfg.robustness_episodes, seed=cfg.seed,
                                         surrogate_softplus=beta, workers=cfg.workers)
            return rob.sweep_to_file(rep.net(r), spec.name, rep.cache.dir / f"{name}.partial-{tag}.json",
                                     scfg, policy_digest=rep.digests[r])

        rows = rep.cache(name, key, compute)
        for stale in rep.cache.dir.glob(f"{name}.partial-*.json"):  # digr's own, now in the cache
            stale.unlink()
        return rows

    own: dict[str, list[dict[str, Any]]] = {}
    twin: dict[str, list[dict[str, Any]]] = {}
    for r in rep.roles:
        key = {"kind": "robustness", "weights": rep.digests[r], "task": spec.name, "attacks": attacks,
               "eps": eps_list, "episodes": cfg.robustness_episodes, "seed": cfg.seed}
        own[r] = cached_sweep(r, f"robustness-{cache_slug(r)}", key)
        # a smooth policy is its own twin: its own-gradient sweep is already the honest one
        if cfg.surrogate_softplus and rep.net(r).config.softplus_beta == 0:
            twin[r] = cached_sweep(r, f"robustness-twin-{cache_slug(r)}",
                                   {**key, "surrogate_softplus": cfg.surrogate_softplus}, cfg.surrogate_softplus)
    sweeps = {r: lower_of(own[r], twin.get(r), metric) for r in rep.roles}
    from digr.evaluation.report.performance import chance_row

    figures.robustness_chart(sweeps, rep.figdir / "robustness.png", metric=metric, chance=chance_row(rep)[metric])
    rep.md += [f"Every observation attacked inside the L-inf eps-ball (eps in grey levels of 255), greedy "
               f"actions, {cfg.robustness_episodes} episodes per point (episode k resets with seed "
               f"{cfg.seed}+k). `{metric}` per point; each table is printed by the loops above it (one JSON "
               "line per eps, one loop per column).", "", "![robustness](figures/robustness.png)", ""]
    if cfg.surrogate_softplus:
        rep.md += [f"Each point is the **lower** of two attacks: through the policy's own gradient (the paper's "
                   f"setting) and through its smooth twin's (the same weights, softplus units of beta "
                   f"{cfg.surrogate_softplus:g}) while the policy acts, so a ReLU network's masked gradient "
                   "does not hide a weakness. Where the twin's attack was the stronger the cell gives the "
                   "own-gradient figure beside it (`0.000 (own 1.000)`: masked there). A policy with softplus "
                   "units is its own twin.", ""]
    else:
        rep.md += ["Each attack follows the policy's own gradient (the paper's setting); a ReLU network's "
                   "gradient can mask a weakness there (`--surrogate-softplus 50` also attacks through a "
                   "smooth twin and reports the lower of the two).", ""]
    eps_args = " ".join(fmt_eps(e) for e in eps_list)
    for attack in attacks:
        def loop(r: str, *extra: str) -> str:
            return (f"for EPS in {eps_args}; do\n  "
                    + rep.command("evaluate", "robustness", "--policy", rep.paths[r], "--task", spec.name,
                                  "--attack", attack)
                    + ' --eps "$EPS" '
                    + shlex.join(["--episodes", str(cfg.robustness_episodes), "--seed", str(cfg.seed), *extra,
                                  "--json"])
                    + "\ndone")

        twin_flag = ("--surrogate-softplus", f"{cfg.surrogate_softplus:g}")
        loops = [cmd for r in rep.roles for cmd in ([loop(r)] + ([loop(r, *twin_flag)] if r in twin else []))]
        rep.md += [f"### {attack}", "", *cmd_block(loops),
                   "| eps | " + " | ".join(rep.roles) + " |", "|---:|" + "---:|" * len(rep.roles)]
        for e in eps_list:
            cells = []
            for r in rep.roles:
                hit = [x for x in sweeps[r] if x["attack"] == attack and abs(x["eps"] - e) < 1e-12]
                if not hit:
                    cells.append("—")
                    continue
                cell = f"{hit[0][metric]:.3f}"
                if hit[0].get("through") == "twin":
                    cell += f" (own {hit[0]['own'][metric]:.3f})"
                cells.append(cell)
            rep.md.append(f"| {fmt_eps(e)} | " + " | ".join(cells) + " |")
        rep.md.append("")
    below = below_teacher(sweeps, metric)
    if below:
        rep.md += ["**Below the teacher** (a student's figure lower than the teacher's at the same attacked "
                   "point, the robustness bar being at least the teacher's at every point; eps 0, the "
                   "unattacked policy, is the performance table's comparison, on more episodes):", ""]
        rep.md += [f"- {r}: " + (", ".join(f"{b['attack']} {fmt_eps(b['eps_255'] / 255)} ({b[metric]:.3f} "
                                           f"vs {b['baseline']:.3f})" for b in pts) if pts else "none")
                   + f" ({len(pts)} of {n} points)" for r, (pts, n) in below.items()]
        rep.md.append("")
        rep.summary["robustness_below_teacher"] = {r: pts for r, (pts, _) in below.items()}
    rep.done("robustness")
    rep.summary["robustness"] = {
        r: [{"attack": x["attack"], "eps": x["eps"], metric: x[metric],
             **({"through": x["through"]} if "through" in x else {})} for x in rows]
        for r, rows in sweeps.items()}


def below_teacher(sweeps: dict[str, list[dict[str, Any]]],
                  metric: str) -> dict[str, tuple[list[dict[str, Any]], int]]:
    """Per role other than the teacher, its attacked points below the teacher's figure and how many
    points were compared (:func:`digr.evaluation.robustness.points_below`); empty without a teacher."""
    from digr.evaluation.robustness import points_below

    if "teacher" not in sweeps:
        return {}
    return {r: points_below(rows, sweeps["teacher"], metric) for r, rows in sweeps.items() if r != "teacher"}


def lower_of(own: list[dict[str, Any]], twin: list[dict[str, Any]] | None, metric: str) -> list[dict[str, Any]]:
    """Per (attack, eps) point, the row of whichever attack left ``metric`` lower: ``own`` (the
    policy's own gradient) or ``twin`` (its smooth twin's); ``own`` as it is when there is no twin
    sweep. A twin row that wins carries ``through="twin"`` and the own row under ``"own"``; ties go
    to the own gradient (the paper's setting)."""
    if twin is None:
        return own
    by_point = {(x["attack"], round(x["eps"] * 255, 6)): x for x in twin}
    out = []
    for x in own:
        t = by_point.get((x["attack"], round(x["eps"] * 255, 6)))
        if t is not None and t[metric] < x[metric]:
            out.append({**t, "through": "twin", "own": x})
        else:
            out.append({**x, "through": "own"} if t is not None else x)
    return out
