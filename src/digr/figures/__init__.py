"""Every figure digr draws: the report's charts (:mod:`~digr.figures.charts`), saliency panels
(:mod:`~digr.figures.panels`, paper Figures 3 and 10), the real-time lag figure
(:mod:`~digr.figures.lag`, Figure 6) and what they share (:mod:`~digr.figures.common`).

Plots use matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), so
they work headless and never open a window. Every file is written to a temporary name and renamed
into place.
"""

from digr.figures.charts import performance_chart, robustness_chart, timing_chart
from digr.figures.common import (
                                 POLICY_STYLES,
                                 add_colorbar,
                                 overlay,
                                 policy_styles,
                                 rgb_image,
                                 state_image,
                                 write_gif,
)
from digr.figures.panels import TITLES, render_panel, save_panel, save_panels

__all__ = ["timing_chart", "robustness_chart", "performance_chart", "render_panel", "save_panel", "save_panels",
           "overlay", "write_gif", "state_image", "rgb_image", "add_colorbar", "policy_styles", "POLICY_STYLES",
           "TITLES"]
