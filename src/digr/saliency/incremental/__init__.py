"""Incremental inference for Gaussian-blur perturbation saliency on a :class:`~digr.models.PolicyNet`.

A perturbed state differs from the clean one only by ``M_ij * (blur(s) - s)`` (Greydanus et al.
eq. 1). With the window ``M_ij`` truncated (``truncate``, see
:func:`digr.saliency.perturbation.window_half_width`) that difference is zero outside a square
around ``(i, j)``, and each conv layer's output can change only inside a window that follows from
the layer geometry (kernel, stride, padding): the outputs whose receptive field meets the previous
layer's changed window (:func:`exact_intervals`). So instead of running the whole network on every
perturbed state, this module

1. runs the clean state once and keeps every conv layer's activations;
2. first conv layer, by linearity: its changed window is the clean pre-activation plus
   ``conv(M * (blur(s) - s))`` (no bias) on the slice of the input that window reads;
3. every later conv layer: recomputes only its changed window, from the slice of the previous
   layer's clean activations that the window reads, with the previous layer's recomputed window
   pasted in;
4. head: the flatten head is linear in the last conv activations, so
   ``pre = pre(s) + W[:, band] (a' - a)[band]`` over the band of last-layer rows the window
   covers (the whole input where a band would not save much, :data:`BAND_MAX_FRACTION`); the
   global max pool pastes the window into the clean activations and pools them all. Then ReLU and
   the policy layer.

Every number computed is the one a full forward of the perturbed state computes, up to float
summation order: outputs outside a window are exactly the clean ones, because nothing they read
changed. Only the arithmetic outside the windows is skipped.

Batching: a convolution needs one window size per batch, but windows shrink near the image borders.
So, layer by layer, the windows are bucketed by size: each axis' exact sizes are rounded up to a
few classes (:func:`size_classes`, merging while the padded arithmetic costs less than one more
conv call), windows of a bucket go through one conv call, and the layers are decoupled (a window
of layer ``l`` is pasted into layer ``l + 1``'s slices whatever bucket either falls in). A window
padded up to its class size is shifted back inside the layer if it sticks out (the extra positions
are recomputed clean values); positions of a pasted window that the next slice does not read go to
a scratch row and are dropped.

Only the plain Conv2d/ReLU stack of :class:`~digr.models.PolicyNet` qualifies
(:func:`conv_stack`); anything else -- other modules, hooks, dilated or grouped convs -- is
computed by the batched full forward in :mod:`digr.saliency.perturbation`.
"""

from digr.saliency.incremental.engine import Incremental
from digr.saliency.incremental.geometry import (
                                                BAND_MAX_FRACTION,
                                                BUCKET_OVERHEAD_MACS,
                                                CHUNK_FLOATS,
                                                MIN_GAIN,
                                                ConvGeom,
                                                conv_stack,
                                                exact_intervals,
                                                size_classes,
)
from digr.saliency.incremental.plan import Chunk, LayerIndex, Plan, build_plan, plan_for

__all__ = ["ConvGeom", "conv_stack", "exact_intervals", "size_classes", "LayerIndex", "Chunk", "Plan",
           "build_plan", "plan_for", "Incremental", "BUCKET_OVERHEAD_MACS", "BAND_MAX_FRACTION", "MIN_GAIN",
           "CHUNK_FLOATS"]
