"""Section: task performance kept by the students, with the chance level."""

from __future__ import annotations

from typing import Any

from digr.evaluation.report.base import Report, cmd_block
from digr.evaluation.report.metrics import metrics_path, performance_kept


def chance_row(rep: Report) -> dict[str, Any]:
    """The task's performance under uniformly random actions (cached), the report's chance level."""
    cfg = rep.cfg

    def chance() -> dict[str, Any]:
        from digr.evaluation.performance import evaluate_policy, uniform_policy

        return evaluate_policy(uniform_policy(rep.net("teacher").config), rep.spec.name, episodes=cfg.episodes,
                               seed=cfg.seed, deterministic=False)

    if getattr(rep, "chance_row", None) is None:  # one cache entry per report, however many sections read it
        rep.chance_row = rep.cache("performance-chance",
                                   {"task": rep.spec.name, "episodes": cfg.episodes, "seed": cfg.seed}, chance)
    return rep.chance_row


def performance_reading(rep: Report, role: str, value: float, teacher: float) -> str:
    """The table's verdict on one row: the teacher against the task's bar
    (:attr:`digr.envs.TaskSpec.teacher_bar`), a student against the teacher."""
    if role.startswith("uniform random"):
        return "chance level"
    if role == "teacher":
        bar = rep.spec.teacher_bar
        if bar is None:
            return "no bar stated for this task"
        return f"meets the task's bar ({bar:g})" if value >= bar else \
            f"**weak teacher**: below the task's bar ({bar:g}); the students inherit it"
    if rep.metric == "success_rate":
        return f"{value - teacher:+.3f} vs the teacher"
    return f"{value / teacher:.0%} of the teacher" if teacher > 0 else "—"


def performance_section(rep: Report) -> None:
    from digr import figures
    from digr.evaluation.table1 import display_path

    cfg, pipe, metric = rep.cfg, rep.pipe, rep.metric
    rep.md += ["## Task performance kept (paper Figure 9)", ""]
    perf = performance_kept(pipe.teacher, pipe.digr, pipe.distill_only, task=rep.spec.name,
                            episodes=cfg.episodes, seed=cfg.seed, cache=rep.cache,
                            extra=[(st.label, st.policy) for st in pipe.students])
    cmds = [rep.command("evaluate", "performance", "--policy", rep.paths[r], "--task", rep.spec.name,
                        "--episodes", str(cfg.episodes), "--seed", str(cfg.seed), "--json")
            for r in perf["policies"]]
    rows = {**perf["policies"], "uniform random actions (chance)": chance_row(rep)}
    rep.md += [f"Greedy actions, episode k resets with seed {cfg.seed}+k; the last row is the chance level "
               "(actions drawn uniformly at random):", "", *cmd_block(cmds),
               "| Policy | success_rate | mean_return | std_return | mean_length | episodes | reading |",
               "|---|---:|---:|---:|---:|---:|---|"]
    teacher = perf["policies"]["teacher"][metric]
    for r, v in rows.items():
        sr = "—" if v["success_rate"] is None else f"{v['success_rate']:.3f}"
        rep.md.append(f"| {r} | {sr} | {v['mean_return']:.3f} | {v['std_return']:.3f} "
                      f"| {v['mean_length']:.1f} | {v['episodes']} | {performance_reading(rep, r, v[metric], teacher)} |")
    step_key = "step" if metric == "success_rate" else "step_return"
    curves = {r: (c[step_key], c[metric]) for r, c in perf["curves"].items()}
    rep.md.append("")
    if any(len(steps) for steps, _ in curves.values()):
        figures.performance_chart(curves, perf["policies"]["teacher"][metric], rep.figdir / "performance.png",
                                  metric=metric, chance=chance_row(rep)[metric])
        logs = ", ".join(f"`{display_path(metrics_path(pipe.run_dir(r)))}`" for r in curves if curves[r][0])
        rep.md += [f"Students' `eval/{metric}` over training, read from {logs} (written by `digr distill` "
                   f"during training, with its own evaluation episodes); the dotted line is the teacher's "
                   f"{metric} from the table above.", "", "![performance](figures/performance.png)", ""]
    else:
        rep.md += ["*No training curve: the students' metrics logs have no evaluated rows.*", ""]
    rep.done("performance")
    rep.summary["performance"] = {r: v[metric] for r, v in perf["policies"].items()}
