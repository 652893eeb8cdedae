"""A local S3-compatible object store for Flink's checkpoints and savepoints (ADR 0014).

Production keeps Flink state in an object-storage bucket (k8s/); locally the same `s3://` code
path runs against `infra/s3store`, a small Go server on gofakes3 whose objects live in one bbolt
file under `<state>/s3store/data/` (fsynced on each write: it survives a restart of the server,
of Flink, and the DR drill's wipe of the cluster's folder). Like the Kafka broker and ZooKeeper:
built and started by the project, stopped by its recorded pid, nothing starts it by itself.

- Endpoint: http://127.0.0.1:VIGIL_S3_PORT (9000); bucket VIGIL_S3_BUCKET (vigil-state), created
  at start. Path-style addressing (one host, the bucket in the path).
- Credentials: a key pair generated once into `<state>/s3store/credentials.json` (mode 0600);
  the server refuses every request not SigV4-signed with it.
- The binary: `go build` of infra/s3store into the cache folder, once per source version (named
  by the hash of its sources and the Go version), like vigil.jars does for Java.
- Listing and reading objects goes through the same binary as a client (`s3store ls|get|put|mb`),
  so Python needs no S3 library.
- Flink reads and writes `s3://` through its Presto S3 plugin (jar set `flink-s3`), which Flink
  loads from a plugins folder: plugins_dir() makes one, flink_settings() gives the keys.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from vigil import jars, procs
from vigil.paths import PROJECT_ROOT, cache_dir, state_dir, sub

SOURCE_DIR = PROJECT_ROOT / "infra" / "s3store"
PLUGIN_FOLDER = "s3-fs-presto"  # Flink loads each plugins/<folder> in its own class loader


def _env_port() -> int:
    return int(os.environ.get("VIGIL_S3_PORT", "9000"))


@dataclass(frozen=True)
class StoreSettings:
    # read when a settings object is made, not at import: tests and drills set their own port
    port: int = field(default_factory=_env_port)
    bucket: str = field(default_factory=lambda: os.environ.get("VIGIL_S3_BUCKET", "vigil-state"))


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    last_modified: datetime


def home() -> Path:
    return sub(state_dir(), "s3store")


def _pid_file() -> Path:
    return home() / "s3store.pid"


def _log_file() -> Path:
    return sub(home(), "logs") / "s3store.log"


def credentials_file() -> Path:
    return home() / "credentials.json"


def credentials() -> Credentials:
    """The store's key pair, generated on first use (0600, created exclusively so that two
    starts never write different keys)."""
    path = credentials_file()
    if not path.exists():
        pair = {"access_key": "VIGIL" + secrets.token_hex(8).upper(), "secret_key": secrets.token_urlsafe(30)}
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                json.dump(pair, out)
    data = json.loads(path.read_text())
    return Credentials(data["access_key"], data["secret_key"])


def endpoint(settings: StoreSettings | None = None) -> str:
    return f"http://127.0.0.1:{(settings or StoreSettings()).port}"


@functools.lru_cache(maxsize=None)
def _go_version(go: str) -> str:
    """Part of the binary's cache key; asked once per process (every client call needs the binary)."""
    return subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout


def binary(log=print) -> Path:
    """infra/s3store built with `go build`, cached by the hash of its sources and the Go version."""
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("go is not installed: it is needed once to build infra/s3store "
                           "(modules come from the Go module proxy)")
    digest = hashlib.sha256(_go_version(go).encode())
    for path in sorted(p for p in SOURCE_DIR.iterdir() if p.suffix == ".go" or p.name in ("go.mod", "go.sum")):
        digest.update(path.name.encode() + path.read_bytes())
    target = cache_dir() / "bin" / f"s3store-{digest.hexdigest()[:16]}"
    if target.exists():
        return target
    log(f"building {target.name} from infra/s3store")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_suffix(".staging")
    result = subprocess.run([go, "build", "-trimpath", "-buildvcs=false", "-o", str(staging), "."], cwd=SOURCE_DIR,
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"go build failed for infra/s3store:\n{result.stderr[-3000:]}")
    staging.rename(target)
    return target


def _cli(command: str, *args: str, settings: StoreSettings | None = None, data: bytes | None = None,
         timeout: float = 60) -> bytes:
    credentials()  # the file the binary reads
    cmd = [str(binary()), command, "-endpoint", endpoint(settings), "-credentials", str(credentials_file()), *args]
    result = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"s3store {command} failed: {result.stderr.decode(errors='replace')[-2000:]}")
    return result.stdout


def pid() -> int | None:
    return procs.read_pid(_pid_file())


def _answers(settings: StoreSettings) -> bool:
    """A signed listing of the bucket succeeds: the server is up, knows our key and has the bucket."""
    try:
        _cli("ls", "-prefix", "-", settings.bucket, settings=settings, timeout=10)  # a prefix no key has: cheap
        return True
    except (RuntimeError, subprocess.TimeoutExpired):
        return False


def is_running(settings: StoreSettings | None = None) -> bool:
    settings = settings or StoreSettings()
    return procs.is_alive(pid()) and procs.port_open("127.0.0.1", settings.port)


def start(settings: StoreSettings | None = None, log=print, timeout: float = 30) -> None:
    settings = settings or StoreSettings()
    if is_running(settings):
        log(f"s3store: already running, {endpoint(settings)}")
        return
    if procs.port_open("127.0.0.1", settings.port):
        raise RuntimeError(f"port {settings.port} is taken by a process this project did not start; "
                           "set VIGIL_S3_PORT to use another port")
    credentials()
    command = [str(binary(log)), "serve", "-addr", f"127.0.0.1:{settings.port}",
               "-db", str(sub(home(), "data") / "objects.bolt"),
               "-credentials", str(credentials_file()), "-bucket", settings.bucket]
    log(f"s3store: starting on {endpoint(settings)}, bucket {settings.bucket} (data: {home() / 'data'})")
    started = procs.spawn(command, _log_file(), _pid_file())

    def up() -> bool:
        if not procs.is_alive(started):
            raise RuntimeError(f"s3store exited during start-up:\n{_log_file().read_text(errors='replace')[-2000:]}")
        return procs.port_open("127.0.0.1", settings.port) and _answers(settings)

    try:
        procs.wait_until(up, timeout, "the object store to answer a signed listing")
    except TimeoutError:
        procs.stop(_pid_file(), timeout=10)
        raise
    log(f"s3store: ready (pid {started})")


def stop(log=print) -> None:
    log("s3store: stopped" if procs.stop(_pid_file(), timeout=20) else "s3store: not running")


def status(settings: StoreSettings | None = None) -> str:
    settings = settings or StoreSettings()
    if is_running(settings):
        return f"s3store: running, {endpoint(settings)}, bucket {settings.bucket} (pid {pid()})"
    return "s3store: stopped"


# --- objects ----------------------------------------------------------------------------------

def ensure_bucket(name: str, settings: StoreSettings | None = None) -> None:
    _cli("mb", name, settings=settings)


def put_object(bucket: str, key: str, data: bytes, settings: StoreSettings | None = None) -> None:
    _cli("put", bucket, key, settings=settings, data=data)


def get_object(bucket: str, key: str, settings: StoreSettings | None = None) -> bytes:
    return _cli("get", bucket, key, settings=settings)


def list_objects(bucket: str, prefix: str = "", settings: StoreSettings | None = None) -> list[StoredObject]:
    lines = _cli("ls", "-prefix", prefix, bucket, settings=settings).decode().splitlines()
    return [StoredObject(o["key"], o["size"], datetime.fromisoformat(o["last_modified"].replace("Z", "+00:00")))
            for o in map(json.loads, lines)]


CHECKPOINT_METADATA = re.compile(r"(^|/)chk-\d+/_metadata$")
SAVEPOINT_METADATA = re.compile(r"(^|/)savepoint-[^/]+/_metadata$")


def newest_complete(objects: list[StoredObject], pattern: re.Pattern) -> StoredObject | None:
    """The newest `_metadata` object whose key matches `pattern`, by last-modified. Flink writes a
    checkpoint's or savepoint's `_metadata` last, so a folder without one was never completed.

    >>> t = lambda s: datetime.fromisoformat(f"2026-12-04T10:00:{s:02d}+00:00")
    >>> objs = [StoredObject("c/j/chk-7/_metadata", 9, t(5)), StoredObject("c/j/chk-8/op-state", 9, t(9)),
    ...         StoredObject("c/j/chk-6/_metadata", 9, t(3)), StoredObject("s/savepoint-ab-cd/_metadata", 9, t(7))]
    >>> newest_complete(objs, CHECKPOINT_METADATA).key, newest_complete(objs, SAVEPOINT_METADATA).key
    ('c/j/chk-7/_metadata', 's/savepoint-ab-cd/_metadata')
    """
    matching = [o for o in objects if pattern.search(o.key)]
    return max(matching, key=lambda o: o.last_modified, default=None)


def _folder_uri(bucket: str, found: StoredObject | None) -> str | None:
    """The s3:// URI of the checkpoint or savepoint folder (what `flink run -s` takes)."""
    return f"s3://{bucket}/{found.key.rsplit('/', 1)[0]}" if found else None


def newest_checkpoint(bucket: str, prefix: str, settings: StoreSettings | None = None) -> str | None:
    """The newest complete checkpoint (`.../chk-N/_metadata`) under `prefix`, as an s3:// URI."""
    return _folder_uri(bucket, newest_complete(list_objects(bucket, prefix, settings), CHECKPOINT_METADATA))


def newest_savepoint(bucket: str, prefix: str, settings: StoreSettings | None = None) -> str | None:
    """The newest complete savepoint (`.../savepoint-*/_metadata`) under `prefix`, as an s3:// URI."""
    return _folder_uri(bucket, newest_complete(list_objects(bucket, prefix, settings), SAVEPOINT_METADATA))


def newest_restore_point(bucket: str, checkpoint_prefix: str, savepoint_prefixes: list[str],
                         settings: StoreSettings | None = None) -> str | None:
    """The newer of the newest complete checkpoint under `checkpoint_prefix` (one job's folder,
    `<prefix>/checkpoints/<job id>/`) and the newest savepoint under any `savepoint_prefixes`
    (that job's savepoints): what the DR drill restores a job from."""
    objects = list_objects(bucket, checkpoint_prefix, settings)
    candidates = [newest_complete(objects, CHECKPOINT_METADATA)]
    for prefix in savepoint_prefixes:
        candidates.append(newest_complete(list_objects(bucket, prefix, settings), SAVEPOINT_METADATA))
    return _folder_uri(bucket, max(filter(None, candidates), key=lambda o: o.last_modified, default=None))


# --- Flink ------------------------------------------------------------------------------------

def flink_settings(bucket: str, prefix: str, settings: StoreSettings | None = None) -> dict[str, str]:
    """Flink configuration keys for state in this store: the Presto S3 plugin's endpoint and key
    pair (Flink hands `s3.*` keys to the plugin), path-style addressing (one host, no per-bucket
    DNS names), and the checkpoint and savepoint folders under s3://bucket/prefix/."""
    pair = credentials()
    base = f"s3://{bucket}/{prefix.strip('/')}" if prefix.strip("/") else f"s3://{bucket}"
    return {
        "s3.endpoint": endpoint(settings),
        "s3.path.style.access": "true",
        "s3.access-key": pair.access_key,
        "s3.secret-key": pair.secret_key,
        "execution.checkpointing.dir": f"{base}/checkpoints",
        "execution.checkpointing.savepoint-dir": f"{base}/savepoints",
    }


def plugins_dir(root: Path | None = None) -> Path:
    """A plugins folder for FLINK_PLUGINS_DIR (default `<cluster home>/plugins`): the wheel's own
    plugins (the Prometheus reporter among them, which FLINK_PLUGINS_DIR would otherwise hide)
    plus `s3-fs-presto/` with the S3 plugin jar. Links, not copies; remade on every call, since
    the DR drill wipes the cluster's folder."""
    from vigil import flink_cluster  # late: flink_cluster may import this module

    root = root or flink_cluster.home() / "plugins"
    root.mkdir(parents=True, exist_ok=True)
    wanted = {p.name: p for p in (flink_cluster.flink_home() / "plugins").iterdir() if p.is_dir()}
    for name, target in wanted.items():
        link = root / name
        if link.is_symlink() and link.resolve() != target.resolve():
            link.unlink()
        if not link.exists():
            link.symlink_to(target)
    s3 = root / PLUGIN_FOLDER
    if s3.is_symlink():
        s3.unlink()
    s3.mkdir(exist_ok=True)
    jar_files = sorted(jars.ensure("flink-s3").glob("*.jar"))
    for existing in s3.iterdir():
        if existing.resolve() not in [j.resolve() for j in jar_files]:
            existing.unlink()
    for jar in jar_files:
        if not (s3 / jar.name).exists():
            (s3 / jar.name).symlink_to(jar)
    return root
