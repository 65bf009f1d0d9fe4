"""``write_report``: every section in order, then ``report.md``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from digr.evaluation.report.agreement import agreement_section
from digr.evaluation.report.base import Report, header
from digr.evaluation.report.config import SECTIONS, ReportConfig, check_config
from digr.evaluation.report.figures import gif_section, panels_section
from digr.evaluation.report.folder import REPORT_NAME, load_pipeline
from digr.evaluation.report.performance import performance_section
from digr.evaluation.report.robustness import robustness_section
from digr.evaluation.report.table1 import table1_section
from digr.evaluation.report.timing import timing_section
from digr.io import atomic_write_text

SECTION_WRITERS: dict[str, Callable[[Report], None]] = {
    "agreement": agreement_section, "table1": table1_section, "timing": timing_section,
    "performance": performance_section, "robustness": robustness_section, "panels": panels_section,
    "gif": gif_section,
}


def write_report(directory: str | Path, config: ReportConfig | None = None, *,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure what is missing and write ``DIR/report.md`` (+ ``table1.md``, ``figures/``, ``eval/``).

    Sections are written in the order of :data:`SECTIONS` (those in ``config.sections``). Returns a
    summary: ``report`` (path), ``sections`` (``written`` / ``skipped: why``), ``cached`` and
    ``computed`` (cache entry names), the headline numbers and the ``config``.
    """
    cfg = config or ReportConfig()
    check_config(cfg)
    rep = Report(load_pipeline(directory), cfg, log or (lambda msg: None))
    header(rep)
    for name in SECTIONS:
        if name in cfg.sections:
            SECTION_WRITERS[name](rep)
    rep.pipe.dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(rep.pipe.dir / REPORT_NAME, "\n".join(rep.md).rstrip() + "\n")
    rep.summary["cached"] = rep.cache.hits
    rep.summary["computed"] = rep.cache.computed
    rep.summary["config"] = json.loads(json.dumps(asdict(cfg)))
    return rep.summary
