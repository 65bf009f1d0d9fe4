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

from typing import Any, Iterable, Sequence

import torch

from digr.attacks import ATTACK_NAMES, check_eps, get_attack, resolve_attack_name
from digr.errors import DigrError, check_int
from digr.evaluation.performance import evaluate_policy
from digr.evaluation.settings import RobustnessConfig, check_surrogate_softplus
from digr.models.cnn import PolicyNet, smooth_surrogate

DEFAULT_EPS: tuple[float, ...] = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)
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
    # (attack, eps > 0).
    distinct_eps = list(dict.fromkeys(eps_list))
    points = [(names[0], 0.0)] if 0.0 in distinct_eps else []
    points += [(name, eps) for name in dict.fromkeys(names) for eps in distinct_eps if eps > 0.0]
    jobs = [(task, name, eps, episodes, seed, n_envs, surrogate, attack_settings) for name, eps in points]
    from digr.parallel import ParallelConfig, run_units

    parallel = ParallelConfig(ray=workers > 1 and len(jobs) > 1, workers=workers)
    by_point = {}
    for row in run_units(_sweep_point, jobs, shared=policy, parallel=parallel):  # any order with Ray
        by_point[(row["attack"], float(row["eps"]))] = row
    results = [by_point[(name, float(eps))] for name, eps in points]
    done = dict(zip(points, results))
    clean = next((row for (_, e), row in done.items() if e == 0.0), None)
    rows: list[dict[str, Any]] = []
    for name in names:
        for eps in eps_list:
            rows.append({**clean, "attack": name} if eps == 0.0 else done[(name, eps)])
    return rows
