"""Teacher training: Stable-Baselines3 PPO on digr's network, resumable, with progress.

The run folder holds::

    config.json        resolved PPOConfig + policy architecture (+ the FLS variant, if any),
                       written before the first step
    policy/            the latest digr checkpoint (what ``--policy`` takes)
    resume/            SB3 policy + optimizer state (safetensors / weights-only torch) and counters
    progress.csv       steps, wall time, steps/s, mean return, success rate per rollout
    tb/                TensorBoard event files
"""

from __future__ import annotations

import csv
import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from digr.envs import get_task, make_env
from digr.errors import DigrError
from digr.io import atomic_dir, atomic_write_json, atomic_write_text, recover_folders
from digr.models.checkpoint import save_policy
from digr.models.cnn import PolicyConfig, PolicyNet
from digr.models.fls import fls_config
from digr.provenance import software_versions
from digr.rl.config import PPOConfig
from digr.rl.sb3 import policy_from_sb3, policy_kwargs


class _Progress(BaseCallback):
    """Running return/success statistics, CSV + TensorBoard logging, checkpoints, early stop."""

    def __init__(self, run: TeacherRun, *, show: bool) -> None:
        super().__init__()
        self.run = run
        self.show = show
        self.returns: deque[float] = deque(maxlen=run.config.success_window)
        self.successes: deque[float] = deque(maxlen=run.config.success_window)
        self.episodes = 0
        self.t0 = time.time()
        self.steps0 = 0
        self.bar = None
        self.task_id = None
        self.last_ckpt = 0
        self.stop = False

    def _on_training_start(self) -> None:
        self.t0 = time.time()
        self.steps0 = self.num_timesteps
        self.last_ckpt = self.num_timesteps
        if self.show:
            from digr.progress import progress_bar

            self.bar = progress_bar("train", total=self.run.config.total_timesteps)
            self.bar.start()
            self.task_id = self.bar.add_task("train", total=self.run.config.total_timesteps,
                                             completed=self.num_timesteps, info="")

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            ep = info.get("episode")
            if ep is not None:
                self.episodes += 1
                self.returns.append(float(ep["r"]))
                if self.run.spec.has_success:  # Breakout has no success: its column stays empty
                    self.successes.append(float(info.get("success", False)))
        return not self.stop

    def stats(self) -> dict[str, float]:
        elapsed = max(time.time() - self.t0, 1e-9)
        return {
            "steps": self.num_timesteps,
            "wall_s": round(self.run.wall_before + elapsed, 1),
            "steps_per_s": round((self.num_timesteps - self.steps0) / elapsed, 1),
            "episodes": self.run.episodes_before + self.episodes,
            "mean_return": float(np.mean(self.returns)) if self.returns else float("nan"),
            "success_rate": float(np.mean(self.successes)) if self.successes else float("nan"),
        }

    def _on_rollout_end(self) -> None:
        s = self.stats()
        self.logger.record("rollout/success_rate", s["success_rate"])
        self.logger.record("time/steps_per_s", s["steps_per_s"])
        self.run.append_progress(s)
        if self.bar is not None:
            self.bar.update(self.task_id, completed=self.num_timesteps,
                            info=f"{s['steps_per_s']:.0f} steps/s  return {s['mean_return']:.3f}  "
                                 f"success {s['success_rate']:.3f}")
        cfg = self.run.config
        if (cfg.stop_at_success is not None and len(self.successes) >= cfg.success_window
                and s["success_rate"] >= cfg.stop_at_success):
            self.stop = True

    def _on_rollout_start(self) -> None:
        # Here, not at the end of a rollout: SB3 updates the policy from a rollout only after
        # on_rollout_end, so a checkpoint taken there would hold the weights from before the last
        # update, and a run resumed from it would skip that update.
        if self.num_timesteps - self.last_ckpt >= self.run.config.checkpoint_every:
            self.run.save(self.model, self.stats())
            self.last_ckpt = self.num_timesteps

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class TeacherRun:
    """One resumable PPO training run in a folder.

    ``fls``: ``None`` (the task's plain network) or an FLS variant (``sparse``, ``sparse-sum``,
    ``dense``; :func:`digr.models.fls.fls_config`) trained with the same PPO settings.
    """

    def __init__(self, task: str, out: str | Path, config: PPOConfig, *, fls: str | None = None,
                 init_from: str | Path | None = None) -> None:
        self.spec = get_task(task)
        self.out = Path(out)
        self.init_from = None if init_from is None else Path(init_from)
        self.config = config.validate()
        self.fls = fls
        self.policy_config = PolicyConfig.for_task(self.spec)
        if fls is not None:
            self.policy_config = fls_config(self.policy_config, fls)
        self.wall_before = 0.0
        self.episodes_before = 0

    # -- files -------------------------------------------------------------------------------
    def append_progress(self, row: dict[str, Any]) -> None:
        path = self.out / "progress.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)

    def save(self, model: PPO, stats: dict[str, Any]) -> None:
        """Write the digr checkpoint and the resume state (each atomically)."""
        meta = {"trainer": "sb3-ppo", "steps": int(model.num_timesteps), "seed": self.config.seed,
                "stats": stats, "ppo": self.config.to_dict()}
        if self.fls is not None:
            meta["fls"] = self.fls
        save_policy(policy_from_sb3(model.policy), self.out / "policy", task=self.spec.name, meta=meta)
        # policy/ first, then resume/ as one folder swapped in whole: a kill between the two leaves
        # resume/ one checkpoint behind (the rerun redoes those steps and writes policy/ again),
        # and never weights from one checkpoint beside the optimizer state of another.
        uniq = {k: v.detach().cpu().contiguous().clone() for k, v in _unique_state(model.policy).items()}
        optimizer_state = model.policy.optimizer.state_dict()
        with atomic_dir(self.out / "resume") as tmp:
            save_file(uniq, str(tmp / "policy.safetensors"))
            torch.save(optimizer_state, tmp / "optimizer.pt")
            (tmp / "state.json").write_text(json.dumps(
                {"num_timesteps": int(model.num_timesteps), "wall_s": stats["wall_s"],
                 "episodes": stats["episodes"]}) + "\n")

    def _check_config(self, *, write: bool) -> None:
        path = self.out / "config.json"
        want = {"task": self.spec.name, "ppo": self.config.to_dict(),
                "policy": self.policy_config.to_dict()}
        if self.fls is not None:  # plain runs keep their old config.json keys
            want["fls"] = self.fls
        if path.exists():
            have = json.loads(path.read_text())
            fixed = ("task", "policy")
            if any(have.get(k) != json.loads(json.dumps(want[k])) for k in fixed):
                was = f" (it was started with --fls {have['fls']})" if have.get("fls") else ""
                raise DigrError(f"{self.out} holds a run for another task or network{was}; "
                                "use a new --out folder")
            # Everything else may change between resumed chunks (e.g. more timesteps).
        if write:
            want["software"] = software_versions()  # of the latest (re)start; a record only
            atomic_write_json(path, want)

    # -- training -----------------------------------------------------------------------------
    def build(self) -> PPO:
        cfg = self.config
        spec = self.spec
        venv = make_vec_env(
            lambda: make_env(spec, training=True), n_envs=cfg.n_envs, seed=cfg.seed,
            vec_env_cls=SubprocVecEnv if cfg.vec_env == "subproc" else DummyVecEnv,
            monitor_kwargs=dict(info_keywords=("success",)) if spec.has_success else None,
        )
        return PPO(
            "CnnPolicy", venv,
            learning_rate=cfg.learning_rate, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
            n_epochs=cfg.n_epochs, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda,
            clip_range=cfg.clip_range, ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef,
            max_grad_norm=cfg.max_grad_norm, policy_kwargs=policy_kwargs(self.policy_config),
            tensorboard_log=str(self.out / "tb"), seed=cfg.seed, device="cpu", verbose=0,
        )

    def _trim_progress(self, last_step: int) -> None:
        """Drop progress rows past the checkpoint we resume from (and a row cut short by a kill)."""
        path = self.out / "progress.csv"
        if not path.exists():
            return
        lines = path.read_text().splitlines()
        if not lines:
            return
        width = len(lines[0].split(","))
        keep = [lines[0]] + [line for line in lines[1:] if len(line.split(",")) == width
                             and line.split(",")[0].isdigit() and int(line.split(",")[0]) <= last_step]
        if len(keep) != len(lines):
            atomic_write_text(path, "".join(f"{line}\n" for line in keep))

    def _resume(self, model: PPO, init: PolicyNet | None = None) -> None:
        recover_folders(self.out, ("resume", "policy"))
        resume = self.out / "resume"
        if not (resume / "state.json").exists():
            if init is not None:
                self._init_from_checkpoint(model, init)
            else:
                self._trim_progress(0)
            return
        try:
            state = json.loads((resume / "state.json").read_text())
            weights = load_file(str(resume / "policy.safetensors"))
            opt = torch.load(resume / "optimizer.pt", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable resume state is one clear error
            raise DigrError(f"cannot resume from {resume}: {exc}") from None
        if (not isinstance(state, dict) or any(isinstance(state.get(k), bool) for k in ("num_timesteps", "episodes"))
                or not isinstance(state.get("num_timesteps"), int) or state["num_timesteps"] < 0
                or not isinstance(state.get("episodes", 0), int)
                or not isinstance(state.get("wall_s", 0.0), (int, float))):
            raise DigrError(f"cannot resume from {resume}: state.json is not a resume state "
                            "(num_timesteps, episodes, wall_s)")
        want = _unique_state(model.policy)
        if set(weights) != set(want) or any(weights[k].shape != want[k].shape for k in want):
            # strict=False below only lets shared tensors be named once; anything else is foreign
            raise DigrError(f"cannot resume from {resume}: policy.safetensors does not hold this run's "
                            "network (other or missing tensors); use a new --out folder")
        model.policy.load_state_dict(weights, strict=False)
        model.policy.optimizer.load_state_dict(opt)
        model.num_timesteps = int(state["num_timesteps"])
        self._trim_progress(model.num_timesteps)
        self.wall_before = float(state.get("wall_s", 0.0))
        self.episodes_before = int(state.get("episodes", 0))

    def _load_init(self) -> PolicyNet:
        """The ``init_from`` checkpoint, refused unless it is this run's network."""
        from digr.models.checkpoint import load_policy

        policy = load_policy(self.init_from, task=self.spec.name)
        if policy.config.to_dict() != self.policy_config.to_dict():
            raise DigrError(f"--init-from {self.init_from}: its network differs from this run's "
                            f"({policy.config.to_dict()} vs {self.policy_config.to_dict()})")
        return policy

    def _init_from_checkpoint(self, model: PPO, policy: PolicyNet) -> None:
        """Start from a digr checkpoint's weights (actor, critic and trunk) with a fresh optimizer.

        For continuing a run whose resume state is gone (only ``policy/`` was kept, e.g. a
        committed teacher): the step count, wall time and episode count go on from the
        checkpoint's ``meta``; Adam's moments start again from zero, so the continuation is not
        bit-identical to an uninterrupted run (the first updates are Adam's bias-corrected ones).
        """
        from digr.models.checkpoint import read_config

        model.policy.features_extractor.trunk.load_state_dict(policy.trunk.state_dict())  # build()'s SB3Trunk
        model.policy.action_net.load_state_dict(policy.pi.state_dict())
        model.policy.value_net.load_state_dict(policy.v.state_dict())
        meta = read_config(self.init_from).get("meta") or {}
        steps, stats = meta.get("steps", 0), meta.get("stats") or {}
        model.num_timesteps = steps if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0 else 0
        self._trim_progress(model.num_timesteps)
        wall, episodes = stats.get("wall_s", 0.0), stats.get("episodes", 0)
        self.wall_before = float(wall) if isinstance(wall, (int, float)) and not isinstance(wall, bool) else 0.0
        self.episodes_before = episodes if isinstance(episodes, int) and not isinstance(episodes, bool) else 0

    def train(self, *, show_progress: bool = True) -> dict[str, Any]:
        """Train (or continue) until ``total_timesteps``; returns the final statistics."""
        from digr.io import claim_folder

        claim_folder(self.out, "teacher run")
        # a wrong --init-from fails before the run folder is made
        init = self._load_init() if self.init_from is not None else None
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_config(write=False)
        torch.set_num_threads(self.config.torch_threads)
        model = self.build()
        self._resume(model, init)  # a resume state that cannot be used is refused before anything is written
        self._check_config(write=True)
        remaining = self.config.total_timesteps - model.num_timesteps
        cb = _Progress(self, show=show_progress)
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=cb, reset_num_timesteps=False,
                        tb_log_name="ppo", progress_bar=False)
        stats = cb.stats() if cb.episodes else {"steps": model.num_timesteps}
        if remaining > 0 or not (self.out / "policy").exists():
            self.save(model, {**dict(wall_s=self.wall_before, episodes=self.episodes_before), **stats})
        model.get_env().close()
        return stats


def _unique_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict with each tensor once: SB3's shared features extractor appears
    under several names, and safetensors refuses to store shared memory twice."""
    seen, uniq = set(), {}
    for k, v in module.state_dict().items():
        if v.data_ptr() not in seen:
            seen.add(v.data_ptr())
            uniq[k] = v
    return uniq


def train_teacher(task: str, out: str | Path, config: PPOConfig, *, show_progress: bool = True,
                  fls: str | None = None, init_from: str | Path | None = None) -> dict[str, Any]:
    """Train a PPO teacher for ``task`` into the run folder ``out`` (resuming if possible);
    ``fls`` picks an FLS variant of the task's network; ``init_from`` a digr checkpoint to start
    from when ``out`` holds no resume state (see :meth:`TeacherRun._init_from_checkpoint`)."""
    return TeacherRun(task, out, config, fls=fls, init_from=init_from).train(show_progress=show_progress)
