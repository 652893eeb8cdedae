"""The project's code at an earlier git revision, for benchmarks that compare a change with the
code before it in one run (bench/ingest.py, bench/fraud_throughput.py: `baseline` variants)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from vigil.paths import PROJECT_ROOT


def exported_tree(rev: str, prefix: str) -> Path:
    """The project at `rev`, exported into a temporary folder (no worktree, no branch)."""
    target = Path(tempfile.mkdtemp(prefix=f"{prefix}-{rev.replace('/', '_')}-"))
    archive = subprocess.run(["git", "-C", str(PROJECT_ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def short_rev(rev: str) -> str:
    return subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", rev],
                          check=True, capture_output=True, text=True).stdout.strip()
