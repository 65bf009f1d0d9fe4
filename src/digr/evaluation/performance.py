"""Task performance of a policy: success rate and return over seeded episodes."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from digr.envs import get_task, make_env
from digr.errors import DigrError
from digr.models.cnn import PolicyNet, to_tensor

ObsHook = Callable[[torch.Tensor], torch.Tensor]
"""Maps the policy input ``(B, C, H, W) float in [0, 1]`` to the input actually used (attacks)."""


def uniform_policy(config) -> PolicyNet:
    """A policy with ``config``'s shapes whose action distribution is uniform on every input (zero
    policy head): evaluated with ``deterministic=False`` it is the chance level of a task."""
    policy = PolicyNet(config)
    with torch.no_grad():
        policy.pi.weight.zero_()
        policy.pi.bias.zero_()
    return policy.eval()


def evaluate_policy(
    policy: PolicyNet,
    task: str,
    *,
    episodes: int,
    seed: int = 0,
    deterministic: bool = True,
    n_envs: int = 8,
    obs_hook: ObsHook | None = None,
) -> dict[str, float | int | None]:
    """Run ``episodes`` episodes; episode ``k`` resets its env with ``seed + k``.

    Episodes are stepped ``n_envs`` at a time with one batched forward. The result depends only
    on the policy, the task, ``episodes`` and ``seed`` (greedy actions by default; sampled actions
    use a generator seeded with ``seed``). ``obs_hook`` lets the robustness evaluation attack
    each observation before the policy acts.

    Returns ``success_rate`` (``None`` where the task has no success), ``mean_return``,
    ``std_return``, ``mean_length``, ``episodes`` and ``action_freq`` (the share of all steps on
    which each action was taken, ``n_actions`` floats: a policy that always takes one action
    shows it at a glance).
    """
    from digr.errors import MAX_EPISODES, MAX_SEED, check_int

    episodes = check_int("episodes", episodes, maximum=MAX_EPISODES)
    seed = check_int("seed", seed, minimum=0, maximum=MAX_SEED)
    spec = get_task(task)
    if tuple(policy.config.obs_shape) != tuple(spec.obs_shape):
        raise DigrError(f"policy expects observations {policy.config.obs_shape}, task {task!r} "
                        f"gives {spec.obs_shape}")
    gen = torch.Generator().manual_seed(seed)
    n_envs = min(n_envs, episodes)
    envs = [make_env(spec) for _ in range(n_envs)]
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=int)
    success = np.zeros(episodes, dtype=bool)
    action_counts = np.zeros(spec.n_actions, dtype=np.int64)
    next_ep = 0
    slot_ep: list[int | None] = [None] * n_envs
    obs: list[np.ndarray | None] = [None] * n_envs
    for i, env in enumerate(envs):
        obs[i], _ = env.reset(seed=seed + next_ep)
        slot_ep[i] = next_ep
        next_ep += 1
    policy.eval()
    while any(e is not None for e in slot_ep):
        live = [i for i, e in enumerate(slot_ep) if e is not None]
        x = to_tensor(np.stack([obs[i] for i in live]), spec.obs_shape)
        if obs_hook is not None:
            x = obs_hook(x)
        with torch.no_grad():
            logits = policy(x)
        if deterministic:
            actions = logits.argmax(-1)
        else:
            actions = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(-1)
        for i, a in zip(live, actions.tolist()):
            action_counts[a] += 1
            o, r, term, trunc, info = envs[i].step(a)
            ep = slot_ep[i]
            returns[ep] += r
            lengths[ep] += 1
            if term or trunc:
                success[ep] = bool(info.get("success", False))
                if next_ep < episodes:
                    o, _ = envs[i].reset(seed=seed + next_ep)
                    slot_ep[i] = next_ep
                    next_ep += 1
                else:
                    slot_ep[i] = None
            obs[i] = o
    for env in envs:
        env.close()
    return {
        "success_rate": float(success.mean()) if spec.has_success else None,
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "mean_length": float(lengths.mean()),
        "episodes": int(episodes),
        "seed": int(seed),
        "deterministic": bool(deterministic),
        "action_freq": [round(float(c), 6) for c in action_counts / max(int(action_counts.sum()), 1)],
    }
