"""The progress bar keeps its counts and times whole on an 80-column terminal."""

import io

from rich.console import Console

from digr.progress import progress_bar


def _render(width: int) -> str:
    bar = progress_bar("distill", total=6000, console=Console(file=io.StringIO(), width=width, color_system=None))
    bar.add_task("distill", total=6000, completed=3450, info="kl 0.0178 agree 0.96 igr 0.51 " * 3)
    bar.console.print(bar.get_renderable())
    return bar.console.file.getvalue()


def test_fixed_columns_are_never_cut_at_80_columns():
    line = _render(80).splitlines()[0]
    assert "distill" in line and "3,450/6,000" in line and "0:00:00" in line and "-:--:--" in line
    assert line.rstrip().endswith("…") and len(line.rstrip()) <= 80  # only the free text is cut


def test_wide_terminal_shows_the_whole_info():
    assert "igr 0.51 kl 0.0178 agree 0.96 igr 0.51" in _render(200)
