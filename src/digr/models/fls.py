"""Free-Lunch Saliency (FLS; Nikulin et al. 2019, arXiv 1908.02511): an attention module whose map
is the saliency.

The module sits after the trunk's last convolution (features ``F: (B, C, h, w)``)::

    A = softplus(conv_kxk(ReLU(conv_kxk(F; C -> 256)); 256 -> 1))     # (B, 1, h, w), > 0
    F' = F * A                                                          # broadcast over channels

and ``F'`` goes on to the usual head, either flattened ("sparse FLS") or summed over positions
("sparse FLS with sum-pooling"). Both convolutions use ``k = 3`` and "same" padding, as the FLS
code does (``fls_module(filter_size=3)``). Because ``A`` gates every position's features, ``A``
itself shows where the network reads, at no extra cost: :mod:`digr.saliency.fls` un-pools it
to the input size.

Variants made by :func:`fls_config` from a base :class:`~digr.models.PolicyConfig`:

``sparse``
    the base conv stack + FLS + flatten (FLS paper: "sparse FLS" on the Nature-CNN).
``sparse-sum``
    the base conv stack + FLS + spatial sum-pooling. On Red-Fetch-Green (stride-8 first layer:
    one feature cell per 8x8 tile, then stride 1) this is the natural FLS network: attention on
    the 8x8 tile grid and a position-free head, like the plain network's global max-pool.
``dense``
    a stride-1 trunk with "same" padding that keeps the input resolution, then FLS and
    sum-pooling. The paper's dense block is three convs with kernels 7, 5, 3 (receptive field
    13 px) and the Nature-CNN widths 32, 64, 64, followed by the 256-channel FLS module at full
    resolution: 1.7 GMAC per 2x84x84 observation (the Nature-CNN: 6.1 MMAC) and 1.0 GMAC per
    3x64x64 one (the Red-Fetch-Green network: 4.2 MMAC). Full-resolution convolutions are also
    slow per MAC on CPU (little work per memory access): in one run on the 2-core dev machine
    (one thread, network forward/backward of a PPO rollout + update at Table 2 sizes, per env
    step) the Red-Fetch-Green dense network with widths 4/8/8 and FLS 8 took 55x the plain
    network's time, and 87x with 8/16/16 and FLS 16, although the first has only 2.5x its
    MACs (sparse and sparse-sum: 4.2x and 4.0x). No full-resolution trunk is cheap here, so we
    keep the paper's kernels (its 13 px receptive field, which decides what the map can show)
    and the narrowest widths that still learn features: by default each conv gets a quarter of
    the base network's width (at least 4; :data:`DENSE_WIDTH_DIVISOR`) and the FLS module as many
    hidden channels as the last conv (Red-Fetch-Green: 4/8/8 + FLS 8, 10.7 MMAC; Breakout:
    8/16/16 + FLS 16, 61.6 MMAC). Even so it is a GPU network, not a CPU one.
    ``fls_config(base, "dense", dense_widths=(32, 64, 64), attention_channels=256)`` is the
    paper's exact network. Note that a 13 px receptive field followed by a position-free sum
    cannot relate two objects more than ~13 px apart (Red-Fetch-Green's agent and target).

Parameter counts (computed with :func:`count_parameters`; checked by ``tests/models/test_fls.py``)::

    network (4 actions)                          plain     sparse  sparse-sum  dense
    Breakout, Nature-CNN 2x84x84, hidden 512   1,682,597  1,832,614  259,750     20,062
    Red-Fetch-Green 3x64x64, hidden 256           75,861    668,246  152,150      6,230

("plain" is the base network as trained before FLS; Red-Fetch-Green's plain network max-pools,
so its head is small and flattening makes ``sparse`` large. ``dense`` uses the default widths
above; the paper's exact dense network on Breakout has 277,222.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn

from digr.errors import DigrError
from digr.models.activation import activate

if TYPE_CHECKING:  # cnn.py imports this module; the config type is only needed for hints
    from digr.models.cnn import PolicyConfig

ATTENTIONS = ("fls",)
"""Values of ``PolicyConfig.attention`` besides ``None``."""
ATTENTION_CHANNELS = 256
"""Hidden channels of the FLS module (FLS paper: 256)."""
ATTENTION_KERNEL = 3
"""Kernel size of both FLS convolutions (FLS paper: 3, "same" padding)."""
VARIANTS = ("sparse", "sparse-sum", "dense")
"""Names accepted by :func:`fls_config` (and ``digr train --fls``)."""
DENSE_KERNELS = (7, 5, 3)
"""Kernels of the dense trunk's three stride-1 convs (FLS paper's dense block; receptive field 13)."""
DENSE_WIDTH_DIVISOR = 4
"""The dense trunk's default widths are the base network's divided by this (at least 4), and its
FLS module is as wide as its last conv (module docstring: full resolution is slow on CPU)."""


class FLSAttention(nn.Module):
    """The FLS attention module: ``(B, C, h, w)`` features -> ``(B, 1, h, w)`` map ``> 0``.

    ``conv(C -> channels, k x k, same) -> ReLU -> conv(channels -> 1, k x k, same) -> softplus``.
    With ``softplus_beta > 0`` the hidden ReLU is ``softplus(beta z) / beta``, as in the rest of
    the network (:attr:`digr.models.cnn.PolicyConfig.softplus_beta`), so a smooth twin of an FLS
    policy has no ReLU left. The output softplus (beta 1) is the FLS paper's gate, not a hidden unit.
    Softplus keeps the gate positive and unbounded, so the network can amplify as well as mute
    positions (FLS paper, section 3).
    """

    def __init__(self, in_channels: int, *, channels: int = ATTENTION_CHANNELS,
                 kernel: int = ATTENTION_KERNEL, softplus_beta: float = 0.0) -> None:
        super().__init__()
        self.softplus_beta = float(softplus_beta)
        pad = kernel // 2  # "same" for the odd kernels PolicyConfig.validate allows
        self.hidden = nn.Conv2d(in_channels, channels, kernel, padding=pad)
        self.score = nn.Conv2d(channels, 1, kernel, padding=pad)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.score(activate(self.hidden(features), self.softplus_beta)))


@dataclass(frozen=True)
class ConvGeometry:
    """Where a feature cell of a conv stack looks in the input (one axis; kernels are square).

    Cell ``i`` of the last layer reads input pixels ``[i * stride - padding,
    i * stride - padding + receptive_field)`` (indices outside the image are padding).
    """

    receptive_field: int
    """Width of the input window of one cell, in pixels."""
    stride: int
    """Input pixels between neighbouring cells (product of the strides)."""
    padding: int
    """Input pixels before pixel 0 that cell 0's window starts at (accumulated padding)."""


def conv_geometry(convs: Sequence[Sequence[int]]) -> ConvGeometry:
    """Receptive field, total stride and offset of ``convs`` (``(out, kernel, stride, pad)`` each).

    Layer by layer: ``rf += (k - 1) * jump``, ``pad += p * jump``, ``jump *= s`` (jump = the
    input distance between neighbouring cells of the layer below).
    """
    rf, jump, pad = 1, 1, 0
    for _, k, s, p in convs:
        rf += (int(k) - 1) * jump
        pad += int(p) * jump
        jump *= int(s)
    return ConvGeometry(receptive_field=rf, stride=jump, padding=pad)


def fls_config(base: "PolicyConfig", variant: str, *, attention_channels: int | None = None,
               attention_kernel: int = ATTENTION_KERNEL,
               dense_widths: Sequence[int] | None = None) -> "PolicyConfig":
    """The FLS ``variant`` (``sparse``, ``sparse-sum`` or ``dense``) of the plain network ``base``.

    ``sparse`` and ``sparse-sum`` keep ``base``'s conv stack and replace its pooling by flatten
    and sum, with a 256-channel FLS module unless ``attention_channels`` says otherwise.
    ``dense`` replaces the stack by three stride-1 "same" convs with :data:`DENSE_KERNELS` and
    ``dense_widths`` (default: ``base``'s three widths // :data:`DENSE_WIDTH_DIVISOR`, at least
    4), an FLS module as wide as the last of them (default), and sum-pooling (module docstring).
    ``obs_shape``, ``n_actions`` and ``hidden`` are kept.
    """
    if variant not in VARIANTS:
        raise DigrError(f"unknown FLS variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    if base.attention is not None:
        raise DigrError(f"the base network already has attention {base.attention!r}; "
                        "give fls_config the plain network")
    convs = tuple(tuple(c) for c in base.convs)
    if variant == "dense":
        if dense_widths is None:
            if len(convs) != len(DENSE_KERNELS):
                raise DigrError(f"the dense FLS trunk has {len(DENSE_KERNELS)} convs but the base network "
                                f"has {len(convs)}; pass dense_widths")
            dense_widths = [max(4, c[0] // DENSE_WIDTH_DIVISOR) for c in convs]
        widths = [int(w) for w in dense_widths]
        if len(widths) != len(DENSE_KERNELS) or min(widths) < 1:
            raise DigrError(f"dense_widths must be {len(DENSE_KERNELS)} positive ints, "
                            f"got {list(dense_widths)}")
        convs = tuple((w, k, 1, k // 2) for w, k in zip(widths, DENSE_KERNELS))
        if attention_channels is None:
            attention_channels = widths[-1]
    elif dense_widths is not None:
        raise DigrError("dense_widths applies to the dense variant only")
    if attention_channels is None:
        attention_channels = ATTENTION_CHANNELS
    cfg = replace(base, convs=convs, pool="flatten" if variant == "sparse" else "sum", attention="fls",
                  attention_channels=int(attention_channels), attention_kernel=int(attention_kernel))
    return cfg.validate()


def fls_variant(config: "PolicyConfig") -> str | None:
    """Which :data:`VARIANTS` name describes ``config`` (``None`` without attention).

    Stride-1 stacks that keep the resolution are ``dense``; others are ``sparse`` (flatten) or
    ``sparse-sum`` (sum).
    """
    if config.attention is None:
        return None
    geo = conv_geometry(config.convs)
    keeps_size = geo.stride == 1 and all(2 * p == k - 1 for _, k, _, p in config.convs)
    if keeps_size and config.pool == "sum":
        return "dense"
    return "sparse" if config.pool == "flatten" else "sparse-sum"


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def attention_macs(config: "PolicyConfig") -> int:
    """Multiply-accumulates of one observation's conv stack + FLS module (the costly part).

    Used to document the dense variant's cost; the linear head is ignored (it is small).
    """
    c, h, w = config.obs_shape
    total = 0
    for c_out, k, s, p in config.convs:
        h = (h + 2 * p - k) // s + 1
        w = (w + 2 * p - k) // s + 1
        total += c * c_out * k * k * h * w
        c = c_out
    if config.attention is not None:
        k = config.attention_kernel
        total += (c * config.attention_channels + config.attention_channels) * k * k * h * w
    return int(total)


__all__ = ["FLSAttention", "ConvGeometry", "conv_geometry", "fls_config", "fls_variant",
           "count_parameters", "attention_macs", "VARIANTS", "ATTENTIONS", "ATTENTION_CHANNELS",
           "ATTENTION_KERNEL", "DENSE_KERNELS", "DENSE_WIDTH_DIVISOR"]
