"""Evaluation: task performance, the saliency benchmark, timing, robustness, report."""
