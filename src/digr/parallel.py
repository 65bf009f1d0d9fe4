"""digr's one parallel engine: independent units of work, run in this process or as Ray tasks.

Dataset shards and robustness-sweep points are independent and seeded on their own, so the
results do not depend on where or in which order they run. :func:`run_units` yields each unit's
result as it finishes; the caller commits it (writes the shard, records the point), which is what
makes a killed run resumable: finished units are on disk, the rest are redone.

Ray, not ``multiprocessing``: one mechanism from a laptop to a cluster. ``ParallelConfig(ray=True)``
starts a local Ray with ``workers`` CPUs; ``address`` joins a running cluster instead. Shared
inputs (the teacher's weights) go through Ray's object store by content, so a worker on another
node needs no path that exists only on the head node. A task whose worker dies is retried
(``max_retries``). Without Ray installed the serial path works as before, and asking for Ray says
how to install it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from digr.errors import DigrError, check_int

RAY_HINT = "pip install 'digr[ray]'"
MAX_RETRIES = 3
"""Times Ray reruns a unit whose worker process died."""


@dataclass(frozen=True)
class ParallelConfig:
    """Where independent units run."""

    ray: bool = False
    """Run the units as Ray tasks (``--ray``); ``False``: one after the other in this process."""
    workers: int | None = None
    """CPUs of the local Ray started for the run (default: this machine's cores); one unit per CPU,
    each on one torch thread. Ignored with ``address``, whose cluster decides."""
    address: str | None = None
    """Address of a running Ray cluster to join (``--ray-address``; implies ``ray``)."""

    @property
    def uses_ray(self) -> bool:
        return self.ray or self.address is not None

    def validate(self) -> ParallelConfig:
        if self.workers is not None:
            check_int("workers", self.workers, maximum=4096)
        if self.address is not None and (not isinstance(self.address, str) or not self.address):
            raise DigrError(f"the Ray address must be a non-empty string, got {self.address!r}")
        return self


def import_ray():
    try:
        import ray
    except ImportError:
        raise DigrError(f"--ray needs Ray: {RAY_HINT}") from None
    return ray


def _call(fn: Callable[..., Any], job: Any, shared: Any) -> Any:
    import torch

    torch.set_num_threads(1)  # one unit per CPU: more threads per unit would oversubscribe
    return fn(job, shared)


def run_units(fn: Callable[[Any, Any], Any], jobs: Iterable[Any], *, shared: Any = None,
              parallel: ParallelConfig | None = None) -> Iterator[Any]:
    """Yield ``fn(job, shared)`` for every job, each as soon as it is done (any order with Ray).

    ``fn`` and the jobs must be picklable (module-level functions, plain data); ``shared`` is sent
    once (Ray's object store) and handed to every call. A Ray started here is shut down when the
    iteration ends, also when the caller stops early or fails; a cluster joined by address is left
    running.
    """
    parallel = (parallel or ParallelConfig()).validate()
    jobs = list(jobs)
    if not parallel.uses_ray:
        for job in jobs:
            yield fn(job, shared)
        return
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        import os

        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if parallel.address is not None:
            ray.init(address=parallel.address, **kwargs)
        else:
            ray.init(num_cpus=parallel.workers or os.cpu_count() or 1, **kwargs)
        started = True
    try:
        shared_ref = ray.put(shared)
        remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_call)
        pending = [remote.remote(fn, job, shared_ref) for job in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                yield ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:  # the unit's own error, e.g. a DigrError
                cause = exc.as_instanceof_cause()
                raise (cause if isinstance(cause, DigrError) else DigrError(
                    f"a Ray task failed: {type(cause).__name__}: {str(cause).splitlines()[0]}")) from None
    finally:
        if started:
            ray.shutdown()


__all__ = ["ParallelConfig", "run_units", "import_ray", "RAY_HINT"]
