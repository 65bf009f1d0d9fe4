"""Map agreement: does a policy's cheap gradient map read like the teacher's perturbation map?

A mask-free measure of DIGR's promise that works on any task, including a user's own. On held-out
states drawn from the *teacher's own* sampled rollouts (never the DIGR dataset's states: they use
a seed stream of their own), it compares a policy's vanilla-gradient map (eq. 2) with the
teacher's Gaussian-blur perturbation map (eq. 3, the task's radius), both max-normalised:

* ``cc``: the Pearson correlation of the two maps over the pixels of a state;
* ``share``: the policy's gradient mass on pixels where the reference map exceeds ``threshold``
  (eq. 4's lambda, 0.1), over its total mass -- how much of the map lies where the teacher's
  expensive map says the decision is made;
* ``top1``: the share of the policy's mass in its 1% largest pixels. A spike (one bright pixel)
  scores near 1, which ``share`` alone cannot reveal: a spike on an important pixel has share 1.

Each figure is the mean over states, with a 95% normal interval of that mean. The teacher's own
vanilla gradient on the same states and reference maps is the baseline a student must beat.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from digr.errors import DigrError, check_int
from digr.evaluation.settings import AgreementConfig

SPIKE_TOP1 = 0.85
"""A student map with more than this share of its mass in its 1% largest pixels is flagged as a
spike: it may score well on masks (Table 1) while showing a few dots, not the decision's region.
(Perturbation maps are peaked too: on Red-Fetch-Green the teacher's own holds about 0.68 of its
mass in its top 1%; the Table 3 students' single-pixel maps hold 0.87-0.97.)"""

THRESHOLD = 0.1
"""Reference pixels above this count as important (eq. 4's lambda)."""
TOP_FRACTION = 0.01
"""``top1`` is the mass share of this fraction of the largest pixels."""
HELDOUT_STREAM = 0x6D6170
"""Seed-stream tag of held-out states: ``SeedSequence([seed, HELDOUT_STREAM, 1])`` never equals a
dataset shard's ``SeedSequence([seed, shard])``."""


@dataclass(frozen=True)
class Agreement:
    """Map agreement of one policy's gradient maps with the reference maps (means over states)."""

    cc: float
    """Mean Pearson correlation with the reference map (a constant map counts as 0)."""
    cc_ci95: float
    """Half-width of the 95% normal interval of ``cc``'s mean."""
    share: float
    """Mean share of the map's mass on pixels where the reference exceeds ``THRESHOLD``."""
    share_ci95: float
    """Half-width of the 95% normal interval of ``share``'s mean."""
    top1: float
    """Mean share of the map's mass in its 1% largest pixels (near 1: a spike)."""
    states: int
    """Number of states."""

    def as_dict(self) -> dict[str, float | int]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _ci95(x: np.ndarray) -> float:
    return float(1.96 * x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


def top1_shares(maps: torch.Tensor) -> torch.Tensor:
    """``(B,)``: each map's share of its mass in its ``TOP_FRACTION`` largest pixels (0 for a map
    with no mass); ``maps: (B, H, W)`` non-negative."""
    m = maps.detach().double().flatten(1)
    mass = m.sum(1)
    k = max(1, math.ceil(TOP_FRACTION * m.shape[1]))
    return torch.where(mass > 0, m.topk(k, dim=1).values.sum(1) / mass.clamp_min(torch.finfo(m.dtype).tiny),
                       torch.zeros_like(mass))


def agreement_scores(maps: torch.Tensor, reference: torch.Tensor, *, threshold: float = THRESHOLD
                     ) -> dict[str, np.ndarray]:
    """Per-state ``cc``, ``share`` and ``top1`` of ``maps`` against ``reference``.

    ``maps, reference: (B, H, W)`` non-negative (any scale: every figure is scale-invariant).
    Returns three ``(B,)`` float64 arrays. A map with no mass has share and top1 0; a constant map
    (or reference) has cc 0.
    """
    if maps.shape != reference.shape or maps.ndim != 3:
        raise DigrError(f"maps {tuple(maps.shape)} and reference maps {tuple(reference.shape)} must "
                        "both be (B, H, W)")
    if not (torch.isfinite(maps).all() and torch.isfinite(reference).all()):
        raise DigrError("saliency maps hold NaN or inf values: the policy's weights or inputs are broken")
    m = maps.detach().double().flatten(1)
    r = reference.detach().double().flatten(1)
    r = r / r.amax(1, keepdim=True).clamp_min(torch.finfo(r.dtype).tiny)  # threshold on the max-normalised map
    mc, rc = m - m.mean(1, keepdim=True), r - r.mean(1, keepdim=True)
    denom = (mc.norm(dim=1) * rc.norm(dim=1))
    cc = torch.where(denom > 0, (mc * rc).sum(1) / denom.clamp_min(torch.finfo(m.dtype).tiny),
                     torch.zeros_like(denom))
    mass = m.sum(1)
    safe = mass.clamp_min(torch.finfo(m.dtype).tiny)
    share = torch.where(mass > 0, (m * (r > threshold)).sum(1) / safe, torch.zeros_like(mass))
    return {"cc": cc.numpy(), "share": share.numpy(), "top1": top1_shares(maps).numpy()}


def summarize(scores: dict[str, np.ndarray]) -> Agreement:
    """Means and intervals of :func:`agreement_scores`' per-state arrays."""
    return Agreement(cc=float(scores["cc"].mean()), cc_ci95=_ci95(scores["cc"]),
                     share=float(scores["share"].mean()), share_ci95=_ci95(scores["share"]),
                     top1=float(scores["top1"].mean()), states=int(len(scores["cc"])))


def heldout_states(teacher: torch.nn.Module, task: str, n: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` states ``(n, C, H, W)`` float in ``[0, 1]`` from the teacher's sampled rollouts.

    Each visited state is kept with probability 1/3 (about every third step), from a seed stream
    no DIGR dataset uses (:data:`HELDOUT_STREAM`), so the states are held out from training.
    """
    from digr.rl.rollouts import collect_states

    n = check_int("states", n)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(np.random.SeedSequence([seed, HELDOUT_STREAM, 1]))
    states, _ = collect_states(teacher, task, n, rng=rng, keep_prob=1 / 3)
    return torch.from_numpy(states).float().div_(255.0)


def reference_maps(teacher: torch.nn.Module, obs: torch.Tensor, *, radius: float, batch_size: int = 16
                   ) -> torch.Tensor:
    """The teacher's Gaussian-blur perturbation maps ``(B, H, W)`` for ``obs: (B, C, H, W)``."""
    from digr.saliency.base import chunks
    from digr.saliency.perturbation import perturbation_saliency

    return torch.cat([perturbation_saliency(teacher, obs[sl], radius=radius)
                      for sl in chunks(len(obs), batch_size)])


def gradient_maps(policy: torch.nn.Module, obs: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
    """The policy's vanilla-gradient maps (eq. 2) ``(B, H, W)`` for ``obs: (B, C, H, W)``."""
    from digr.saliency.base import chunks
    from digr.saliency.vanilla import vanilla_gradient

    return torch.cat([vanilla_gradient(policy, obs[sl]) for sl in chunks(len(obs), batch_size)])


def reference_set(teacher: torch.nn.Module, task: str, *, states: int, seed: int, radius: float,
                  cache: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out states ``(n, C, H, W)`` in ``[0, 1]`` and the teacher's reference maps ``(n, H, W)``.

    With ``cache`` (a folder), the pair is stored there as ``.npz`` (no pickles) under a name made
    of the teacher's weights digest and the settings, and read back on the next call: the maps
    cost hundreds of forward passes each, the policies compared against them one backward pass.
    """
    key = None
    if cache is not None:
        h = hashlib.sha256()
        for k, v in sorted(teacher.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        h.update(json.dumps([task, states, seed, float(radius), THRESHOLD]).encode())
        key = Path(cache) / f"agreement-{h.hexdigest()[:16]}.npz"
        if key.is_file():
            try:
                with np.load(key, allow_pickle=False) as z:
                    return torch.from_numpy(z["obs"]).float().div_(255.0), torch.from_numpy(z["maps"])
            except (OSError, ValueError, KeyError, EOFError):
                pass  # a damaged cache file is recomputed and replaced
    obs = heldout_states(teacher, task, states, seed=seed)
    ref = reference_maps(teacher, obs, radius=radius)
    if key is not None:
        from digr.io import atomic_write

        key.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"obs": (obs * 255).round().to(torch.uint8).numpy(), "maps": ref.numpy()}

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        atomic_write(key, write)
    return obs, ref


def map_agreement(policies: dict[str, torch.nn.Module], teacher: torch.nn.Module, task: str, *,
                  states: int = AgreementConfig.states, seed: int = 0, radius: float | None = None,
                  cache: str | Path | None = None) -> dict[str, Agreement]:
    """Map agreement of each named policy, and of ``"teacher_vg"`` (the teacher's own gradient,
    the baseline), on the same ``states`` held-out states and reference maps.

    ``"reference"`` is the reference map scored against itself (cc 1): its share is below 1
    where the perturbation map spreads faint mass under the 0.1 threshold (highway: ~0.77), so a
    student reaches a share above it only by leaving that faint tail out, which is what eq. 4 asks
    (the reference with its tail cut scores cc 0.99, share 1.0 on all three tasks).

    ``radius``: the perturbation radius (default: the task's, appendix A). The reference maps
    dominate the cost (hundreds of teacher forward passes per state); ``cache`` keeps them (see
    :func:`reference_set`).
    """
    from digr.envs import get_task

    spec = get_task(task)
    obs, ref = reference_set(teacher, spec.name, states=states, seed=seed, cache=cache,
                             radius=spec.perturbation_radius if radius is None else radius)
    out = {"reference": summarize(agreement_scores(ref, ref)),
           "teacher_vg": summarize(agreement_scores(gradient_maps(teacher, obs), ref))}
    for name, policy in policies.items():
        out[name] = summarize(agreement_scores(gradient_maps(policy, obs), ref))
    return out


__all__ = ["Agreement", "agreement_scores", "summarize", "heldout_states", "reference_maps",
           "gradient_maps", "map_agreement", "reference_set", "THRESHOLD", "TOP_FRACTION"]
