"""Measurements cached as JSON in ``DIR/eval/``, keyed by what they were computed from."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from digr.io import atomic_write_text


class JsonCache:
    """Results cached as ``DIR/eval/NAME.json`` = ``{"key": ..., "result": ...}``.

    ``cache(name, key, compute, files=())`` returns the stored result when the stored key equals
    ``key`` (after a JSON round trip) and every path in ``files`` exists; otherwise it calls
    ``compute()``, stores its result atomically and returns it.
    """

    def __init__(self, directory: str | Path, *, log: Callable[[str], None] | None = None) -> None:
        self.dir = Path(directory)
        self.log = log or (lambda msg: None)
        self.hits: list[str] = []
        self.computed: list[str] = []

    def __call__(self, name: str, key: dict[str, Any], compute: Callable[[], Any],
                 files: Sequence[Path] = ()) -> Any:
        path = self.dir / f"{name}.json"
        key = json.loads(json.dumps(key))
        if path.exists() and all(Path(f).exists() for f in files):
            try:
                stored = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                stored = None
            if isinstance(stored, dict) and stored.get("key") == key and "result" in stored:
                self.hits.append(name)
                return stored["result"]
        self.log(f"computing {name} ...")
        t0 = time.perf_counter()
        result = json.loads(json.dumps(compute()))
        self.log(f"  {name}: {time.perf_counter() - t0:.1f} s")
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"key": key, "result": result,
                                            "seconds": time.perf_counter() - t0}, indent=1) + "\n")
        self.computed.append(name)
        return result
