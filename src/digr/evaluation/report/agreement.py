"""Section: map agreement with the teacher's perturbation map (no masks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from digr.evaluation.agreement import SPIKE_TOP1
from digr.evaluation.report.base import Report, cmd_block
from digr.evaluation.report.config import GOAL_CC, GOAL_SHARE
from digr.evaluation.report.folder import EVAL_DIR
from digr.evaluation.report.metrics import cache_slug


def student_recipe(run_dir: Path | None) -> str:
    """The recipe a student run folder records (``config.json`` -> ``distill.recipe``); for runs made
    before recipes existed, ``"paper"`` or, if they used an extension, ``"paper + extensions"``;
    ``"—"`` when there is no readable run config."""
    if run_dir is None or not (run_dir / "config.json").is_file():
        return "—"
    try:
        cfg = json.loads((run_dir / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "—"
    d = cfg.get("distill") if isinstance(cfg, dict) else None
    if not isinstance(d, dict):
        return "—"
    recipe = d.get("recipe")
    if recipe is None:  # a run made before recipes: the paper's, unless it used an extension
        plain = (d.get("igr_normalizer", "max") == "max" and not d.get("adv_eps") and not d.get("match_weight")
                 and not d.get("margin_l1_weight") and d.get("student_input_pool", 1) == 1
                 and d.get("student_fls") is None and "init_sha256" not in cfg)
        recipe = "paper" if plain else "paper + extensions"
    else:
        recipe = _current_name(recipe)
        extra = _overrides(cfg.get("task"), recipe, d)
        if extra:  # options spelled out before a preset named them: name the recipe they make
            from digr.distill.config import RECIPES

            same = [r for r in RECIPES if r != recipe and _overrides(cfg.get("task"), r, d) == ""]
            recipe, extra = (f"{same[0]} (recorded as {recipe} + options)", "") if same else (recipe, extra)
        recipe += extra
    return recipe if d.get("use_igr", True) else f"{recipe}, --no-igr"


def _current_name(recipe: Any) -> str:
    """A recorded recipe under its current name (runs of sessions 17-21 record ``relu`` as
    ``default``); an unknown name as it is."""
    from digr.distill.config import RECIPE_ALIASES

    return RECIPE_ALIASES.get(recipe, str(recipe)) if isinstance(recipe, str) else str(recipe)


def _overrides(task: Any, recipe: str, d: Mapping[str, Any]) -> str:
    """`` + name=value, ...`` for the settings of ``d`` that differ from ``recipe``'s on ``task``
    (run length, seeds, evaluation and logging aside), so a table never calls a student made
    with extra options by the bare recipe's name; ``""`` when they agree or cannot be compared."""
    from digr.distill.config import RESUMABLE_FIELDS, DistillConfig
    from digr.envs import get_task
    from digr.errors import DigrError

    try:
        base = DistillConfig.for_task(get_task(task), recipe=recipe).to_dict()
    except (DigrError, TypeError):
        return ""
    skip = RESUMABLE_FIELDS | {"seed", "eval_seed", "recipe", "use_igr"}
    diff = [f"{k}={_value(k, d[k])}" for k in base if k not in skip and k in d and d[k] != base[k]]
    return f" + {', '.join(diff)}" if diff else ""


def _value(name: str, v: Any) -> str:
    """A setting as a table prints it; a radius in grey levels (``16/255``) when it is a whole number
    of them, as the CLI takes it."""
    if name == "adv_eps" and isinstance(v, (int, float)) and v > 0 and abs(v * 255 - round(v * 255)) < 1e-9:
        return f"{round(v * 255)}/255"
    return f"{v:g}" if isinstance(v, float) else str(v)


def agreement_reading(a: Mapping[str, Any]) -> str:
    """One-word reading of an agreement row for the table: spike / meets goal / below goal."""
    if a["top1"] > SPIKE_TOP1:
        return f"**spike** (top1 > {SPIKE_TOP1})"
    if a["cc"] >= GOAL_CC and a["share"] >= GOAL_SHARE:
        return "meets goal"
    return "below goal"


def agreement_section(rep: Report) -> None:
    from digr.evaluation.agreement import map_agreement

    cfg, pipe = rep.cfg, rep.pipe
    rep.md += ["## Map agreement with the teacher's perturbation map (no masks)", ""]
    students = [r for r in rep.roles if r != "teacher"]
    if not students:
        rep.skip("agreement", "no student in this pipeline folder")
        return
    base = {"states": cfg.agreement_states, "seed": cfg.seed, "radius": rep.spec.perturbation_radius,
            "teacher": rep.digests["teacher"]}

    def measure(role: str) -> dict[str, Any]:
        # the held-out states and reference maps are kept in eval/ (npz) and shared by every role
        nets = {} if role in ("reference", "teacher_vg") else {role: rep.net(role)}
        res = map_agreement(nets, rep.net("teacher"), rep.spec.name, states=cfg.agreement_states,
                            seed=cfg.seed, cache=rep.pipe.dir / EVAL_DIR)
        return res[role].as_dict()

    res = {"reference": rep.cache("agreement-reference", base, lambda: measure("reference")),
           "teacher_vg": rep.cache("agreement-teacher", base, lambda: measure("teacher_vg"))}
    for r in students:
        res[r] = rep.cache(f"agreement-{cache_slug(r)}", {**base, "policy": rep.digests[r]},
                           lambda r=r: measure(r))
    cmd = rep.command("evaluate", "agreement", "--teacher", rep.paths["teacher"],
                      *[x for r in students for x in ("--policy", rep.paths[r])], "--task", rep.spec.name,
                      "--states", str(cfg.agreement_states), "--seed", str(cfg.seed), "--json")
    rep.md += [f"On {cfg.agreement_states} held-out states from the teacher's own sampled rollouts (none of "
               "them in the DIGR dataset), each policy's vanilla-gradient map is compared with the teacher's "
               f"Gaussian-blur perturbation map (radius {rep.spec.perturbation_radius}): **cc** is their "
               "Pearson correlation, **share** the policy's gradient mass on pixels where the perturbation "
               "map exceeds 0.1, **top1** its mass in its 1% largest pixels (a spike scores near 1). "
               f"Means with 95% intervals; goal: cc >= {GOAL_CC}, share >= {GOAL_SHARE}; the teacher's own "
               "gradient is the baseline. The first row scores the perturbation map against itself: its "
               "share is below 1 where the map spreads faint mass under the 0.1 threshold, which a student "
               "must leave out to score higher.", "", *cmd_block([cmd]),
               "| Policy | recipe | cc | share | top1 | reading |", "|---|---|---:|---:|---:|---|"]
    labels = {"reference": "perturbation map itself", "teacher_vg": "teacher (own VG, baseline)"}
    for r, a in res.items():
        recipe = "—" if r in labels else student_recipe(pipe.run_dir(r))
        reading = {"reference": "reference", "teacher_vg": "baseline"}.get(r) or agreement_reading(a)
        label = labels.get(r, r)
        rep.md.append(f"| {label} | {recipe} | {a['cc']:.3f} ± {a['cc_ci95']:.3f} "
                      f"| {a['share']:.3f} ± {a['share_ci95']:.3f} | {a['top1']:.3f} | {reading} |")
    rep.md.append("")
    rep.done("agreement")
    rep.summary["agreement"] = res
