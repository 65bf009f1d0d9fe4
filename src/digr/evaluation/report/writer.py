"""``write_report``: every section in order, then ``report.md``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from digr.evaluation.report.agreement import _agreement
from digr.evaluation.report.base import _header, _Report
from digr.evaluation.report.config import SECTIONS, ReportConfig, _check_config
from digr.evaluation.report.figures import _gif, _panels
from digr.evaluation.report.folder import REPORT_NAME, load_pipeline
from digr.evaluation.report.performance import _performance
from digr.evaluation.report.robustness import _robustness
from digr.evaluation.report.table1 import _table1
from digr.evaluation.report.timing import _timing
from digr.io import atomic_write_text

SECTION_WRITERS: dict[str, Callable[[_Report], None]] = {
    "agreement": _agreement, "table1": _table1, "timing": _timing, "performance": _performance, "robustness": _robustness,
    "panels": _panels, "gif": _gif,
}


def write_report(directory: str | Path, config: ReportConfig | None = None, *,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure what is missing and write ``DIR/report.md`` (+ ``table1.md``, ``figures/``, ``eval/``).

    Sections are written in the order of :data:`SECTIONS` (those in ``config.sections``). Returns a
    summary: ``report`` (path), ``sections`` (``written`` / ``skipped: why``), ``cached`` and
    ``computed`` (cache entry names), the headline numbers and the ``config``.
    """
    cfg = config or ReportConfig()
    _check_config(cfg)
    rep = _Report(load_pipeline(directory), cfg, log or (lambda msg: None))
    _header(rep)
    for name in SECTIONS:
        if name in cfg.sections:
            SECTION_WRITERS[name](rep)
    rep.pipe.dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(rep.pipe.dir / REPORT_NAME, "\n".join(rep.md).rstrip() + "\n")
    rep.summary["cached"] = rep.cache.hits
    rep.summary["computed"] = rep.cache.computed
    rep.summary["config"] = json.loads(json.dumps(asdict(cfg)))
    return rep.summary
