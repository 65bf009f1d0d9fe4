"""Gaussian-blur perturbation saliency (Greydanus et al. 2018), scored as in the paper's eq. 3.

For every grid location ``(i, j)`` (every ``stride``-th pixel in each direction) the state is
blurred inside a Gaussian window centred there::

    M_ij(y, x) = exp(-((y - i)^2 + (x - j)^2) / (2 * radius^2))          # max 1 at the centre
    s'_ij      = s * (1 - M_ij) + blur(s) * M_ij                          # Greydanus et al. eq. 1

``blur`` is a Gaussian blur of the whole image with ``blur_sigma`` (3 in Greydanus et al.), and the
location's score is

* ``score="kl"`` (default, DIGR eq. 3): ``KL(pi(s) || pi(s'_ij))``;
* ``score="greydanus"`` (Greydanus et al. eq. 2): ``0.5 * ||logits(s) - logits(s'_ij)||^2``.

With ``stride > 1`` the coarse ``(Ly, Lx)`` score grid is bilinearly interpolated back to
``(H, W)`` between the window centres (constant beyond the last centre), then every map is
divided by its max. The masks are per-pixel weights shared by all channels, so no channel
reduction is needed.

Truncation (default): the window's separable factors are set to zero more than
``truncate * radius`` pixels from the centre (:func:`window_half_width`; ``truncate`` defaults to
:data:`TRUNCATE` = sqrt(2 ln 510) ~ 3.53, where the window drops below 1/510, so the change it
would make to a pixel is under half a grey level of a uint8 observation). This makes every
perturbation local, which is what lets the incremental engine skip work. ``truncate=None`` keeps
the untruncated Gaussian. The normalised maps of the two differ by at most ~2e-3 (measured on
the committed checkpoints with real states and on the benchmark networks with random weights and
noise states; ``truncate=4`` brings it under ~2.5e-4 at some speed cost; see
``results/saliency-speed.md``).

Engines, same maps up to float rounding (``engine``):

* ``"incremental"`` (:mod:`digr.saliency.incremental`): for a plain
  :class:`~digr.models.PolicyNet`, recompute only the part of each conv layer a window changes,
  from the clean state's activations;
* ``"batched"``: run the whole network on every perturbed state, in large batches
  (``batch_size``) -- works for any module;
* ``"auto"`` (default): incremental where the policy qualifies, the window is truncated and the
  estimated arithmetic is at most ``1 / MIN_GAIN`` of the batched one (so Breakout- and
  driving-sized networks, not the Red-Fetch-Green one, whose 7x7 layers spread every change over
  the whole 8x8 grid), batched otherwise.

Speed (batched engine): the blur is computed once per state, the masks of a given
``(H, W, radius, stride, truncation)`` are built once and cached as one tensor, and all
``B * Ly * Lx`` perturbed states are pushed through the policy in large batches under
``torch.inference_mode`` -- no Python loop over locations. See ``benchmarks/saliency_speed.py``
for both engines against a one-forward-per-location loop.

Differences from Greydanus et al.'s code, on purpose: the window is an exact Gaussian with
``sigma = radius`` (theirs is a blurred one-pixel disc, which is the same shape up to the disc's
width), truncated as above by default, and the whole-image blur pads by repeating edge pixels
(theirs reflects).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from digr.errors import DigrError
from digr.saliency.base import SaliencyMethod, check_obs, check_positive, chunks, normalize_maps

SCORES = ("kl", "greydanus")
ENGINES = ("auto", "incremental", "batched")
GREYDANUS_BLUR_SIGMA = 3.0
"""Sigma of the whole-image blur in Greydanus et al. 2018."""
TRUNCATE = math.sqrt(2.0 * math.log(510.0))
"""Default window truncation, in units of ``radius`` (~3.532): beyond it the window
``exp(-d^2 / (2 r^2))`` is below 1/510, so the change it makes to a pixel,
``M * (blur(s) - s)`` with ``|blur(s) - s| <= 1``, is under half a grey level of a uint8
observation -- below the precision of the observation itself."""
FULL_MASK_LIMIT = 1 << 25
"""Largest ``L * H * W`` (128 MiB of float32) for which all masks are kept as one tensor; larger
grids (e.g. 128x128 at stride 1: 1 GiB) build each batch's masks from the separable factors."""

ScoreFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``(clean_logits (n, A), perturbed_logits (n, A), state_index (n,)) -> scores (n,)``."""


# --------------------------------------------------------------------------------------- masks
@dataclass(frozen=True)
class MaskGrid:
    """The perturbation windows of one ``(H, W, radius, stride)``; ``L = Ly * Lx`` locations."""

    gy: torch.Tensor
    """``(Ly, H)``: ``exp(-(y - i)^2 / (2 r^2))`` for each row centre ``i``, zero where
    ``|y - i| > half``."""
    gx: torch.Tensor
    """``(Lx, W)``: the same for each column centre ``j``."""
    full: torch.Tensor | None
    """``(L, H, W)`` all windows (row-major over ``(i, j)``), or None above :data:`FULL_MASK_LIMIT`."""
    up_y: torch.Tensor
    """``(H, Ly)`` bilinear interpolation weights from the coarse grid rows to pixel rows."""
    up_x: torch.Tensor
    """``(W, Lx)`` the same for columns."""
    half: int | None
    """Window half-width in pixels (:func:`window_half_width`); None: not truncated."""

    @property
    def n_locations(self) -> int:
        return self.gy.shape[0] * self.gx.shape[0]

    def masks(self, loc: torch.Tensor | slice) -> torch.Tensor:
        """Windows ``(n, H, W)`` of the flat location indices ``loc: (n,)`` (or a slice of them)."""
        if self.full is not None:
            return self.full[loc]
        if isinstance(loc, slice):
            loc = torch.arange(loc.start, loc.stop, device=self.gy.device)
        lx = self.gx.shape[0]
        return self.gy[loc // lx][:, :, None] * self.gx[loc % lx][:, None, :]

    def upsample(self, coarse: torch.Tensor) -> torch.Tensor:
        """``(B, Ly, Lx)`` scores -> ``(B, H, W)`` (identity for stride 1)."""
        return self.up_y @ coarse @ self.up_x.T


def window_half_width(radius: float, truncate: float | None) -> int | None:
    """Pixels kept on each side of a window centre: ``floor(truncate * radius)`` (None: all).

    Each separable factor ``exp(-(y - i)^2 / (2 r^2))`` is set to zero where
    ``|y - i| > truncate * r``, so the window is cut to a square of side ``2 * half + 1``; every
    value cut is below ``exp(-truncate^2 / 2)`` (1/510 at the default :data:`TRUNCATE`).
    """
    if truncate is None:
        return None
    return int(math.floor(truncate * radius + 1e-9))


def _gauss_1d(n: int, centres: torch.Tensor, radius: float, half: int | None) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float64)
    dist = pos[None] - centres[:, None]
    g = torch.exp(-dist ** 2 / (2.0 * radius ** 2))
    return g if half is None else torch.where(dist.abs() <= half, g, torch.zeros_like(g))


def _interp_matrix(n: int, stride: int) -> torch.Tensor:
    """``(n, L)`` weights putting coarse value ``k`` at pixel ``k * stride``, linear in between."""
    n_coarse = len(range(0, n, stride))
    pos = torch.arange(n, dtype=torch.float64) / stride
    lo = pos.floor().long().clamp(max=n_coarse - 1)
    hi = (lo + 1).clamp(max=n_coarse - 1)
    t = (pos - lo).clamp(0.0, 1.0)
    t = torch.where(hi == lo, torch.zeros_like(t), t)  # beyond the last centre: hold its value
    m = torch.zeros(n, n_coarse, dtype=torch.float64)
    m[torch.arange(n), lo] += 1 - t
    m[torch.arange(n), hi] += t
    return m


_MASK_CACHE: "OrderedDict[tuple, MaskGrid]" = OrderedDict()
_MASK_CACHE_SIZE = 8


def mask_grid(height: int, width: int, *, radius: float, stride: int = 1, truncate: float | None = TRUNCATE,
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> MaskGrid:
    """The (cached) windows and upsampling weights for an ``height x width`` input.

    ``truncate``: cut each window beyond ``truncate * radius`` pixels from its centre
    (:func:`window_half_width`); None keeps the untruncated Gaussian. Cached per
    ``(H, W, radius, stride, truncation, device, dtype)`` in a small LRU, so repeated calls (a
    dataset of thousands of states) build them once.
    """
    half = window_half_width(radius, truncate)
    key = (int(height), int(width), float(radius), int(stride), half, str(torch.device(device)), dtype)
    hit = _MASK_CACHE.get(key)
    if hit is not None:
        _MASK_CACHE.move_to_end(key)
        return hit
    cy = torch.arange(0, height, stride, dtype=torch.float64)
    cx = torch.arange(0, width, stride, dtype=torch.float64)
    gy, gx = _gauss_1d(height, cy, radius, half), _gauss_1d(width, cx, radius, half)
    n_loc = len(cy) * len(cx)
    full = None
    if n_loc * height * width <= FULL_MASK_LIMIT:
        full = (gy[:, None, :, None] * gx[None, :, None, :]).reshape(n_loc, height, width)
        full = full.to(device=device, dtype=dtype)
    grid = MaskGrid(gy=gy.to(device=device, dtype=dtype), gx=gx.to(device=device, dtype=dtype), full=full,
                    up_y=_interp_matrix(height, stride).to(device=device, dtype=dtype),
                    up_x=_interp_matrix(width, stride).to(device=device, dtype=dtype), half=half)
    _MASK_CACHE[key] = grid
    while len(_MASK_CACHE) > _MASK_CACHE_SIZE:
        _MASK_CACHE.popitem(last=False)
    return grid


# ---------------------------------------------------------------------------------------- blur
def gaussian_blur(obs: torch.Tensor, sigma: float = GREYDANUS_BLUR_SIGMA) -> torch.Tensor:
    """Blur each channel of ``obs: (B, C, H, W)`` with a Gaussian of ``sigma`` pixels.

    Separable, kernel truncated at 4 sigma (as ``scipy.ndimage.gaussian_filter``), edges padded
    by replication so that any image size works.
    """
    if sigma <= 0:
        return obs.clone()
    half = int(4.0 * sigma + 0.5)
    k = torch.exp(-torch.arange(-half, half + 1, dtype=torch.float64) ** 2 / (2.0 * sigma ** 2))
    k = (k / k.sum()).to(device=obs.device, dtype=obs.dtype)
    b, c, h, w = obs.shape
    x = obs.reshape(b * c, 1, h, w)
    x = F.conv2d(F.pad(x, (0, 0, half, half), mode="replicate"), k.view(1, 1, -1, 1))
    x = F.conv2d(F.pad(x, (half, half, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return x.reshape(b, c, h, w)


# -------------------------------------------------------------------------------------- scores
def kl_score(clean: torch.Tensor, perturbed: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``KL(pi(s) || pi(s'))`` per row (eq. 3), from logits ``(n, A)``; clipped at 0 (rounding).

    Computed in float64: the KL of a small change is second order in the logit change while its
    terms are first order, so in float32 they cancel to an absolute error of ~1e-7 -- as large as
    the whole score of a weak perturbation (random-weight networks: scores ~1e-6).
    """
    logp = torch.log_softmax(clean.double(), -1)
    logq = torch.log_softmax(perturbed.double(), -1)
    return (logp.exp() * (logp - logq)).sum(-1).clamp_min(0.0)


def greydanus_score(clean: torch.Tensor, perturbed: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``0.5 * ||logits(s) - logits(s')||^2`` per row (Greydanus et al. 2018, eq. 2)."""
    return 0.5 * (clean - perturbed).pow(2).sum(-1)


SCORE_FNS: dict[str, ScoreFn] = {"kl": kl_score, "greydanus": greydanus_score}


CPU_BATCH_FLOATS = 1 << 20
"""Automatic CPU batches hold about this many input floats (4 MiB): measured on a 2-core CPU, batches
of 32-128 perturbed 64x64..128x128 states ran 1.5-2x faster per state than batches of 1024, which
spill out of cache."""
GPU_BATCH = 1024
"""Automatic batch size on accelerators."""


def auto_batch_size(obs: torch.Tensor) -> int:
    """Perturbed states per forward when ``batch_size=None``: cache-sized on CPU, 1024 elsewhere."""
    if obs.device.type != "cpu":
        return GPU_BATCH
    return max(1, CPU_BATCH_FLOATS // max(1, obs[0].numel()))


def check_settings(*, radius: float, stride: int, batch_size: int | None, blur_sigma: float,
                   truncate: float | None = TRUNCATE, engine: str = "auto") -> None:
    """Shared validation of the blur-perturbation settings (also used by SARFA)."""
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius > 0 \
            or not math.isfinite(radius):
        raise DigrError(f"perturbation radius must be a positive number, got {radius!r}")
    check_positive("perturbation stride", stride)
    if batch_size is not None:
        check_positive("perturbation batch_size", batch_size)
    if isinstance(blur_sigma, bool) or not isinstance(blur_sigma, (int, float)) or not blur_sigma >= 0:
        raise DigrError(f"blur_sigma must be a number >= 0, got {blur_sigma!r}")
    if truncate is not None and (isinstance(truncate, bool) or not isinstance(truncate, (int, float))
                                 or not truncate > 0 or not math.isfinite(truncate)):
        raise DigrError(f"perturbation truncate must be a positive number or None, got {truncate!r}")
    if engine not in ENGINES:
        raise DigrError(f"unknown perturbation engine {engine!r}; choose one of: {', '.join(ENGINES)}")


def incremental_plan(policy: torch.nn.Module, grid: MaskGrid, obs: torch.Tensor, *, radius: float,
                      stride: int, engine: str):
    """``(geoms, plan)`` if ``engine`` runs incrementally for ``policy`` on ``obs``-shaped input with
    ``grid``, else None; :class:`DigrError` if ``engine="incremental"`` cannot be honoured."""
    from digr.saliency import incremental as inc

    if engine == "batched":
        return None
    geoms = inc.conv_stack(policy, tuple(obs.shape[2:])) if grid.half is not None else None
    if geoms is None:
        if engine == "incremental":
            why = ("needs a finite truncate" if grid.half is None else
                   "needs a digr.models.PolicyNet with a plain Conv2d/ReLU stack and no hooks")
            raise DigrError(f"perturbation engine 'incremental' {why}; use engine='batched' or 'auto'")
        return None
    plan = inc.plan_for(policy, geoms, gy=grid.gy, gx=grid.gx, radius=radius, stride=stride, half=grid.half)
    if engine == "auto" and plan.gain < inc.MIN_GAIN:
        return None
    return geoms, plan


def perturbation_scores(policy: torch.nn.Module, obs: torch.Tensor, score_fn: ScoreFn, *,
                        radius: float, stride: int = 1, batch_size: int | None = None,
                        blur_sigma: float = GREYDANUS_BLUR_SIGMA, truncate: float | None = TRUNCATE,
                        engine: str = "auto") -> torch.Tensor:
    """Raw upsampled scores ``(B, H, W)`` of every blur perturbation of ``obs`` (no grad, no checks).

    ``score_fn`` compares clean and perturbed logits; the index of the state each row belongs to
    is passed along so target-specific scores (SARFA) can use the same pass. ``engine``:
    ``"incremental"`` recomputes only the part of each conv layer a (truncated) window changes
    (:mod:`digr.saliency.incremental`; a plain :class:`~digr.models.PolicyNet` only),
    ``"batched"`` runs the full network on every perturbed state, ``"auto"`` takes the
    incremental one where it qualifies and is estimated to need at most ``1 / MIN_GAIN`` of the
    arithmetic. Both compute the same maps up to float rounding.
    """
    b, c, h, w = obs.shape
    # built outside inference mode so the cached tensors are ordinary ones
    grid = mask_grid(h, w, radius=radius, stride=stride, truncate=truncate, device=obs.device,
                     dtype=obs.dtype)
    chosen = incremental_plan(policy, grid, obs, radius=radius, stride=stride, engine=engine)
    with torch.inference_mode():
        obs = obs.detach()
        n_loc = grid.n_locations
        delta = gaussian_blur(obs, blur_sigma) - obs  # s' = s + M * (blur(s) - s), blur once
        out = torch.empty(b * n_loc, device=obs.device, dtype=torch.float32)
        if chosen is not None:
            from digr.saliency.incremental import Incremental

            geoms, plan = chosen
            inc = Incremental(policy, geoms, obs, delta)
            for loc, r, logits in inc.batches(plan):
                rows = torch.full((loc.numel(),), r, device=obs.device, dtype=torch.long)
                out[r * n_loc + loc] = score_fn(inc.clean[rows], logits, rows).float()
        else:
            clean = policy(obs)
            if batch_size is None:
                batch_size = auto_batch_size(obs)
            for sl in chunks(b * n_loc, batch_size):
                r0, l0 = divmod(sl.start, n_loc)
                r1, _ = divmod(sl.stop - 1, n_loc)
                if r0 == r1:  # the whole batch perturbs one state: broadcast it, slice the masks
                    rows = torch.full((sl.stop - sl.start,), r0, device=obs.device, dtype=torch.long)
                    m = grid.masks(slice(l0, l0 + sl.stop - sl.start))[:, None]  # (n, 1, H, W)
                    perturbed = torch.addcmul(obs[r0:r0 + 1], m, delta[r0:r0 + 1])
                else:
                    flat = torch.arange(sl.start, sl.stop, device=obs.device)
                    rows, loc = flat // n_loc, flat % n_loc
                    perturbed = torch.addcmul(obs[rows], grid.masks(loc)[:, None], delta[rows])
                out[sl] = score_fn(clean[rows], policy(perturbed), rows).float()
        coarse = out.view(b, grid.gy.shape[0], grid.gx.shape[0]).to(obs.dtype)
        maps = grid.upsample(coarse).clamp_min(0.0)
    return maps.clone()  # outside inference mode: an ordinary tensor for the caller


def perturbation_saliency(policy: torch.nn.Module, obs: torch.Tensor, *, radius: float, stride: int = 1,
                          score: str = "kl", batch_size: int | None = None,
                          blur_sigma: float = GREYDANUS_BLUR_SIGMA, truncate: float | None = TRUNCATE,
                          engine: str = "auto") -> torch.Tensor:
    """Normalised Gaussian-blur perturbation maps ``(B, H, W)`` float32 in ``[0, 1]`` (no grad).

    ``obs: (B, C, H, W)`` float in ``[0, 1]`` matching ``policy.config.obs_shape``; ``radius``:
    window sigma in pixels (the task's ``perturbation_radius``: 4 Red-Fetch-Green, 8 Breakout,
    5 driving); ``stride``: grid spacing of the window centres; ``score``: ``"kl"`` (eq. 3) or
    ``"greydanus"``; ``batch_size``: perturbed states per forward pass of the batched engine
    (``None``: about 4 MiB of input per batch on CPU, 1024 on accelerators; the maps do not
    depend on it beyond rounding; the incremental engine sizes its own chunks);
    ``truncate``: windows are cut beyond ``truncate * radius`` pixels from their centre (default
    :data:`TRUNCATE`, where the window falls below 1/510, under half a uint8 grey level; None:
    the untruncated Gaussian -- normalised maps differ by up to ~2e-3, see the module docstring);
    ``engine``: ``"auto"`` (default), ``"incremental"`` or ``"batched"`` (same maps up to
    rounding, see :func:`perturbation_scores`).
    """
    obs = check_obs(policy, obs)
    if score not in SCORE_FNS:
        raise DigrError(f"unknown perturbation score {score!r}; choose one of: {', '.join(SCORES)}")
    check_settings(radius=radius, stride=stride, batch_size=batch_size, blur_sigma=blur_sigma,
                   truncate=truncate, engine=engine)
    raw = perturbation_scores(policy, obs, SCORE_FNS[score], radius=radius, stride=stride,
                              batch_size=batch_size, blur_sigma=blur_sigma, truncate=truncate, engine=engine)
    return normalize_maps(raw)


class Perturbation(SaliencyMethod):
    """Gaussian-blur perturbation saliency (Greydanus et al. 2018; DIGR eq. 3 with ``score="kl"``).

    ``radius`` defaults to Greydanus et al.'s 5; pass the task's ``perturbation_radius``.
    """

    name = "perturbation"
    uses_target = False

    def __init__(self, policy: torch.nn.Module, *, radius: float = 5.0, stride: int = 1, score: str = "kl",
                 batch_size: int | None = None, blur_sigma: float = GREYDANUS_BLUR_SIGMA,
                 truncate: float | None = TRUNCATE, engine: str = "auto") -> None:
        if score not in SCORE_FNS:
            raise DigrError(f"unknown perturbation score {score!r}; choose one of: {', '.join(SCORES)}")
        check_settings(radius=radius, stride=stride, batch_size=batch_size, blur_sigma=blur_sigma,
                       truncate=truncate, engine=engine)
        super().__init__(policy, radius=radius, stride=stride, score=score, batch_size=batch_size,
                         blur_sigma=blur_sigma, truncate=truncate, engine=engine)

    def _attribute(self, obs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        s = self.settings
        return perturbation_scores(self.policy, obs, SCORE_FNS[s["score"]], radius=s["radius"],
                                   stride=s["stride"], batch_size=s["batch_size"],
                                   blur_sigma=s["blur_sigma"], truncate=s["truncate"], engine=s["engine"])


__all__ = ["perturbation_saliency", "perturbation_scores", "Perturbation", "gaussian_blur", "mask_grid",
           "MaskGrid", "kl_score", "greydanus_score", "window_half_width", "incremental_plan", "SCORES",
           "ENGINES", "GREYDANUS_BLUR_SIGMA", "TRUNCATE"]
