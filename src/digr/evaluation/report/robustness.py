"""Section: robustness to the four attacks (paper Figure 8)."""

from __future__ import annotations

import shlex
from typing import Any

from digr.evaluation.report.base import Report, cmd_block
from digr.evaluation.report.config import fmt_eps
from digr.evaluation.report.metrics import cache_slug


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
    sweeps: dict[str, list[dict[str, Any]]] = {}
    for r in rep.roles:
        key = {"kind": "robustness", "weights": rep.digests[r], "task": spec.name, "attacks": attacks,
               "eps": eps_list, "episodes": cfg.robustness_episodes, "seed": cfg.seed}
        if cfg.surrogate_softplus:  # only then, so that the paper-setting caches stay valid
            key["surrogate_softplus"] = cfg.surrogate_softplus
        sweeps[r] = rep.cache(f"robustness-{cache_slug(r)}", key, lambda r=r: rob.robustness_sweep(
            rep.net(r), spec.name, attacks=attacks, eps_values=eps_list, episodes=cfg.robustness_episodes,
            seed=cfg.seed, workers=cfg.workers, surrogate_softplus=cfg.surrogate_softplus))
    from digr.evaluation.report.performance import chance_row

    figures.robustness_chart(sweeps, rep.figdir / "robustness.png", metric=metric, chance=chance_row(rep)[metric])
    rep.md += [f"Every observation attacked inside the L-inf eps-ball (eps in grey levels of 255), greedy "
               f"actions, {cfg.robustness_episodes} episodes per point (episode k resets with seed "
               f"{cfg.seed}+k). `{metric}` per point; each table is printed by the loops above it (one JSON "
               "line per eps, one loop per column).", "", "![robustness](figures/robustness.png)", ""]
    if cfg.surrogate_softplus:
        rep.md += [f"Each attack follows the gradient of the policy's smooth twin (the same weights, "
                   f"softplus units of beta {cfg.surrogate_softplus:g}) while the policy acts, so a ReLU "
                   "network's masked gradient does not hide a weakness.", ""]
    else:
        rep.md += ["Each attack follows the policy's own gradient (the paper's setting); a ReLU network's "
                   "gradient can mask a weakness there (`--surrogate-softplus 50` attacks through a "
                   "smooth twin instead).", ""]
    surrogate = ["--surrogate-softplus", f"{cfg.surrogate_softplus:g}"] if cfg.surrogate_softplus else []
    eps_args = " ".join(fmt_eps(e) for e in eps_list)
    for attack in attacks:
        loops = [f"for EPS in {eps_args}; do\n  "
                 + rep.command("evaluate", "robustness", "--policy", rep.paths[r], "--task", spec.name,
                               "--attack", attack)
                 + ' --eps "$EPS" '
                 + shlex.join(["--episodes", str(cfg.robustness_episodes), "--seed", str(cfg.seed),
                               *surrogate, "--json"])
                 + "\ndone" for r in rep.roles]
        rep.md += [f"### {attack}", "", *cmd_block(loops),
                   "| eps | " + " | ".join(rep.roles) + " |", "|---:|" + "---:|" * len(rep.roles)]
        for e in eps_list:
            cells = []
            for r in rep.roles:
                hit = [x for x in sweeps[r] if x["attack"] == attack and abs(x["eps"] - e) < 1e-12]
                cells.append(f"{hit[0][metric]:.3f}" if hit else "—")
            rep.md.append(f"| {fmt_eps(e)} | " + " | ".join(cells) + " |")
        rep.md.append("")
    rep.done("robustness")
    rep.summary["robustness"] = {
        r: [{"attack": x["attack"], "eps": x["eps"], metric: x[metric]} for x in rows]
        for r, rows in sweeps.items()}
