"""Robustness to observation attacks during rollouts (paper section 4.6, Figure 8).

At every step of every episode the attack perturbs the batch of observations and the policy acts
greedily on the *attacked* observation (through ``evaluate_policy(..., obs_hook=...)``); the
environment itself is untouched. The attack's target is the policy's own clean greedy action, so
this measures how far an L-inf ``eps`` perturbation of what the agent sees degrades its task.

``eps`` is in the policy-input scale ``[0, 1]`` (uint8 pixels divided by 255): ``eps = k / 255``
allows ``k`` grey levels per pixel and channel. :data:`DEFAULT_EPS` (0 to 16/255, doubling) is
the sweep we use for Figure 8's curves; the paper does not state its values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from digr.attacks import ATTACK_NAMES, check_eps, get_attack, resolve_attack_name
from digr.errors import DigrError, check_int
from digr.evaluation.performance import evaluate_policy
from digr.evaluation.settings import RobustnessConfig, RobustnessSweepConfig, check_surrogate_softplus
from digr.models.cnn import PolicyNet, smooth_surrogate

DEFAULT_EPS: tuple[float, ...] = RobustnessSweepConfig.eps
"""Default eps sweep, ``[0, 1]`` pixel scale: 0 (clean), then 1, 2, 4, 8, 16 grey levels."""

DEFAULT_EPISODES = RobustnessConfig.episodes
"""Episodes per (attack, eps) point, as in the paper's Figure 8 for Red-Fetch-Green."""


class _CountingHook:
    """``obs_hook`` that attacks each batch and counts how often the greedy action flips."""

    def __init__(self, policy: torch.nn.Module, attack) -> None:
        self.policy = policy
        self.attack = attack
        self.steps = 0
        self.flips = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            clean = self.policy(x).argmax(-1)
        x_adv = self.attack.perturb(x, target=clean)
        with torch.no_grad():
            adv = self.policy(x_adv).argmax(-1)
        self.steps += int(clean.numel())
        self.flips += int((adv != clean).sum())
        return x_adv


def evaluate_robustness(
    policy: PolicyNet,
    task: str,
    *,
    attack: str,
    eps: float,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    n_envs: int = 8,
    surrogate_softplus: float = 0.0,
    **attack_settings: Any,
) -> dict[str, Any]:
    """Greedy rollouts of ``policy`` on ``task`` with every observation attacked.

    Args:
        policy: the policy under attack (it is both attacked and acting).
        task: task name (:func:`digr.envs.get_task`).
        attack: attack name (:data:`digr.attacks.ATTACKS`).
        eps: L-inf radius in the ``[0, 1]`` pixel scale, ``0 <= eps <= 1``.
        episodes: number of episodes; episode ``k`` resets with ``seed + k``.
        seed: episode seed; also seeds the attack's random starts unless ``attack_settings``
            holds ``seed`` or ``generator``.
        n_envs: episodes stepped at once (the attack runs on the whole batch).
        surrogate_softplus: 0 (the paper's setting): the attack follows ``policy``'s own
            gradient. ``beta > 0``: it follows the gradient of ``policy``'s smooth twin
            (:func:`digr.models.cnn.smooth_surrogate`: the same weights, softplus units of that
            beta) while ``policy`` itself acts on the attacked observation. Why: a ReLU
            network's own gradient can mask its weakness; on Red-Fetch-Green a ReLU student that
            kept 0.92 under MAD at 16/255 through its own gradient kept 0.00 through its twin's
            (results/recipe-ablation.md, session 19). A smooth policy is its own twin.
        attack_settings: passed to :func:`digr.attacks.get_attack` (``steps``, ``alpha``, ...).

    Returns:
        ``success_rate``, ``mean_return``, ``std_return``, ``mean_length``, ``episodes``,
        ``seed`` (from :func:`evaluate_policy`) plus ``attack``, ``eps``, ``eps_255``
        (``eps * 255``), ``action_flip_rate`` (fraction of steps where the attacked greedy action
        differs from the clean one), ``attack_settings`` and ``surrogate_softplus``.
    """
    name = resolve_attack_name(attack)
    eps = check_eps(eps)
    beta = check_surrogate_softplus(surrogate_softplus)
    settings = dict(attack_settings)
    if "seed" not in settings and "generator" not in settings:
        settings["seed"] = seed
    atk = get_attack(name, smooth_surrogate(policy, beta), eps=eps, **settings)
    hook = _CountingHook(policy, atk)
    result = evaluate_policy(policy, task, episodes=episodes, seed=seed, deterministic=True,
                             n_envs=n_envs, obs_hook=hook)
    shown = {k: v for k, v in attack_settings.items() if k != "generator"}
    return {
        **result,
        "attack": name,
        "eps": eps,
        "eps_255": eps * 255.0,
        "action_flip_rate": hook.flips / max(hook.steps, 1),
        "attack_settings": shown,
        "surrogate_softplus": beta,
    }


def _sweep_point(args: tuple, policy: PolicyNet) -> dict[str, Any]:
    """One :func:`evaluate_robustness` call from a packed argument tuple: one unit of
    :func:`digr.parallel.run_units` (the policy is shared by every point)."""
    task, name, eps, episodes, seed, n_envs, surrogate, attack_settings = args
    return evaluate_robustness(policy, task, attack=name, eps=eps, episodes=episodes, seed=seed,
                               n_envs=n_envs, surrogate_softplus=surrogate, **attack_settings)


def robustness_sweep(
    policy: PolicyNet,
    task: str,
    *,
    attacks: Iterable[str] = ATTACK_NAMES,
    eps_values: Sequence[float] = DEFAULT_EPS,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    n_envs: int = 8,
    workers: int = 1,
    surrogate_softplus: float = 0.0,
    done: Sequence[dict[str, Any]] = (),
    on_point: Callable[[dict[str, Any]], None] | None = None,
    **attack_settings: Any,
) -> list[dict[str, Any]]:
    """One :func:`evaluate_robustness` row per ``(attack, eps)``, attacks outer, eps inner.

    Every point uses the same episode seeds, so curves differ only by the attack. ``eps = 0``
    is the clean policy for every attack: it is rolled out once and its row repeated under each
    attack name (the rows are identical either way). ``attack_settings`` go to every attack, so
    only pass settings all of them take (e.g. ``seed``); ``surrogate_softplus`` is
    :func:`evaluate_robustness`'s.

    ``workers > 1`` runs the points as Ray tasks on a local Ray with that many CPUs
    (:mod:`digr.parallel`; ``pip install 'digr[ray]'``), one torch thread each. Why: a batch-1
    rollout step uses one core (the env steps and small forwards do not split across threads), so
    on a multi-core CPU the points are the unit to parallelise. Each point is seeded on its own,
    so the rows are the same as with ``workers=1``.

    Resuming: rows in ``done`` (from an earlier sweep of the same policy and settings; the caller
    checks that) are reused for their ``(attack, eps)`` and not rolled out again; ``on_point(row)``
    is called with every newly computed row as soon as it is in (with Ray, in any order), so a
    caller can save progress point by point.
    """
    names = [resolve_attack_name(a) for a in attacks]
    if not names:
        raise DigrError("robustness_sweep needs at least one attack")
    eps_list = [check_eps(e) for e in eps_values]
    if not eps_list:
        raise DigrError("robustness_sweep needs at least one eps value")
    workers = check_int("workers", workers)
    surrogate = check_surrogate_softplus(surrogate_softplus)
    # The distinct points: the clean rollout once (under the first attack's name), then every
    # (attack, eps > 0). A point's key drops the attack's name at eps 0: every attack's clean row
    # is the same rollout, so a stored one serves them all.
    def key(name: Any, eps: Any) -> tuple[str, float]:
        return ("", 0.0) if eps == 0.0 else (str(name), float(eps))

    distinct_eps = list(dict.fromkeys(eps_list))
    points = [(names[0], 0.0)] if 0.0 in distinct_eps else []
    points += [(name, eps) for name in dict.fromkeys(names) for eps in distinct_eps if eps > 0.0]
    by_point = {key(row.get("attack"), row.get("eps")): row for row in done}
    jobs = [(task, name, eps, episodes, seed, n_envs, surrogate, attack_settings)
            for name, eps in points if key(name, eps) not in by_point]
    from digr.parallel import ParallelConfig, run_units

    parallel = ParallelConfig(ray=workers > 1 and len(jobs) > 1, workers=workers)
    for row in run_units(_sweep_point, jobs, shared=policy, parallel=parallel):  # any order with Ray
        by_point[key(row["attack"], row["eps"])] = row
        if on_point is not None:
            on_point(row)
    return [{**by_point[key(name, eps)], "attack": name} for name in names for eps in eps_list]


def points_below(rows: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]],
                 metric: str) -> tuple[list[dict[str, Any]], int]:
    """The ``(attack, eps > 0)`` points of ``rows`` whose ``metric`` is below ``baseline``'s at the
    same point (e.g. a student's sweep against its teacher's), and how many points were compared.

    Each is ``{"attack", "eps_255", metric, "baseline"}``. Points are matched on ``eps`` in grey
    levels (rounded to 1e-6, so 8/255 written either way matches); a point the baseline lacks is
    not compared. Clean rows (eps 0) are skipped: they are the task's clean figure, not an attack.
    """
    base = {(b["attack"], round(b["eps"] * 255, 6)): b[metric] for b in baseline if b.get("eps")}
    below, compared = [], 0
    for r in rows:
        k = (r["attack"], round(r["eps"] * 255, 6))
        if not r["eps"] or k not in base:
            continue
        compared += 1
        if r[metric] < base[k]:
            below.append({"attack": r["attack"], "eps_255": k[1], metric: r[metric], "baseline": base[k]})
    return below, compared


SWEEP_FORMAT = "digr-robustness-sweep"
"""``format`` of the file :func:`sweep_to_file` writes."""
SWEEP_FORMAT_VERSION = 1


def sweep_to_file(policy: PolicyNet, task: str, path: str | Path, cfg: RobustnessSweepConfig, *,
                  policy_digest: str) -> list[dict[str, Any]]:
    """:func:`robustness_sweep` with ``cfg``, saved to ``path`` point by point and resumed from it.

    ``path`` holds ``{"format", "format_version", "key", "points"}``; ``key`` is what a point's
    result depends on (the policy's weights digest, the task, episodes, seed, the attacks' own
    settings, the surrogate's beta), not which points were asked for, so a rerun with more attacks
    or radii reuses the points already there. The file is rewritten atomically after every point,
    so a killed sweep loses at most the point it was on. A file that is not such a sweep, or holds
    one with another key, is refused and left as it is (:class:`DigrError`).
    """
    from digr.io import atomic_write_json, read_versioned_json

    path = Path(path)
    key = {"policy": policy_digest, "task": task, "episodes": cfg.episodes, "seed": cfg.seed,
           "attack_settings": cfg.attack_settings(), "surrogate_softplus": float(cfg.surrogate_softplus)}
    points: list[dict[str, Any]] = []
    if path.exists():
        if not path.is_file():
            raise DigrError(f"--out {path} is not a file")
        stored = read_versioned_json(path, owner=f"--out {path}", fmt=SWEEP_FORMAT,
                                     version=SWEEP_FORMAT_VERSION, kind="digr robustness sweep")
        if stored.get("key") != json.loads(json.dumps(key)):
            raise DigrError(f"--out {path} holds a sweep of another policy or other settings "
                            f"({stored.get('key')}); choose another file")
        points = [p for p in stored.get("points", []) if isinstance(p, dict)]
    elif not path.parent.is_dir():
        raise DigrError(f"--out {path}: folder {path.parent} does not exist")

    def save(row: dict[str, Any]) -> None:
        points.append(row)
        atomic_write_json(path, {"format": SWEEP_FORMAT, "format_version": SWEEP_FORMAT_VERSION,
                                 "key": key, "points": points}, indent=1)

    return robustness_sweep(policy, task, attacks=cfg.attacks, eps_values=cfg.eps, episodes=cfg.episodes,
                            seed=cfg.seed, workers=cfg.workers, surrogate_softplus=cfg.surrogate_softplus,
                            done=list(points), on_point=save, **cfg.attack_settings())


def read_sweep_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a stored sweep: a :func:`sweep_to_file` file, ``digr evaluate robustness-sweep
    --json`` output, or a report's cache (``eval/robustness-ROLE.json``). :class:`DigrError` for
    anything else."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise DigrError(f"--baseline {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DigrError(f"--baseline {path} is not readable JSON ({exc})") from None
    rows = obj.get("points", obj.get("result")) if isinstance(obj, dict) else None
    if not isinstance(rows, list) or not rows or not all(
            isinstance(r, dict) and isinstance(r.get("attack"), str)
            and isinstance(r.get("eps"), (int, float)) for r in rows):
        raise DigrError(f"--baseline {path} holds no robustness sweep (rows with attack and eps)")
    return rows
