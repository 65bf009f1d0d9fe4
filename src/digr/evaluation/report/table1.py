"""Section: saliency quality on ground-truth masks (paper Table 1)."""

from __future__ import annotations

from pathlib import Path

from digr.evaluation.report.agreement import agreement_reading
from digr.evaluation.report.base import Report
from digr.evaluation.report.folder import TABLE1_NAME


def _table1_notes(rep: Report, rows) -> dict[str, str]:
    """Flags for Table 1's vanilla-gradient rows of students whose map agreement (measured by the
    agreement section of this report, when written) shows a spike or misses the goal: a high AUC
    on masks can come from a few bright pixels."""
    agreement = rep.summary.get("agreement") or {}
    by_policy = {Path(p).resolve(): r for r, p in rep.roles.items()}
    notes = {}
    for row in rows:
        role = by_policy.get(Path(row.spec.policy).resolve())
        a = agreement.get(role) if role not in (None, "teacher") else None
        if a is not None and row.spec.method == "vanilla":
            notes[row.spec.label] = (f"{agreement_reading(a)}: map agreement cc {a['cc']:.2f}, "
                                     f"share {a['share']:.2f}, top1 {a['top1']:.2f}")
    return notes


def table1_section(rep: Report) -> None:
    from digr.evaluation.saliency_benchmark import masked_tasks
    from digr.evaluation.table1 import render_table1, table1_rows, write_table1

    cfg, pipe = rep.cfg, rep.pipe
    rep.md += ["## Saliency quality on ground-truth masks (paper Table 1)", ""]
    if not rep.spec.has_masks:
        rep.skip("table1", f"only {', '.join(masked_tasks())} has ground-truth masks")
        return
    from digr.evaluation.table1 import RowSpec

    extra = [RowSpec(r.label, r.policy, r.method, None, dict(r.settings)) for r in pipe.extra]
    rows = table1_rows(pipe.teacher, pipe.digr, pipe.distill_only, states=cfg.states, seed=cfg.seed,
                       batch_size=cfg.batch_size, settings=cfg.settings, device=cfg.device,
                       threads=cfg.threads, cache=rep.cache, extra_rows=extra)
    write_table1(rows, pipe.dir / TABLE1_NAME)
    rep.md += [render_table1(rows, title=None, notes=_table1_notes(rep, rows))]
    rep.done("table1")
    rep.summary["table1"] = {r.spec.label: {k: r.result[k] for k in ("important", "unimportant", "auc")}
                             for r in rows}
