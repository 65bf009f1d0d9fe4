"""Spike maps (one bright pixel) are ringed and labelled in the panels instead of vanishing."""

import numpy as np

from digr.figures.panels import render_panel, top1_share


def test_top1_share():
    spike = np.zeros((20, 20)); spike[3, 4] = 1.0
    assert top1_share(spike) == 1.0
    assert top1_share(np.ones((20, 20))) == 4 / 400
    assert top1_share(np.zeros((5, 5))) == 0.0


def test_a_spike_is_ringed_and_labelled_a_blob_is_not():
    states = np.zeros((1, 3, 20, 20), dtype=np.float32)
    spike = np.zeros((1, 20, 20), dtype=np.float32); spike[0, 3, 4] = 1.0
    blob = np.ones((1, 20, 20), dtype=np.float32)
    fig = render_panel(states, {"a": spike, "b": blob})
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    rings = [p for ax in fig.axes for p in ax.patches]
    assert texts == ["spike: top 1% = 100%"] and len(rings) == 1
