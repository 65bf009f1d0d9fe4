"""The one rich progress bar every long command shows.

Fixed-width columns first (label, bar, count, elapsed, remaining) and the free-text ``info`` last,
cut with an ellipsis: on an 80-column terminal rich would otherwise squeeze every column, and the
times came out as ``0:0…``."""

from __future__ import annotations


def progress_bar(label: str, *, total: int, unit: str = "", console=None):
    """A started-on-demand :class:`rich.progress.Progress`; its task takes ``completed`` and an
    ``info`` field (``bar.add_task(label, total=..., completed=..., info="")``); ``console``: rich's
    (None: stderr's)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.table import Column

    def fixed(width: int) -> Column:
        return Column(no_wrap=True, min_width=width)

    count = f"{total:,}/{total:,}" + (f" {unit}" if unit else "")
    return Progress(
        TextColumn(f"[bold]{label}", table_column=fixed(len(label))),
        BarColumn(bar_width=16, table_column=fixed(16)),
        TextColumn("{task.completed:,}/{task.total:,}" + (f" {unit}" if unit else ""), table_column=fixed(len(count))),
        TimeElapsedColumn(table_column=fixed(7)),
        TimeRemainingColumn(table_column=fixed(7)),
        TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
        expand=True, console=console,
    )


__all__ = ["progress_bar"]
