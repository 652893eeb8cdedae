"""Where Vigil keeps things on a machine.

- the project root (this checkout), found from this file;
- the state folder (git-ignored): data, logs, pids, checkpoints of local services; `VIGIL_STATE`;
- the cache folder (outside git, shared by clones): jars resolved from Maven Central; `VIGIL_CACHE`.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    path = Path(os.environ.get("VIGIL_STATE", PROJECT_ROOT / ".vigil"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vigil"
    path = Path(os.environ.get("VIGIL_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sub(base: Path, *parts: str) -> Path:
    """A sub-folder of `base`, created on first use."""
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
