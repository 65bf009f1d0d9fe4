"""Milliseconds per saliency map at batch 1 (paper Figure 1b).

Every registered saliency method runs on one seeded real observation (``env.reset(seed=seed)``)
of the task with its paper settings (:func:`digr.saliency.presets.default_settings`:
the perturbation family at the task's radius, stride 1), as a deployed agent would explain each
state it acts on. A plain forward pass under ``torch.no_grad`` is timed for reference, and with a
student the vanilla gradient on the student (DIGR's map).

Each timing is the wall time of one ``attribute`` call (``torch.cuda.synchronize`` before reading
the clock on a GPU) after warm-up calls. Slow methods get fewer repeats: after the warm-up the
number of timed calls is ``min(repeats, max(MIN_REPEATS, max_seconds / first_call_seconds))``, so
each method costs about ``max_seconds`` at most beyond its warm-up. Reported per method:
``median_ms``, ``p10_ms``, ``p90_ms``, ``repeats``.

Methods that need gradients (everything but the perturbation family) enable them themselves; the
perturbation family and the reference forward run under ``torch.no_grad``.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any, Callable, Iterable

import numpy as np
import torch

from digr.envs import get_task, make_env
from digr.errors import DigrError, check_int
from digr.evaluation.saliency_benchmark import resolve_device
from digr.evaluation.settings import TimingConfig
from digr.saliency.presets import build_method

DEFAULT_REPEATS = TimingConfig.repeats
"""Timed calls per method when it is fast enough."""
MIN_REPEATS = 3
"""Timed calls of even the slowest method."""
DEFAULT_MAX_SECONDS = TimingConfig.max_seconds
"""Approximate time budget of the timed calls of one method (beyond its warm-up)."""
FAST_WARMUP = 3
"""Warm-up calls of methods whose first call takes under 0.1 s (slow ones get one)."""
NO_GRAD_METHODS = ("perturbation", "sarfa")
"""Methods that never need autograd: timed under ``torch.no_grad``."""
STUDENT_KEY = "digr_vanilla"
"""Key of the student's vanilla-gradient timing in the result."""


def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], *, device: torch.device, repeats: int = DEFAULT_REPEATS,
              max_seconds: float = DEFAULT_MAX_SECONDS, min_repeats: int = MIN_REPEATS) -> dict[str, Any]:
    """Time ``fn()`` after warm-up; ``median_ms``, ``p10_ms``, ``p90_ms``, ``repeats``, ``warmup``."""
    def once() -> float:
        sync_device(device)
        t0 = time.perf_counter()
        fn()
        sync_device(device)
        return time.perf_counter() - t0

    first = once()
    warmup = 1
    if first < 0.1:
        for _ in range(FAST_WARMUP - 1):
            first = once()
            warmup += 1
    n = int(min(repeats, max(min_repeats, max_seconds / max(first, 1e-9))))
    times = np.array([once() for _ in range(max(n, 1))]) * 1e3
    return {"median_ms": float(np.median(times)), "p10_ms": float(np.percentile(times, 10)),
            "p90_ms": float(np.percentile(times, 90)), "repeats": int(times.size), "warmup": warmup}


def seeded_observation(task: str, *, seed: int = 0) -> torch.Tensor:
    """``(1, C, H, W)`` float32 in ``[0, 1]``: the first observation of ``reset(seed=seed)``."""
    from digr.models.cnn import to_tensor

    spec = get_task(task)
    env = make_env(spec)
    try:
        obs, _ = env.reset(seed=seed)
    finally:
        env.close()
    return to_tensor(np.asarray(obs)[None], spec.obs_shape)


def time_saliency(
    policy: torch.nn.Module,
    task: str,
    *,
    student: torch.nn.Module | None = None,
    repeats: int = DEFAULT_REPEATS,
    device: str | torch.device = "cpu",
    seed: int = 0,
    methods: Iterable[str] | None = None,
    settings: dict[str, dict[str, Any]] | None = None,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> dict[str, Any]:
    """Milliseconds per map, batch 1, for every method in ``methods`` (default: every registered
    method that supports ``policy``).

    ``policy`` and ``student`` are moved to ``device``. Returns ``task``, ``device``,
    ``torch_threads``, ``machine``, ``seed``, ``forward`` (reference forward pass), ``methods``
    (name -> timing, the teacher's maps) and, with a student, ``digr_vanilla`` (the student's
    vanilla-gradient map); each timing holds ``median_ms``, ``p10_ms``, ``p90_ms``, ``repeats``.
    ``settings`` maps a method name to setting overrides for the policy's map of that method.
    """
    from digr.saliency import METHODS, canonical_name

    spec = get_task(task)
    repeats = check_int("repeats", repeats)
    if not max_seconds > 0:
        raise DigrError(f"max_seconds must be > 0, got {max_seconds!r}")
    for name, net in (("policy", policy), ("student", student)):
        if net is not None and tuple(net.config.obs_shape) != tuple(spec.obs_shape):
            raise DigrError(f"{name} expects observations {tuple(net.config.obs_shape)}, task "
                            f"{spec.name!r} gives {spec.obs_shape}")
    names = ([canonical_name(m) for m in methods] if methods is not None
             else [n for n, cls in METHODS.items() if cls.supports(policy)])
    dev = resolve_device(device)
    obs = seeded_observation(spec.name, seed=seed).to(dev)
    policy = policy.to(dev).eval()
    budget = dict(device=dev, repeats=repeats, max_seconds=max_seconds)

    def forward() -> None:
        with torch.no_grad():
            policy(obs)

    result: dict[str, Any] = {
        "task": spec.name, "device": str(dev), "torch_threads": torch.get_num_threads(),
        "machine": machine_name(dev), "seed": int(seed), "batch": 1,
        "forward": time_call(forward, **budget), "methods": {},
    }
    for name in names:
        m = build_method(policy, name, task=spec.name, settings=(settings or {}).get(name))

        def call(m=m, name=name) -> None:
            if name in NO_GRAD_METHODS:
                with torch.no_grad():
                    m.attribute(obs)
            else:
                m.attribute(obs)

        result["methods"][name] = {**time_call(call, **budget), "settings": _plain(m.settings)}
    if student is not None:
        student = student.to(dev).eval()
        sm = build_method(student, "vanilla", task=spec.name)
        timed = time_call(lambda: sm.attribute(obs), **budget)
        result[STUDENT_KEY] = {**timed, "settings": _plain(sm.settings)}
    return result


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else repr(v)) for k, v in d.items()}


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:  # the model name is more telling than "x86_64"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores)"


__all__ = ["time_saliency", "time_call", "seeded_observation", "DEFAULT_REPEATS", "STUDENT_KEY"]
