"""``digr report DIR``: the paper's evidence for one pipeline run, as Markdown with figures.

The pipeline folder layout is :data:`PIPELINE_LAYOUT`. :func:`write_report` measures whatever is
not cached yet -- Table 1 (section 4.4), ms per map (Figure 1b), task performance and the DIGR
student's training curve (Figure 9), robustness curves (Figure 8, when
:mod:`digr.evaluation.robustness` is importable), saliency panels (Figure 3) and a GIF of one
episode with the DIGR student's saliency overlaid -- and writes ``DIR/report.md``.

Every measurement is cached as one JSON file in ``DIR/eval/`` holding the key it was computed for
(checkpoint weight digests, sizes, seeds, device); a rerun with the same key reuses it, a changed
checkpoint or option recomputes only what it affects. Every number in ``report.md`` sits under the
``digr ...`` command that prints it.

The package: :mod:`.folder` (the pipeline folder), :mod:`.cache`, :mod:`.metrics`, :mod:`.config`,
:mod:`.base` (the report being written), one module per section (:mod:`.agreement`, :mod:`.table1`,
:mod:`.timing`, :mod:`.performance`, :mod:`.robustness`, :mod:`.figures`) with one signature
``section(rep) -> None``, and :mod:`.writer`.
"""

from digr.evaluation.report.agreement import agreement_reading, student_recipe
from digr.evaluation.report.base import episode_frames
from digr.evaluation.report.cache import JsonCache
from digr.evaluation.report.config import SECTIONS, ReportConfig, report_command
from digr.evaluation.report.folder import (
    EVAL_DIR,
    FIGURES_DIR,
    PIPELINE_JSON,
    PIPELINE_LAYOUT,
    REPORT_NAME,
    ROLE_DIRS,
    ROLES,
    Pipeline,
    load_pipeline,
)
from digr.evaluation.report.metrics import performance_kept, read_metrics, training_curve
from digr.evaluation.report.writer import write_report

__all__ = ["agreement_reading", "student_recipe", "episode_frames", "PIPELINE_LAYOUT", "PIPELINE_JSON", "ROLES", "ROLE_DIRS", "EVAL_DIR", "FIGURES_DIR", "REPORT_NAME",
           "SECTIONS", "JsonCache", "Pipeline", "ReportConfig", "load_pipeline", "performance_kept",
           "read_metrics", "training_curve", "write_report", "report_command"]

