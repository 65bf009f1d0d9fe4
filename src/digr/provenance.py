"""What software made a file, recorded beside datasets and runs.

The same ``digr dataset`` command (same teacher, settings and seed) builds the same arrays with the
same code and packages, but rebuilds in later sessions of this project gave other shard digests,
and nothing recorded which package had moved. Datasets (``manifest.json``) and training runs
(``config.json``) therefore carry :func:`software_versions`, as Stable-Baselines3 saves its
``system_info`` beside a model. It is a record only: nothing refuses to load or resume when it
differs.
"""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES: tuple[str, ...] = (
    "torch", "numpy", "gymnasium", "minigrid", "highway-env", "ale-py", "stable-baselines3",
    "safetensors", "opencv-python-headless",
)
"""Distributions whose version can change what digr computes (environments, numerics, files)."""


def software_versions() -> dict[str, str]:
    """``{"python": ..., "platform": ..., "digr": ..., PACKAGE: version, ...}`` of this process.

    Packages that are not installed (optional extras such as ``ale-py``) are left out rather than
    recorded as missing, so the record lists exactly what could have been used.
    """
    from digr import __version__

    out = {"python": platform.python_version(), "platform": platform.platform(), "digr": __version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


__all__ = ["PACKAGES", "software_versions"]
