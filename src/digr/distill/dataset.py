"""The offline perturbation-saliency dataset D of DIGR (paper section 3, before eq. 5).

States come from the teacher's own rollouts (``s ~ d_{pi_t}``); each is stored with the teacher's
Gaussian-blur perturbation map ``M_p`` (eq. 3) and its action probabilities. Computing ``M_p``
costs one teacher forward per perturbed pixel, which is why the paper builds D once, offline.

Folder layout::

    manifest.json         task, teacher sha256, settings, shapes, dtypes, the complete shards,
                          the software that started it (``digr.provenance``)
    shard-00000.npz       states (n, C, H, W) uint8, maps (n, H, W) float32, probs (n, A) float32
    shard-00001.npz       ...

How states are chosen: shard ``i`` runs its own episodes with the generator
``SeedSequence([seed, i])``: episodes reset with seeds drawn from it, the teacher's actions are
*sampled* from its distribution (greedy rollouts of a good teacher revisit a few trajectories),
and each visited state is kept with probability ``keep_prob`` (and only once per shard) until
the shard has its ``n`` states. A shard therefore depends only on (teacher, task, settings, i):
shards can be made in any order, by any worker, and a rerun after an interruption gives the same final dataset as an
uninterrupted run, with the same code and packages: the same command has given other digests in
later sessions of this project, which is why the manifest records the packages' versions.

Every shard is written to a temporary file and renamed into place; the manifest is rewritten
(atomically) after each shard, so a killed run leaves only complete shards behind.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from digr import __version__
from digr.distill.config import DatasetConfig
from digr.envs import get_task
from digr.errors import DigrError, check_int
from digr.io import atomic_write, atomic_write_json, claim_folder, read_versioned_json
from digr.models.checkpoint import file_digest, load_policy, policy_blob, policy_from_blob, resolve
from digr.models.cnn import PolicyNet
from digr.parallel import ParallelConfig, run_units
from digr.provenance import software_versions
from digr.rl.rollouts import collect_states

FORMAT = "digr-saliency-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = ("states", "maps", "probs")

SaliencyFn = Callable[..., torch.Tensor]
"""``fn(policy, obs (B, C, H, W) float in [0, 1], *, radius, stride, truncate) -> (B, H, W) float in [0, 1]``.

The default is :func:`digr.saliency.perturbation.perturbation_saliency`. With several workers the
function is sent to them by reference, so it must be importable (a module-level function)."""

_IDENTITY = ("task", "teacher_sha256", "saliency", "size", "radius", "stride", "truncate", "shard_size",
             "seed", "keep_prob")
"""Manifest keys that must match for a rerun to continue an existing dataset folder."""


@dataclass(frozen=True)
class SaliencyDataset:
    """A loaded dataset D (all shards concatenated in order)."""

    states: torch.Tensor
    """``(N, C, H, W) uint8`` observations, in the policy's channel-first layout."""
    maps: torch.Tensor
    """``(N, H, W) float32 in [0, 1]``: the teacher's perturbation saliency ``M_p`` (eq. 3)."""
    probs: torch.Tensor
    """``(N, A) float32``: the teacher's action probabilities ``pi_t(.|s)``."""
    manifest: dict[str, Any]
    """The dataset's ``manifest.json``."""

    def __len__(self) -> int:
        return int(self.states.shape[0])

    def obs(self, index: torch.Tensor | slice) -> torch.Tensor:
        """Policy input for ``index``: ``(B, C, H, W) float32 in [0, 1]`` (as :func:`to_tensor`)."""
        return self.states[index].float().div_(255.0)


# -- small file helpers ----------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


def shard_plan(size: int, shard_size: int) -> list[tuple[int, int]]:
    """``[(shard index, states in it), ...]`` covering ``size`` states."""
    return [(i, min(shard_size, size - i * shard_size)) for i in range(math.ceil(size / shard_size))]


def _saliency_name(fn: SaliencyFn) -> str:
    return f"{fn.__module__}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _default_saliency() -> SaliencyFn:
    from digr.saliency.perturbation import perturbation_saliency

    return perturbation_saliency


# -- making one shard ------------------------------------------------------------------------------
def _shard_arrays(job: dict[str, Any], teacher: PolicyNet | dict[str, Any]) -> dict[str, Any]:
    """States, perturbation maps and teacher probabilities of shard ``job["index"]``: one unit of
    :func:`digr.parallel.run_units`, run here or as a Ray task (``teacher`` then by content)."""
    if isinstance(teacher, dict):
        teacher = policy_from_blob(teacher)
    rng = np.random.default_rng(np.random.SeedSequence([job["seed"], job["index"]]))
    states, probs = collect_states(teacher, job["task"], job["count"], rng=rng, keep_prob=job["keep_prob"])
    saliency = job["saliency"] or _default_saliency()
    maps = []
    for start in range(0, len(states), 16):  # a few states per call keeps peak memory small
        x = torch.from_numpy(states[start:start + 16]).float().div_(255.0)
        m = saliency(teacher, x, radius=job["radius"], stride=job["stride"], truncate=job["truncate"])
        maps.append(torch.as_tensor(m).detach().float().cpu().numpy())
    maps_np = np.concatenate(maps)
    if maps_np.shape != (len(states), *states.shape[2:]) or not np.isfinite(maps_np).all():
        raise DigrError(f"saliency function returned maps {maps_np.shape} (finite: "
                        f"{bool(np.isfinite(maps_np).all())}), expected {(len(states), *states.shape[2:])}")
    maps_np = np.clip(maps_np, 0.0, 1.0).astype(np.float32)
    return {"index": job["index"], "states": states, "maps": maps_np, "probs": probs}


def _write_shard(out: Path, arrays: dict[str, Any]) -> dict[str, Any]:
    """Write one shard atomically (in the driver, whichever node made it); its manifest record."""
    name = shard_name(arrays["index"])

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # an open file: np.savez* would add ".npz" to the temp name
            np.savez_compressed(f, states=arrays["states"], maps=arrays["maps"], probs=arrays["probs"])
            f.flush()
            os.fsync(f.fileno())

    atomic_write(out / name, write)
    return {"index": arrays["index"], "file": name, "count": int(len(arrays["states"])),
            "sha256": _sha256(out / name)}


def _read_shard(path: Path, *, count: int | None = None) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DigrError(f"dataset shard {path} is unreadable ({exc})") from None
    if count is not None and any(len(a) != count for a in arrays.values()):
        raise DigrError(f"dataset shard {path} holds {len(arrays['states'])} states, "
                        f"the manifest says {count}")
    return arrays


# -- building --------------------------------------------------------------------------------------
def build_dataset(
    teacher: str | Path | PolicyNet,
    task: str,
    out: str | Path,
    config: DatasetConfig | None = None,
    *,
    workers: int | None = None,
    show_progress: bool = False,
    saliency: SaliencyFn | None = None,
    parallel: ParallelConfig | None = None,
) -> dict[str, Any]:
    """Make (or finish) the dataset D of ``teacher`` for ``task`` in the folder ``out``.

    ``teacher``: a checkpoint (or run) folder, or an in-memory :class:`PolicyNet`, which is then
    saved as ``out/teacher`` and recorded by its digest like any checkpoint.

    ``config`` defaults to the task's Table 3 size and appendix A radius. Shards are independent
    units (:mod:`digr.parallel`): made one after the other here, or as Ray tasks with ``parallel``
    (``workers > 1`` alone means a local Ray with that many CPUs). Each shard has its own seed, so
    the dataset is the same either way. A folder that already holds part of the same dataset is
    continued; one made with another teacher or other settings is a :class:`DigrError`. Returns
    the final manifest.
    """
    from digr.models.checkpoint import as_checkpoint

    spec = get_task(task)
    config = (config or DatasetConfig.for_task(spec)).validate()
    out = Path(out)
    if not isinstance(teacher, torch.nn.Module):
        load_policy(resolve(teacher), task=spec.name)  # a bad teacher fails before the folder is claimed
    fn = saliency or _default_saliency()
    out = claim_folder(out, "dataset")
    out.mkdir(parents=True, exist_ok=True)
    teacher_path = as_checkpoint(teacher, out, task=spec.name)
    policy = load_policy(teacher_path, task=spec.name)
    c, h, w = spec.obs_shape
    identity = {
        "task": spec.name, "teacher_sha256": file_digest(teacher_path), "saliency": _saliency_name(fn),
        "size": config.size, "radius": config.radius, "stride": config.stride, "truncate": config.truncate,
        "shard_size": config.shard_size, "seed": config.seed, "keep_prob": config.keep_prob,
    }
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        manifest = _read_manifest(out)
        diff = [k for k in _IDENTITY if manifest.get(k) != identity[k]]
        if diff:
            raise DigrError(f"{out} holds a dataset made with other settings ("
                            + ", ".join(f"{k}: {manifest.get(k)!r} there, {identity[k]!r} now" for k in diff)
                            + "); use a new --out folder")
    else:
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "digr_version": __version__,
            **identity, "teacher": str(teacher_path), "score": "kl",
            "shapes": {"states": [c, h, w], "maps": [h, w], "probs": [spec.n_actions]},
            "dtypes": {"states": "uint8", "maps": "float32", "probs": "float32"},
            "count": 0, "complete": False, "shards": [],
            # the first start's; a rebuild whose digests differ can say which package moved
            "software": software_versions(),
        }
        atomic_write_json(manifest_path, manifest)
    for stale in out.glob(".shard-*.tmp*"):  # temp files of a killed run
        stale.unlink(missing_ok=True)

    plan = shard_plan(config.size, config.shard_size)
    records = {int(r["index"]): r for r in manifest["shards"]}

    def commit(rec: dict[str, Any]) -> None:
        records[int(rec["index"])] = rec
        manifest["shards"] = [records[i] for i in sorted(records)]
        manifest["count"] = int(sum(r["count"] for r in manifest["shards"]))
        manifest["complete"] = len(records) == len(plan)
        atomic_write_json(manifest_path, manifest)

    # A shard renamed into place just before a kill may be missing from the manifest: adopt it.
    for i, n in plan:
        path = out / shard_name(i)
        if i not in records and path.exists():
            try:
                _read_shard(path, count=n)
            except DigrError:
                path.unlink()
                continue
            commit({"index": i, "file": path.name, "count": n, "sha256": _sha256(path)})
    todo = [(i, n) for i, n in plan if i not in records]
    job = {"task": spec.name, "seed": config.seed, "radius": config.radius, "stride": config.stride,
           "truncate": config.truncate, "keep_prob": config.keep_prob, "saliency": saliency}
    jobs = [{**job, "index": i, "count": n} for i, n in todo]
    if parallel is None:
        workers = check_int("workers", workers if workers is not None else 1, maximum=4096)
        parallel = ParallelConfig(ray=workers > 1, workers=workers if workers > 1 else None)

    bar = None
    if show_progress:
        from digr.progress import progress_bar

        bar = progress_bar("dataset", total=config.size, unit="states")
        bar.start()
        bar_task = bar.add_task("dataset", total=config.size, completed=manifest["count"], info="")
    try:
        shared = policy_blob(policy) if parallel.uses_ray else policy
        for arrays in run_units(_shard_arrays, jobs, shared=shared, parallel=parallel):
            rec = _write_shard(out, arrays)
            commit(rec)
            if bar is not None:
                bar.update(bar_task, advance=rec["count"])
    finally:
        if bar is not None:
            bar.stop()
    return manifest


# -- loading ---------------------------------------------------------------------------------------
def _read_manifest(path: Path) -> dict[str, Any]:
    mpath = path / MANIFEST
    if not path.exists():
        raise DigrError(f"dataset not found: {path}")
    if not mpath.exists():
        raise DigrError(f"{path} has no {MANIFEST}: not a digr dataset (make one with 'digr dataset')")
    manifest = read_versioned_json(mpath, owner=f"dataset {path}", fmt=FORMAT, version=FORMAT_VERSION,
                                   kind="digr saliency-dataset manifest")
    _check_manifest(manifest, f"dataset {path}: {MANIFEST}")
    return manifest


def _check_manifest(m: dict[str, Any], owner: str) -> None:
    """Refuse a manifest whose fields have the wrong types (a hand-edited or foreign file) before
    anything reads them: one :class:`DigrError` naming the field."""
    def bad(field: str, what: str) -> DigrError:
        return DigrError(f"{owner}: {field} must be {what}")

    def is_int(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    if not is_int(m.get("count")):
        raise bad("count", "a non-negative integer")
    if not isinstance(m.get("complete"), bool):
        raise bad("complete", "true or false")
    shapes = m.get("shapes")
    if not isinstance(shapes, dict) or any(
            not isinstance(shapes.get(k), list) or not all(is_int(x) for x in shapes[k])
            for k in ("states", "maps", "probs")):
        raise bad("shapes", "an object of integer lists (states, maps, probs)")
    shards = m.get("shards")
    if not isinstance(shards, list):
        raise bad("shards", "a list")
    for rec in shards:
        if (not isinstance(rec, dict) or not is_int(rec.get("index")) or not is_int(rec.get("count"))
                or not isinstance(rec.get("file"), str) or rec["file"] != Path(rec["file"]).name
                or not rec["file"] or not isinstance(rec.get("sha256", ""), str)):
            raise bad("every shard record", "{index, file (a plain file name), count, sha256}")


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The validated ``manifest.json`` of the dataset folder ``path``."""
    return _read_manifest(Path(path))


def load_dataset(
    path: str | Path,
    *,
    teacher: str | Path | None = None,
    task: str | None = None,
    policy: PolicyNet | None = None,
) -> SaliencyDataset:
    """Load the complete dataset in ``path``, checking it against what it will be used with.

    ``teacher`` (a checkpoint path): its weights' sha256 must be the one the dataset was made
    from, and its input/action shapes must match. ``task``: must be the dataset's task (and the
    task's shapes the dataset's). ``policy``: a network (e.g. the student) whose shapes must match.
    Any mismatch, an incomplete or empty dataset, or a damaged shard is a :class:`DigrError`.
    """
    path = Path(path)
    m = _read_manifest(path)
    shapes = m.get("shapes", {})
    obs_shape = tuple(shapes.get("states", ()))
    n_actions = tuple(shapes.get("probs", ()))[:1]
    if task is not None:
        spec = get_task(task)
        if m.get("task") != spec.name:
            raise DigrError(f"dataset {path} was made for task {m.get('task')!r}, not {spec.name!r}")
        if obs_shape != tuple(spec.obs_shape) or n_actions != (spec.n_actions,):
            raise DigrError(f"dataset {path} holds states {obs_shape} with {n_actions} actions, but task "
                            f"{spec.name!r} has {spec.obs_shape} and {spec.n_actions}")
    if teacher is not None:
        tpath = resolve(teacher)
        digest = file_digest(tpath) if (tpath / "model.safetensors").exists() else None
        if digest is None:
            load_policy(tpath)  # raises the checkpoint's own clear error
        if digest != m.get("teacher_sha256"):
            raise DigrError(f"dataset {path} was made from teacher {m.get('teacher')} (sha256 "
                            f"{str(m.get('teacher_sha256'))[:12]}), not from {tpath} (sha256 {digest[:12]})")
        if policy is None:
            policy = load_policy(tpath)
    if policy is not None:
        pc = policy.config
        if obs_shape != tuple(pc.obs_shape) or n_actions != (pc.n_actions,):
            raise DigrError(f"dataset {path} holds states {obs_shape} with {n_actions} actions, but the "
                            f"policy expects {tuple(pc.obs_shape)} and {pc.n_actions}")
    if not m.get("shards") or int(m.get("count", 0)) <= 0:
        raise DigrError(f"dataset {path} is empty (no complete shard); run 'digr dataset' to fill it")
    if not m.get("complete"):
        raise DigrError(f"dataset {path} is incomplete ({m['count']} of {m.get('size')} states); rerun "
                        "'digr dataset' with the same arguments to finish it")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ARRAYS}
    for rec in m["shards"]:
        spath = path / rec["file"]
        if not spath.exists():
            raise DigrError(f"dataset {path}: shard {rec['file']} is missing")
        if rec.get("sha256") and _sha256(spath) != rec["sha256"]:
            raise DigrError(f"dataset {path}: shard {rec['file']} does not match its checksum")
        arrays = _read_shard(spath, count=int(rec["count"]))
        for k in ARRAYS:
            parts[k].append(arrays[k])
    states, maps, probs = (np.concatenate(parts[k]) for k in ARRAYS)
    n = len(states)
    want = {"states": ((n, *obs_shape), np.uint8), "maps": ((n, *obs_shape[1:]), np.float32),
            "probs": ((n, *n_actions), np.float32)}
    for k, arr in zip(ARRAYS, (states, maps, probs)):
        shape, dtype = want[k]
        if arr.shape != shape or arr.dtype != dtype:
            raise DigrError(f"dataset {path}: {k} are {arr.dtype} {arr.shape}, the manifest says "
                            f"{np.dtype(dtype)} {shape}")
    if n != int(m["count"]):
        raise DigrError(f"dataset {path}: shards hold {n} states, the manifest says {m['count']}")
    if not (np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0):
        raise DigrError(f"dataset {path}: saliency maps are not finite values in [0, 1]")
    return SaliencyDataset(states=torch.from_numpy(states), maps=torch.from_numpy(maps),
                           probs=torch.from_numpy(probs), manifest=m)


__all__ = ["SaliencyDataset", "build_dataset", "load_dataset", "read_manifest",
           "shard_plan", "shard_name", "MANIFEST"]
