import platform

import numpy as np
import torch

import digr
from digr import provenance
from digr.provenance import software_versions


def test_versions_are_this_process_and_missing_packages_are_left_out(monkeypatch):
    monkeypatch.setattr(provenance, "PACKAGES", ("torch", "numpy", "no-such-distribution-digr"))
    v = software_versions()
    assert v["torch"] == torch.__version__ and v["numpy"] == np.__version__
    assert v["digr"] == digr.__version__ and v["python"] == platform.python_version()
    assert "no-such-distribution-digr" not in v
    assert all(isinstance(x, str) and x for x in v.values())
