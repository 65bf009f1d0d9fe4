"""The figure package: one state_image for both layouts, overlays, panels with a colour bar."""

import numpy as np
import pytest

from digr.errors import DigrError
from digr.figures import overlay, render_panel, rgb_image, save_panel, state_image


def test_state_image_reads_both_layouts_the_same():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(5, 7, 6), dtype=np.uint8)  # env layout: (H, W, C), two RGB frames
    chw = raw.transpose(2, 0, 1).astype(np.float32) / 255.0  # the policy's layout
    a, b = state_image(chw), state_image(raw, channels_last=True)
    assert a.shape == (5, 7, 3)
    np.testing.assert_allclose(a, b, atol=1e-7)
    np.testing.assert_allclose(a, raw[..., 3:] / 255.0, atol=1e-7)  # the newest RGB frame


def test_grey_stacks_show_the_newest_frame():
    raw = np.stack([np.zeros((4, 4)), np.full((4, 4), 255)], -1).astype(np.uint8)  # (H, W, 2 frames)
    grey = state_image(raw, channels_last=True)
    assert grey.shape == (4, 4) and np.all(grey == 1.0)
    assert rgb_image(raw, channels_last=True).shape == (4, 4, 3)
    assert state_image(np.full((4, 4), 255, np.uint8), channels_last=True).shape == (4, 4)
    with pytest.raises(DigrError, match="must be"):
        state_image(np.zeros((4, 4), np.float32))


def test_overlay_leaves_unsalient_pixels_alone():
    frame = np.full((3, 3, 1), 128, np.uint8)
    sal = np.zeros((3, 3))
    sal[1, 1] = 1.0
    out = overlay(frame, sal, scale=2)
    assert out.shape == (6, 6, 3) and out.dtype == np.uint8
    assert np.all(out[0, 0] == 128) and not np.all(out[2, 2] == 128)


def test_panel_has_a_colour_bar_and_is_written(tmp_path):
    states = np.random.default_rng(1).random((2, 3, 8, 8), dtype=np.float32)
    maps = {"vanilla": np.random.default_rng(2).random((2, 8, 8)), "perturbation": np.zeros((2, 8, 8))}
    fig = render_panel(states, maps)
    assert len(fig.axes) == 2 * 3 + 1  # 2 rows x (state + 2 maps) + the colour bar
    assert fig.axes[-1].get_ylabel() == "saliency"
    path = save_panel(tmp_path / "p.png", states, maps)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(DigrError, match="expected"):
        render_panel(states, {"vanilla": np.zeros((2, 4, 4))})


def test_charts_start_at_zero_and_draw_the_chance_level(tmp_path, monkeypatch):
    from digr.figures import charts

    saved = []
    monkeypatch.setattr(charts, "save_figure", lambda fig, path: saved.append(fig) or path)
    rows = lambda ys: [{"attack": a, "eps_255": e, "success_rate": y, "episodes": 10}  # noqa: E731
                       for a in ("pgd", "mad") for e, y in zip((0, 4, 8), ys)]
    charts.robustness_chart({"teacher": rows((0.9, 0.6, 0.4)), "digr": rows((1.0, 0.9, 0.8))},
                            tmp_path / "r.png", chance=0.28)
    fig = saved.pop()
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["PGD", "MAD"]
    assert all(ax.get_ylim() == (0.0, 1.05) for ax in panels)  # one shared axis from 0
    assert all(any(list(line.get_ydata()) == [0.28, 0.28] for line in ax.get_lines()) for ax in panels)
    assert fig.legends and not any(ax.get_legend() for ax in panels)  # below the panels, not on a curve
    charts.performance_chart({"digr": ([2000], [0.9])}, 1.0, tmp_path / "p.png", chance=0.3)
    ax = saved.pop().axes[0]
    assert ax.get_ylim() == (0.0, 1.05)
    assert "chance (random actions)" in [t.get_text() for t in ax.get_legend().get_texts()]
