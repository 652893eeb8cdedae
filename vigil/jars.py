"""Jars from Maven Central, resolved once with `mvn` into the cache folder.

Two sets, each described by a pom under infra/maven/:
- `kafka-broker`: the Kafka broker and its runtime dependencies (a classpath folder);
- `flink-connectors`: shaded Flink connector/format jars handed to every job (pipeline.jars).
A marker file holding the pom's hash makes resolution idempotent and re-runs it when a pom changes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from vigil.paths import PROJECT_ROOT, cache_dir

POM_DIR = PROJECT_ROOT / "infra" / "maven"
JAR_SETS = {
    # name: (pom file, copy transitive dependencies?)
    "kafka-broker": ("kafka-broker.pom.xml", True),
    "flink-connectors": ("flink-connectors.pom.xml", False),
}


def jar_dir(name: str) -> Path:
    return cache_dir() / "jars" / name


def ensure(name: str, log=print) -> Path:
    """Resolve the jar set `name` if the cache does not hold it for the current pom; return its folder."""
    pom_name, transitive = JAR_SETS[name]
    pom = POM_DIR / pom_name
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    target = jar_dir(name)
    marker = target / ".resolved"
    if marker.exists() and marker.read_text() == digest:
        return target
    if shutil.which("mvn") is None:
        raise RuntimeError("mvn is not installed: it is needed once to fetch jars from Maven Central")
    log(f"resolving {name} jars from Maven Central into {target} (first run only)")
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
           f"-DoutputDirectory={staging}", f"-DexcludeTransitive={'false' if transitive else 'true'}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"mvn failed for {pom_name}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    marker.write_text(digest)
    return target


def flink_connector_jars() -> list[Path]:
    return sorted(ensure("flink-connectors").glob("*.jar"))
