"""DIGR student training (paper section 3, Figure 2): distillation + selective IGR, with PCGrad.

Read top to bottom, one update is:

1. the student, as the control policy, takes one sampled action in each of ``n_envs`` envs and
   the visited states go into the FIFO online buffer (Figure 2);
2. a distillation batch is drawn from the buffer and labelled by the teacher on the fly;
   an IGR batch (states + teacher perturbation maps) is drawn from the offline dataset D;
3. the gradients of ``IGR`` (eq. 4) and of ``alpha * KL`` (eq. 5) are computed separately,
   combined with PCGrad and applied with the task's optimizer (Table 3).

The run folder holds::

    config.json      resolved DistillConfig, teacher/dataset hashes; written before the first step
    policy/          the latest student as a digr checkpoint (what --policy takes)
    resume/          student weights (safetensors), optimizer state (weights-only torch.save),
                     state.json (step, wall time, last evaluation); replaced atomically as a folder
    metrics.jsonl    one JSON object per log row: step, wall_s, distill/kl, distill/igr,
                     pcgrad/conflict_frac, ... and eval/success_rate, eval/mean_return when evaluated

Rerunning with the same folder continues from the last checkpoint (the buffer is refilled by the
student; batch sampling and env seeds are derived from ``(seed, step)``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from digr import __version__
from digr.distill.buffer import StateBuffer
from digr.distill.config import RESUMABLE_FIELDS, DistillConfig
from digr.distill.dataset import SaliencyDataset, load_dataset
from digr.distill.distiller import Distiller, init_student
from digr.envs import get_task, make_env
from digr.errors import DigrError, check_int
from digr.io import atomic_dir, atomic_write_json, atomic_write_text, claim_folder, recover_folders
from digr.models.checkpoint import file_digest, load_policy, resolve, save_policy
from digr.models.cnn import PolicyConfig, PolicyNet, to_tensor
from digr.provenance import software_versions

METRICS_NAME = "metrics.jsonl"


def _dataset_digest(data: SaliencyDataset) -> str:
    shards = [r.get("sha256") for r in data.manifest["shards"]]
    return hashlib.sha256(json.dumps(shards).encode()).hexdigest()


def _check_run_config(out: Path, info: dict[str, Any]) -> None:
    """Refuse a run folder made for another teacher, dataset, task or fixed setting."""
    path = out / "config.json"
    if not path.exists():
        return
    try:
        have = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        # Never rewrite it: the settings it held decide whether the run may continue.
        raise DigrError(f"{path} is unreadable ({type(exc).__name__}); the run's settings are unknown, "
                        "so it cannot be continued: use a new --out folder") from None
    if not isinstance(have, dict) or not isinstance(have.get("distill"), dict):
        raise DigrError(f"{path} is not a student run's config; use a new --out folder")
    diffs = [k for k in ("task", "teacher_sha256", "dataset_sha256", "policy", "init_sha256")
             if have.get(k) != info.get(k)]
    old = have.get("distill", {})
    diffs += [f"distill.{k}" for k, v in info["distill"].items()
              if k not in RESUMABLE_FIELDS and k in old and old[k] != v]
    if diffs:
        raise DigrError(f"{out} holds a student run with other settings ({', '.join(diffs)}); "
                        "use a new --out folder")


def init_weights(source: PolicyNet, student_config: PolicyConfig, path: Path) -> dict[str, torch.Tensor]:
    """The student's starting weights taken from ``source`` (see ``train_student``'s ``init``)."""
    if replace(source.config, input_blur=student_config.input_blur,
               softplus_beta=student_config.softplus_beta) == student_config:
        # neither the blur nor the units' kind has weights: the networks share every tensor
        return {k: v.detach().clone() for k, v in source.state_dict().items()}
    if student_config.input_pool > 1:
        from digr.models.cnn import pooled_state_dict, pooled_student_config

        try:  # refused when the source already pools or its first layer does not divide
            folded = (replace(pooled_student_config(source.config, student_config.input_pool),
                              input_blur=student_config.input_blur,
                              softplus_beta=student_config.softplus_beta) == student_config)
        except DigrError:
            folded = False
        if folded:
            return pooled_state_dict(source, student_config.input_pool)
    raise DigrError(f"--init {path}: its architecture does not match the student's (it must be the "
                    "student's own, or the unpooled network of a --student-input-pool student)")


def _write_resume(out: Path, student: PolicyNet, optimizer: torch.optim.Optimizer,
                  state: dict[str, Any]) -> None:
    """Replace ``out/resume`` with a consistent (weights, optimizer, state) triple, atomically."""
    with atomic_dir(out / "resume") as tmp:  # an old folder is kept as .resume.old until the swap
        save_file({k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()},
                  str(tmp / "student.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")


def _load_resume(out: Path, student: PolicyNet, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    recover_folders(out, ("resume", "policy"))
    dest = out / "resume"
    if not (dest / "state.json").exists():
        return None
    try:
        state = json.loads((dest / "state.json").read_text())
        student.load_state_dict(load_file(str(dest / "student.safetensors")), strict=True)
        optimizer.load_state_dict(torch.load(dest / "optimizer.pt", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - any unreadable resume state is one clear error
        raise DigrError(f"cannot resume from {dest}: {exc}") from None
    import numbers

    if (not isinstance(state, dict) or isinstance(state.get("step"), bool)
            or not isinstance(state.get("step"), int) or state["step"] < 0
            or not isinstance(state.get("wall_s", 0.0), numbers.Real) or not isinstance(state.get("last", {}), dict)):
        raise DigrError(f"cannot resume from {dest}: state.json is not a resume state (step, wall_s, last)")
    state.setdefault("wall_s", 0.0)
    state.setdefault("last", {})
    return state


def _trim_metrics(path: Path, last_step: int) -> None:
    """Drop log rows past the checkpoint we resume from (and a row cut short by a kill)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if int(row.get("step", -1)) <= last_step:
            keep.append(line)
    atomic_write_text(path, "".join(f"{line}\n" for line in keep))


# -- the training loop -----------------------------------------------------------------------------
class Rollouts:
    """``n_envs`` environments stepped by the student: each action is sampled from its distribution,
    or with probability ``greedy`` its most likely one (``DistillConfig.rollout_greedy``); with
    probability ``teacher_prob`` the step is the ``teacher``'s most likely action instead
    (``DistillConfig.rollout_teacher``, DAgger's mixture)."""

    def __init__(self, task: str, n_envs: int, *, rng: np.random.Generator, greedy: float = 0.0,
                 teacher: PolicyNet | None = None, teacher_prob: float = 0.0) -> None:
        self.spec = get_task(task)
        self.greedy = greedy
        self.teacher = teacher
        self.teacher_prob = teacher_prob if teacher is not None else 0.0
        self.rng = rng
        self.envs = [make_env(self.spec) for _ in range(n_envs)]
        self.obs = [env.reset(seed=int(rng.integers(2**31)))[0] for env in self.envs]

    def step(self, student: PolicyNet, *, generator: torch.Generator) -> torch.Tensor:
        """One action per env; returns the states acted on: ``(n_envs, C, H, W) uint8``."""
        raw = np.stack(self.obs)
        x = to_tensor(raw, self.spec.obs_shape)
        with torch.no_grad():
            probs = torch.softmax(student(x), -1)
        actions = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        # No extra draws when an option is 0, so the paper's runs keep their random stream.
        if self.greedy > 0:
            take = torch.rand(len(actions), generator=generator) < self.greedy
            actions = torch.where(take, probs.argmax(-1), actions)
        if self.teacher_prob > 0:
            take = torch.rand(len(actions), generator=generator) < self.teacher_prob
            with torch.no_grad():
                actions = torch.where(take, self.teacher(x).argmax(-1), actions)
        actions = actions.tolist()
        for i, (env, a) in enumerate(zip(self.envs, actions)):
            o, _, term, trunc, _ = env.step(a)
            if term or trunc:
                o, _ = env.reset(seed=int(self.rng.integers(2**31)))
            self.obs[i] = o
        return torch.from_numpy(raw).permute(0, 3, 1, 2).contiguous()

    def close(self) -> None:
        for env in self.envs:
            env.close()


def annealed_lr(cfg: DistillConfig, step: int) -> float:
    """The learning rate of update ``step`` (0-based) under ``cfg.lr_anneal``: linear from
    ``cfg.learning_rate`` at step 0 to ``cfg.learning_rate / cfg.steps`` at the last update."""
    return cfg.learning_rate * (1.0 - step / cfg.steps)


def train_student(
    teacher: str | Path | PolicyNet,
    dataset: str | Path | None,
    task: str,
    out: str | Path,
    config: DistillConfig | None = None,
    *,
    init: str | Path | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Train (or continue training) a DIGR student of ``teacher`` into the run folder ``out``.

    ``teacher``: a checkpoint (or run) folder, or an in-memory :class:`PolicyNet` (saved as
    ``out/teacher`` first).

    ``dataset`` is the folder made by :func:`digr.distill.dataset.build_dataset` for this teacher
    and task (may be None with ``config.use_igr=False``, the distillation-only baseline).
    ``config`` defaults to the task's default recipe (``DistillConfig.for_task(spec)``). ``init``
    (a policy checkpoint; default: the teacher when ``config.warm_start``) warm-starts
    the student from its weights instead of a fresh initialisation: the checkpoint must have the
    student's architecture, or be its unpooled base when the student pools its input (weights then
    folded by :func:`digr.models.cnn.pooled_state_dict`). A resumed run ignores ``init``'s weights
    but must name the same checkpoint. Returns the final statistics: ``steps``,
    ``wall_s``, the last log window's ``distill/kl``, ``distill/igr``, ``pcgrad/conflict_frac``,
    the last ``eval/success_rate`` and ``eval/mean_return``, and ``policy`` (the checkpoint path).
    """
    spec = get_task(task)
    cfg = (config or DistillConfig.for_task(spec)).validate()
    if not cfg.use_igr and cfg.alpha == 0:
        raise DigrError("alpha must be > 0 without IGR: the distillation term would have no weight")
    out = Path(out)
    if isinstance(teacher, torch.nn.Module):  # in memory: saved into the run folder, then as any checkpoint
        from digr.models.checkpoint import as_checkpoint

        claim_folder(out, "student run")
        teacher = as_checkpoint(teacher, out, task=spec.name)
    teacher_path = resolve(teacher)
    teacher_net = load_policy(teacher_path, task=spec.name)
    data: SaliencyDataset | None = None
    if cfg.use_igr:
        if dataset is None:
            raise DigrError("DIGR needs the teacher's saliency dataset (--dataset); "
                            "use --no-igr for policy distillation only")
        data = load_dataset(dataset, teacher=teacher_path, task=spec.name, policy=teacher_net)
    student_config = teacher_net.config
    if cfg.student_fls is not None:
        from digr.models.fls import fls_config

        student_config = fls_config(teacher_net.config, cfg.student_fls)
    if cfg.student_input_pool != 1:
        from digr.models.cnn import pooled_student_config

        student_config = pooled_student_config(student_config, cfg.student_input_pool)
    if cfg.student_input_blur > 0:
        student_config = replace(student_config, input_blur=float(cfg.student_input_blur)).validate()
    if cfg.student_softplus > 0:
        student_config = replace(student_config, softplus_beta=float(cfg.student_softplus)).validate()
    info = {
        "digr_version": __version__, "task": spec.name, "teacher": str(teacher_path),
        "teacher_sha256": file_digest(teacher_path),
        "dataset": str(dataset) if data is not None else None,
        "dataset_sha256": _dataset_digest(data) if data is not None else None,
        "policy": student_config.to_dict(), "distill": cfg.to_dict(),
        "software": software_versions(),  # of the latest (re)start; a record, never compared
    }
    init_state = None
    if init is None and cfg.warm_start:
        init = teacher_path
    if init is not None:
        init_path = resolve(init)
        init_state = init_weights(load_policy(init_path, task=spec.name), student_config, init_path)
        # Only runs with a warm start carry these keys, so older run folders still resume.
        info.update({"init": str(init_path), "init_sha256": file_digest(init_path)})
    info = json.loads(json.dumps(info))  # tuples -> lists, as they come back from config.json
    if cfg.use_igr and cfg.igr_normalizer == "topk":  # refused here, not at the first update's output
        check_int("igr_topk", cfg.igr_topk, maximum=spec.obs_shape[1] * spec.obs_shape[2])
    claim_folder(out, "student run")
    out.mkdir(parents=True, exist_ok=True)
    _check_run_config(out, info)
    atomic_write_json(out / "config.json", info)
    if cfg.torch_threads is not None:
        torch.set_num_threads(cfg.torch_threads)

    student = init_student(student_config, seed=cfg.seed)
    if init_state is not None:
        student.load_state_dict(init_state, strict=True)
    distiller = Distiller(student, config=cfg)
    state = _load_resume(out, student, distiller.optimizer) or {"step": 0, "wall_s": 0.0, "last": {}}
    step = int(state["step"])
    kind = "digr" if cfg.use_igr else "distill-only"

    saved: dict[str, Any] = {}  # what the last checkpoint recorded, which a finished rerun returns

    def checkpoint(last: dict[str, Any], wall: float) -> None:
        st = {"step": step, "wall_s": round(wall, 3), "last": last}
        saved.update(st)
        # policy/ first: a kill between the two saves leaves resume/ one checkpoint behind, and the
        # rerun redoes those updates and writes policy/ again (the other order could leave
        # policy/ behind for good once resume/ says the last step is done).
        save_policy(student, out / "policy", task=spec.name, meta={
            "trainer": kind, "steps": step, "seed": cfg.seed, "teacher_sha256": info["teacher_sha256"],
            "dataset_sha256": info["dataset_sha256"], "distill": info["distill"], "stats": last,
            **({"init_sha256": info["init_sha256"]} if "init_sha256" in info else {})})
        _write_resume(out, student, distiller.optimizer, st)

    if step >= cfg.steps:
        if not (out / "policy").exists():
            checkpoint(state["last"], state["wall_s"])
        return {"steps": step, "wall_s": state["wall_s"], **state["last"], "policy": str(out / "policy")}

    _trim_metrics(out / METRICS_NAME, step)
    # Seeds derived from (seed, step): a resumed run draws fresh, reproducible batches and episodes.
    ss = np.random.SeedSequence([cfg.seed, step])
    rng = np.random.default_rng(ss.spawn(1)[0])
    gen = torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0] % 2**63))
    rollouts = Rollouts(spec.name, cfg.n_envs, rng=rng, greedy=cfg.rollout_greedy, teacher=teacher_net,
                        teacher_prob=cfg.rollout_teacher)
    buffer = StateBuffer(cfg.buffer_size, spec.obs_shape)
    while len(buffer) < cfg.batch_size:  # refill (or fill) before the first update
        buffer.add(rollouts.step(student, generator=gen))

    last: dict[str, Any] = dict(state["last"])
    window: dict[str, list[float]] = defaultdict(list)
    t0 = time.time()
    wall = lambda: state["wall_s"] + time.time() - t0
    bar = task_id = None
    if show_progress:
        from digr.progress import progress_bar

        bar = progress_bar(kind, total=cfg.steps)
        bar.start()
        task_id = bar.add_task(kind, total=cfg.steps, completed=step, info="")
    metrics_file = open(out / METRICS_NAME, "a")
    try:
        while step < cfg.steps:
            buffer.add(rollouts.step(student, generator=gen))
            obs = buffer.sample(cfg.batch_size, generator=gen)
            with torch.no_grad():
                teacher_probs = torch.softmax(teacher_net(obs), -1)
            igr_obs = igr_maps = None
            if data is not None:
                idx = torch.randint(len(data), (cfg.batch_size,), generator=gen)
                igr_obs, igr_maps = data.obs(idx), data.maps[idx]
            if cfg.lr_anneal:
                for group in distiller.optimizer.param_groups:
                    group["lr"] = annealed_lr(cfg, step)
            for k, v in distiller.update(obs, teacher_probs, igr_obs=igr_obs, igr_maps=igr_maps,
                                         generator=gen).items():
                window[k].append(v)
            step += 1

            evaluate = cfg.eval_episodes > 0 and (
                step == cfg.steps or (cfg.eval_every > 0 and step % cfg.eval_every == 0))
            if evaluate or step % cfg.log_every == 0 or step == cfg.steps:
                row: dict[str, Any] = {"step": step}
                # Window means; a metric undefined on every step of the window is logged as null.
                row.update({k: float(np.nanmean(v)) if not np.isnan(v).all() else None
                            for k, v in window.items()})
                window.clear()
                if evaluate:
                    from digr.evaluation.performance import evaluate_policy

                    ev = evaluate_policy(student, spec.name, episodes=cfg.eval_episodes, seed=cfg.eval_seed)
                    row["eval/success_rate"] = ev["success_rate"]
                    row["eval/mean_return"] = ev["mean_return"]
                row["wall_s"] = round(wall(), 3)
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
                last.update({k: v for k, v in row.items() if k not in ("step", "wall_s")})
                if bar is not None:
                    bar.update(task_id, completed=step, info=_progress_info(last, cfg.use_igr))
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                checkpoint(last, wall())
    finally:
        metrics_file.close()
        rollouts.close()
        if bar is not None:
            bar.stop()
    wall_s = saved["wall_s"] if saved.get("step") == step else round(wall(), 3)
    return {"steps": step, "wall_s": wall_s, **last, "policy": str(out / "policy")}


def _progress_info(last: dict[str, Any], use_igr: bool) -> str:
    def fmt(key: str, spec: str) -> str:
        v = last.get(key)
        return "-" if v is None else format(v, spec)

    parts = [f"kl {fmt('distill/kl', '.4f')}"]
    if use_igr:
        parts += [f"igr {fmt('distill/igr', '.4f')}", f"conflict {fmt('pcgrad/conflict_frac', '.2f')}"]
    if last.get("eval/success_rate") is not None:
        parts.append(f"success {last['eval/success_rate']:.2f}")
    elif "eval/mean_return" in last:
        parts.append(f"return {last['eval/mean_return']:.2f}")
    return "  ".join(parts)


__all__ = ["METRICS_NAME", "annealed_lr", "train_student"]
