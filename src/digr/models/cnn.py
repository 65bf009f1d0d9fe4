"""The paper's policy network: 3 convolutional layers and 2 linear layers (section 4.1), optionally
with a Free-Lunch Saliency attention module after the last conv (:mod:`digr.models.fls`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from digr.models.activation import activate, activation_module
from digr.models.fls import ATTENTION_CHANNELS, ATTENTION_KERNEL, ATTENTIONS, FLSAttention

POOLS = ("flatten", "max", "sum")
"""Values of :attr:`PolicyConfig.pool`."""
_ATTENTION_DEFAULTS = {"attention": None, "attention_channels": ATTENTION_CHANNELS,
                       "attention_kernel": ATTENTION_KERNEL}


@dataclass(frozen=True)
class PolicyConfig:
    """Architecture of a :class:`PolicyNet`; stored verbatim in every checkpoint."""

    obs_shape: tuple[int, int, int]
    """Input shape ``(C, H, W)``."""
    n_actions: int
    """Number of discrete actions."""
    convs: tuple[tuple[int, int, int, int], ...]
    """Conv layers as ``(out_channels, kernel, stride, padding)``, each followed by ReLU (or the
    softplus of :attr:`softplus_beta`)."""
    hidden: int
    """Width of the first linear layer (followed by ReLU)."""
    pool: str = "flatten"
    """How the last conv's ``(C, h, w)`` output reaches the linear layer: ``flatten`` (the usual
    Nature-CNN head), ``max`` (global max over positions, parameter-free) or ``sum`` (sum over
    positions; with FLS attention this is the FLS paper's sum-pooling, an attention-weighted sum
    of the feature vectors). ``max`` makes the head translation-invariant, which is what lets PPO
    learn the full-room Red-Fetch-Green view quickly: the convolutions compute "what is where
    relative to me" at the agent's tile and the pool reads it wherever the agent stands, as the
    egocentric view does."""
    attention: str | None = None
    """Attention module between the last conv and the pooling: ``None`` or ``"fls"`` (Free-Lunch
    Saliency, :mod:`digr.models.fls`: the features are multiplied by a ``(1, h, w)`` map)."""
    attention_channels: int = ATTENTION_CHANNELS
    """Hidden channels of the FLS module (FLS paper: 256). Unused without attention."""
    attention_kernel: int = ATTENTION_KERNEL
    """Kernel size of both FLS convolutions, odd, "same" padding (FLS paper: 3). Unused without
    attention."""
    input_pool: int = 1
    """Average the input over ``input_pool x input_pool`` blocks before the first conv (1: no
    pooling). The network then sees the frame at ``1/input_pool`` resolution, and its input
    gradient is constant on each block (see :func:`pooled_student_config`)."""
    input_blur: float = 0.0
    """Standard deviation in pixels of a fixed Gaussian low-pass applied to the input before
    everything else (0: none). The network's input gradient is then the blur of the gradient
    behind it (the blur is symmetric), so its vanilla-gradient map varies smoothly at that scale
    -- the scale of a Gaussian-blur perturbation map. Parameter-free: the state-dict keys are those
    of the same network without it, so a teacher's weights load as they are (``--init``)."""
    softplus_beta: float = 0.0
    """0: every hidden unit is a ReLU (the paper's network, every teacher). > 0: every ReLU is
    replaced by the smooth ``softplus(beta z) / beta`` (:func:`activate`; ReLU as beta grows, at
    most ``ln 2 / beta`` above it). Parameter-free, so a ReLU network's weights load as they are.
    Why a student may want it: a ReLU's second derivative is zero, so a loss on the input gradient
    (eq. 4) moves the gradient map only through the weights' values, never by moving a unit's
    activation boundary; a smooth unit lets the double backward pass see both
    (results/recipe-ablation.md, session 18)."""

    def validate(self) -> PolicyConfig:
        """Return ``self``, or raise :class:`DigrError` for an unknown pool or attention setting."""
        from digr.errors import DigrError, check_softplus_beta

        if self.pool not in POOLS:
            raise DigrError(f"pool must be one of {', '.join(map(repr, POOLS))}, got {self.pool!r}")
        if self.attention is not None and self.attention not in ATTENTIONS:
            raise DigrError(f"attention must be None or one of {', '.join(map(repr, ATTENTIONS))}, "
                            f"got {self.attention!r}")
        if self.attention_channels < 1:
            raise DigrError(f"attention_channels must be >= 1, got {self.attention_channels}")
        if self.input_pool < 1 or self.obs_shape[1] % self.input_pool or self.obs_shape[2] % self.input_pool:
            raise DigrError(f"input_pool must be >= 1 and divide the input's height and width "
                            f"{self.obs_shape[1:]}, got {self.input_pool}")
        if not (isinstance(self.input_blur, (int, float)) and math.isfinite(self.input_blur)
                and 0 <= self.input_blur <= max(self.obs_shape[1:])):
            raise DigrError(f"input_blur must be a number of pixels in [0, {max(self.obs_shape[1:])}], "
                            f"got {self.input_blur!r}")
        check_softplus_beta("softplus_beta", self.softplus_beta)
        if self.attention_kernel < 1 or self.attention_kernel % 2 == 0:
            raise DigrError(f"attention_kernel must be odd and >= 1 (same padding), "
                            f"got {self.attention_kernel}")
        return self

    def to_dict(self) -> dict:
        """JSON-ready fields. A network without attention and with default attention settings
        writes exactly the keys it wrote before attention existed: run folders compare these dicts
        to decide whether a run may be resumed, and old runs must keep resuming."""
        d = asdict(self)
        if all(d[k] == v for k, v in _ATTENTION_DEFAULTS.items()):
            for k in _ATTENTION_DEFAULTS:
                del d[k]
        if d["input_pool"] == 1:  # likewise for networks without input pooling
            del d["input_pool"]
        if d["input_blur"] == 0:  # and without input blur
            del d["input_blur"]
        if d["softplus_beta"] == 0:  # and ReLU networks
            del d["softplus_beta"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PolicyConfig:
        """Inverse of :meth:`to_dict`; accepts configs written before ``pool`` and ``attention``.

        Read from files anyone may have written, so every size is checked (:meth:`check_sizes`)
        before a network is built from it: a wrong type, a negative or absurd size, a conv spec of
        the wrong length or a kernel larger than its input is one :class:`DigrError`.
        """
        from digr.errors import DigrError, check_int

        if not isinstance(d, dict):
            raise DigrError("policy config must be a JSON object")

        def ints(name: str, v: object, n: int | None = None) -> tuple[int, ...]:
            if not isinstance(v, (list, tuple)) or (n is not None and len(v) != n):
                raise DigrError(f"policy config: {name} must be a list" + (f" of {n} integers" if n else ""))
            return tuple(check_int(name, x, minimum=0) for x in v)

        attention = d.get("attention")
        blur = d.get("input_blur", 0.0)
        if isinstance(blur, bool) or not isinstance(blur, (int, float)):
            raise DigrError(f"policy config: input_blur must be a number, got {blur!r}")
        beta = d.get("softplus_beta", 0.0)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)):
            raise DigrError(f"policy config: softplus_beta must be a number, got {beta!r}")
        convs = d.get("convs")
        if not isinstance(convs, (list, tuple)) or not convs:
            raise DigrError("policy config: convs must be a non-empty list of [out, kernel, stride, padding]")
        cfg = cls(
            obs_shape=ints("obs_shape", d.get("obs_shape"), 3),
            n_actions=check_int("n_actions", d.get("n_actions")),
            convs=tuple(ints("convs entry", c, 4) for c in convs),
            hidden=check_int("hidden", d.get("hidden")),
            pool=str(d.get("pool", "flatten")),
            attention=None if attention is None else str(attention),
            attention_channels=check_int("attention_channels", d.get("attention_channels", ATTENTION_CHANNELS)),
            attention_kernel=check_int("attention_kernel", d.get("attention_kernel", ATTENTION_KERNEL)),
            input_pool=check_int("input_pool", d.get("input_pool", 1)),
            input_blur=float(blur),
            softplus_beta=float(beta),
        )
        return cfg.check_sizes().validate()

    MAX_SIZE = 4096
    """Largest channel count, width, frame side or action count a checkpoint may declare."""

    def check_sizes(self) -> PolicyConfig:
        """Return ``self``, or :class:`DigrError` if a size is out of range or a layer's kernel does
        not fit its input (checked layer by layer, without building anything)."""
        from digr.errors import DigrError, check_int

        top = self.MAX_SIZE
        for name, v in (("obs_shape", self.obs_shape), ("n_actions", (self.n_actions,)),
                        ("hidden", (self.hidden,)), ("attention_channels", (self.attention_channels,))):
            for x in v:
                check_int(name, x, maximum=top)
        h, w = self.obs_shape[1] // self.input_pool, self.obs_shape[2] // self.input_pool
        for i, (c, k, s, p) in enumerate(self.convs):
            check_int(f"conv {i} channels", c, maximum=top)
            check_int(f"conv {i} kernel", k, maximum=top)
            check_int(f"conv {i} stride", s, maximum=top)
            check_int(f"conv {i} padding", p, minimum=0, maximum=top)
            if k > h + 2 * p or k > w + 2 * p:
                raise DigrError(f"policy config: conv {i}'s kernel {k} is larger than its input {h}x{w} "
                                f"(padding {p})")
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        return self

    def feature_shape(self) -> tuple[int, int, int]:
        """``(C', h, w)``: the last conv layer's output for one input (the usual conv arithmetic).

        Computed, not probed with a dummy forward pass as SB3's NatureCNN does: such a probe on
        the meta device (:func:`digr.models.load_policy` checks shapes that way before allocating
        anything) loads torch's meta kernels, seconds of start-up for every command."""
        c = self.obs_shape[0]
        h, w = self.obs_shape[1] // self.input_pool, self.obs_shape[2] // self.input_pool
        for c, k, s, p in self.convs:
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        return c, h, w

    @classmethod
    def for_task(cls, spec) -> PolicyConfig:
        """The default architecture of a :class:`digr.envs.TaskSpec`."""
        return cls(obs_shape=spec.obs_shape, n_actions=spec.n_actions, convs=spec.convs,
                   hidden=spec.hidden, pool=spec.pool)


def pooled_student_config(base: PolicyConfig, input_pool: int) -> PolicyConfig:
    """``base`` seeing its input averaged over ``input_pool x input_pool`` blocks, with the first
    conv's kernel, stride and padding divided by ``input_pool`` so that every later layer has the
    shape it has in ``base`` (Red-Fetch-Green, pool 4: the 8x8 stride-8 tile layer becomes 2x2
    stride 2 on the 16x16 pooled frame, still one cell per tile).

    Why a student may want it: the input gradient of the pooled network is the same on every pixel
    of a block, so its vanilla-gradient map cannot single out one pixel of an object (the maps of
    a stride-8 tile layer can: each pixel of a tile has its own weight). :class:`DigrError` if the
    first conv's kernel, stride or padding is not a multiple of ``input_pool``.
    """
    from digr.errors import DigrError, check_int

    input_pool = check_int("input_pool", input_pool)
    if base.input_pool != 1:
        raise DigrError("the base network already pools its input")
    if input_pool == 1:
        return base
    c, k, st, p = base.convs[0]
    if k % input_pool or st % input_pool or p % input_pool:
        raise DigrError(f"input_pool {input_pool} must divide the first conv's kernel {k}, stride {st} "
                        f"and padding {p}")
    first = (c, k // input_pool, st // input_pool, p // input_pool)
    return replace(base, convs=(first, *base.convs[1:]), input_pool=input_pool).validate()


def pooled_state_dict(base: PolicyNet, input_pool: int) -> dict[str, torch.Tensor]:
    """The weights of ``base`` for its pooled architecture ``pooled_student_config(base.config,
    input_pool)``, chosen so that the pooled net on frame ``x`` computes ``base`` on the block-mean
    image of ``x`` (every pixel replaced by the mean of its ``input_pool x input_pool`` block).

    The first conv's kernel is summed over each block of kernel pixels (a kernel pixel pair that
    sees one block-constant value contributes the sum of its weights); every other tensor is copied,
    with the conv keys shifted by one for the pool layer. Used to warm-start a pooled student from
    the teacher (``digr distill --init``).
    """
    cfg = pooled_student_config(base.config, input_pool)
    if cfg is base.config:
        return {k: v.detach().clone() for k, v in base.state_dict().items()}
    k = cfg.input_pool
    out: dict[str, torch.Tensor] = {}
    for name, value in base.state_dict().items():
        value = value.detach().clone()
        if name.startswith("trunk.convs."):
            _, _, idx, rest = name.split(".", 3)
            if idx == "0" and rest == "weight":  # (C_out, C_in, kh, kw) -> block sums
                c_out, c_in, kh, kw = value.shape
                value = value.reshape(c_out, c_in, kh // k, k, kw // k, k).sum((3, 5))
            name = f"trunk.convs.{int(idx) + 1}.{rest}"
        out[name] = value
    return out


def smooth_surrogate(policy: "PolicyNet", softplus_beta: float) -> "PolicyNet":
    """``policy``'s smooth twin: the same weights with every ReLU replaced by
    ``softplus(beta z) / beta`` (an eval-mode copy; ``policy`` itself when it already has smooth
    units or ``softplus_beta`` is 0).

    What it is for: attacking a ReLU network through its twin's gradient (BPDA, Athalye et al.
    2018). A ReLU network's input gradient passes nothing through a dead unit and is constant
    between activation boundaries, so a gradient attack can stall where the network is not robust
    (gradient masking); the twin's logits stay within a few ``ln 2 / beta`` of the network's, its
    gradient does not vanish. :func:`digr.evaluation.robustness.evaluate_robustness` uses it with
    ``surrogate_softplus``.
    """
    if softplus_beta == 0 or policy.config.softplus_beta > 0:
        return policy
    twin = PolicyNet(replace(policy.config, softplus_beta=float(softplus_beta)))
    twin.load_state_dict(policy.state_dict(), strict=True)
    return twin.to(next(policy.parameters()).device).eval()


def gaussian_matrix(n: int, sigma: float) -> torch.Tensor:
    """``(n, n)`` matrix of a 1-D Gaussian low-pass with standard deviation ``sigma`` pixels; each
    row sums to 1, so near the border the window is renormalised over the pixels that exist."""
    i = torch.arange(n, dtype=torch.float64)
    w = torch.exp(-0.5 * ((i[:, None] - i[None, :]) / sigma) ** 2)
    return (w / w.sum(1, keepdim=True)).float()


class InputBlur(nn.Module):
    """Fixed separable Gaussian blur ``(B, C, H, W) -> (B, C, H, W)``: ``G_H x G_W^T`` per channel.

    Two small matrix products rather than a convolution: exact at any sigma without a truncated
    window, cheap at these frame sizes, and their double backward is plain matmuls. The matrices
    are non-persistent buffers: rebuilt from the config, never stored in a checkpoint.
    """

    def __init__(self, height: int, width: int, sigma: float) -> None:
        super().__init__()
        self.register_buffer("gh", gaussian_matrix(height, sigma), persistent=False)
        self.register_buffer("gw_t", gaussian_matrix(width, sigma).T.contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gh @ x @ self.gw_t


class CNNTrunk(nn.Module):
    """Conv stack, optional attention, pooling and the first linear layer:
    ``(B, C, H, W) float in [0, 1] -> (B, hidden)``.

    With ``config.attention == "fls"`` the last conv's features ``(B, C', h, w)`` are multiplied
    by the FLS map ``(B, 1, h, w)`` before pooling (:mod:`digr.models.fls`); the module is
    registered as ``attention`` only then, so plain networks keep their exact state-dict keys.
    """

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        # The pool sits inside ``convs`` so that features(), Grad-CAM and the flatten-size probe
        # all see the network as it runs; without it the state-dict keys are unchanged.
        layers: list[nn.Module] = [nn.AvgPool2d(config.input_pool)] if config.input_pool > 1 else []
        c_in = config.obs_shape[0]
        for c_out, k, s, p in config.convs:
            layers += [nn.Conv2d(c_in, c_out, k, stride=s, padding=p), activation_module(config.softplus_beta)]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        # Outside ``convs`` so that the conv keys stay those of the unblurred network.
        self.blur = (InputBlur(*config.obs_shape[1:], config.input_blur) if config.input_blur > 0
                     else nn.Identity())
        self.attention = None
        if config.attention == "fls":
            self.attention = FLSAttention(c_in, channels=config.attention_channels,
                                          kernel=config.attention_kernel,
                                          softplus_beta=config.softplus_beta)
        c_out, h, w = config.feature_shape()
        n_flat = c_out if config.pool in ("max", "sum") else c_out * h * w
        self.linear = nn.Linear(n_flat, config.hidden)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.pool == "max":
            return x.amax(dim=(2, 3))
        if self.config.pool == "sum":
            return x.sum(dim=(2, 3))
        return x.flatten(1)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Last conv layer's activations ``(B, C', h, w)`` (before any attention)."""
        return self.convs(self.blur(obs))

    def attention_map(self, obs: torch.Tensor) -> torch.Tensor:
        """The FLS attention map ``(B, 1, h, w)`` (> 0) for ``obs: (B, C, H, W)``.

        Runs the conv stack and the attention module only: less than one forward pass.
        :class:`DigrError` for a network without attention.
        """
        if self.attention is None:
            from digr.errors import DigrError

            raise DigrError("this policy has no attention module (train it with --fls, or build it "
                            "with digr.models.fls.fls_config)")
        return self.attention(self.features(obs))

    def forward(self, obs: torch.Tensor, *, return_attention: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, hidden)`` features; with ``return_attention`` also the ``(B, 1, h, w)`` attention
        map of this same pass (``None`` without attention)."""
        x = self.features(obs)
        attn = None
        if self.attention is not None:
            attn = self.attention(x)
            x = x * attn  # FLS: gate every position's feature vector (broadcast over channels)
        h = activate(self.linear(self._pool(x)), self.config.softplus_beta)
        return (h, attn) if return_attention else h


class PolicyNet(nn.Module):
    """Actor-critic policy used for teachers, students and SB3 training alike.

    ``forward(obs)`` maps ``obs: (B, C, H, W) float32 in [0, 1]`` to action logits ``(B, A)``;
    :meth:`value` gives the critic's ``(B,)`` estimate.
    """

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        self.trunk = CNNTrunk(config)
        self.pi = nn.Linear(config.hidden, config.n_actions)
        self.v = nn.Linear(config.hidden, 1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.pi(self.trunk(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.v(self.trunk(obs)).squeeze(-1)

    def logits_and_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs)
        return self.pi(h), self.v(h).squeeze(-1)

    def logits_and_attention(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(B, A)`` and the FLS attention map ``(B, 1, h, w)`` of one forward pass
        (``None`` for a network without attention)."""
        h, attn = self.trunk(obs, return_attention=True)
        return self.pi(h), attn

    @property
    def last_conv(self) -> nn.Conv2d:
        """The last convolution (Grad-CAM's layer)."""
        return [m for m in self.trunk.convs if isinstance(m, nn.Conv2d)][-1]

    @torch.no_grad()
    def act(self, obs: np.ndarray, *, deterministic: bool = True,
            generator: torch.Generator | None = None) -> np.ndarray:
        """Actions ``(B,) int64`` for raw observations ``(B, H, W, C) uint8``."""
        logits = self(to_tensor(obs, self.config.obs_shape))
        if deterministic:
            return logits.argmax(-1).numpy()
        probs = torch.softmax(logits, -1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1).numpy()


def to_tensor(obs: np.ndarray | torch.Tensor, obs_shape: tuple[int, int, int] | None = None
              ) -> torch.Tensor:
    """Raw env observations ``(B, H, W, C) uint8`` -> policy input ``(B, C, H, W) float in [0, 1]``."""
    t = torch.as_tensor(np.asarray(obs))
    if t.ndim == 3:
        t = t.unsqueeze(0)
    t = t.permute(0, 3, 1, 2).float().div_(255.0)
    if obs_shape is not None and tuple(t.shape[1:]) != tuple(obs_shape):
        from digr.errors import DigrError

        raise DigrError(f"observation shape {tuple(t.shape[1:])} does not match the policy's "
                        f"input {tuple(obs_shape)}")
    return t.contiguous()
