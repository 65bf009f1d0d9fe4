"""The parallel engine: serial and Ray give the same results, on a simulated two-node cluster
too; a unit whose worker dies is retried; a Ray error is one DigrError."""

import os

import numpy as np
import pytest

from digr.errors import DigrError
from digr.parallel import ParallelConfig, run_units


def _square(job, shared):
    return job * job + shared


def _die_once(job, marker_dir):
    """Kills its own worker process the first time each job runs (a node or worker lost)."""
    marker = os.path.join(marker_dir, f"ran-{job}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return job


def _fail(job, shared):
    raise DigrError(f"bad unit {job}")


def test_serial_path_needs_no_ray():
    assert list(run_units(_square, [1, 2, 3], shared=10)) == [11, 14, 19]


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes (one CPU each) on this machine: a head and a worker node."""
    ray = pytest.importorskip("ray")
    import sys

    from ray.cluster_utils import Cluster

    # the units below live in this test module, which worker processes cannot import: send them by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.mark.slow  # Ray worker start-up and retries: minutes on 2 busy cores (make test-all)
def test_cluster_results_equal_serial_and_dead_workers_are_retried(cluster, tmp_path):
    par = ParallelConfig(address=cluster.address)
    assert sorted(run_units(_square, range(6), shared=10, parallel=par)) == list(run_units(_square, range(6),
                                                                                             shared=10))
    assert sorted(run_units(_die_once, range(3), shared=str(tmp_path), parallel=par)) == [0, 1, 2]
    with pytest.raises(DigrError, match="bad unit"):
        list(run_units(_fail, [7], parallel=par))


@pytest.mark.slow
def test_dataset_on_the_cluster_equals_the_serial_one(cluster, tmp_path, teacher_ckpt, tiny_dataset):
    from digr.distill import DatasetConfig, build_dataset, load_dataset

    cfg = DatasetConfig(size=8, shard_size=4, radius=4, stride=8)  # as tiny_dataset (serial)
    build_dataset(teacher_ckpt, "red-fetch-green", tmp_path / "ray", cfg,
                  parallel=ParallelConfig(address=cluster.address))
    a, b = load_dataset(tiny_dataset), load_dataset(tmp_path / "ray")
    assert np.array_equal(a.states.numpy(), b.states.numpy())
    assert np.array_equal(a.maps.numpy(), b.maps.numpy()) and np.array_equal(a.probs.numpy(), b.probs.numpy())
