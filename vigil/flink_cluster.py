"""A local Flink standalone session cluster from the apache-flink wheel.

The JobManager and each TaskManager run in the foreground of their own process (started with
`bin/jobmanager.sh start-foreground`, which execs the JVM), so the pid files under
`<state>/flink/` hold the JVM pids. Configuration is rendered from infra/flink/ into
`<state>/flink/conf` (FLINK_CONF_DIR); the installed package is never edited.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from string import Template

from vigil import flink_env, jars, procs
from vigil.paths import PROJECT_ROOT, state_dir, sub

TEMPLATE = PROJECT_ROOT / "infra" / "flink" / "config.yaml.template"


@dataclass(frozen=True)
class ClusterSettings:
    rest_port: int = int(os.environ.get("VIGIL_FLINK_REST_PORT", "8081"))
    rpc_port: int = int(os.environ.get("VIGIL_FLINK_RPC_PORT", "6123"))
    jobmanager_memory: str = os.environ.get("VIGIL_JM_MEMORY", "1024m")
    taskmanager_memory: str = os.environ.get("VIGIL_TM_MEMORY", "1728m")
    # One slot per TaskManager: in Python thread mode the slots of one JVM share one interpreter lock.
    slots: int = int(os.environ.get("VIGIL_TM_SLOTS", "1"))
    metrics_ports: str = os.environ.get("VIGIL_METRICS_PORTS", "9250-9260")
    # Start each TaskManager's embedded Python at TaskManager start (ADR 0006); 0 turns it off
    # (jobs in process mode only, or to measure what it prevents).
    python_warmup: bool = os.environ.get("VIGIL_PYTHON_WARMUP", "1") != "0"
    # JobManager high availability (VIGIL_FLINK_HA=1): leader election and job pointers in a local
    # ZooKeeper (vigil.zookeeper), a standby JobManager beside the leader. Its REST port is the
    # standby's own; clients reach whichever leads (rest() tries both, `flink run` asks ZooKeeper).
    ha: bool = os.environ.get("VIGIL_FLINK_HA", "0") == "1"
    standby_rest_port: int = int(os.environ.get("VIGIL_FLINK_STANDBY_REST_PORT",
                                                str(int(os.environ.get("VIGIL_FLINK_REST_PORT", "8081")) + 2)))
    # VIGIL_FLINK_SCHEDULER=adaptive: Flink's adaptive scheduler, which runs a job with the slots
    # there are (down to 1 per operator) and rescales it up to its parallelism when TaskManagers
    # join, without a redeploy (`vigil dr drill --scenario scale-up`).
    scheduler: str = os.environ.get("VIGIL_FLINK_SCHEDULER", "default")

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def rest_urls(self) -> list[str]:
        return [self.rest_url] + ([f"http://127.0.0.1:{self.standby_rest_port}"] if self.ha else [])


def flink_home() -> Path:
    import pyflink
    return Path(pyflink.__file__).resolve().parent


def home() -> Path:
    """The cluster's folder (config, logs, pids, checkpoints): <state>/flink, or
    VIGIL_FLINK_STATE (the test suite's own cluster, beside a user's)."""
    own = os.environ.get("VIGIL_FLINK_STATE")
    if own:
        path = Path(own)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return sub(state_dir(), "flink")


def checkpoint_dir() -> Path:
    return sub(home(), "checkpoints")


def savepoint_dir() -> Path:
    return sub(home(), "savepoints")


def s3_store() -> bool:
    """VIGIL_STATE_STORE=s3: checkpoints and savepoints in the local S3-compatible store
    (vigil.object_store, ADR 0014) under s3://<bucket>/<cluster folder name>/; default `local`:
    the cluster's own folders."""
    return os.environ.get("VIGIL_STATE_STORE", "local") == "s3"


def _s3_keys() -> dict[str, str]:
    from vigil import object_store
    return object_store.flink_settings(object_store.StoreSettings().bucket, home().name)


def checkpoint_uri() -> str:
    return _s3_keys()["execution.checkpointing.dir"] if s3_store() else checkpoint_dir().as_uri()


def savepoint_uri() -> str:
    return _s3_keys()["execution.checkpointing.savepoint-dir"] if s3_store() else savepoint_dir().as_uri()


def _conf_dir(settings: ClusterSettings) -> Path:
    conf = sub(home(), "conf")
    default_conf = flink_home() / "conf"
    for name in ("log4j.properties", "log4j-console.properties", "log4j-cli.properties"):
        shutil.copy(default_conf / name, conf / name)
    java_opts = _default_java_opts(default_conf / "config.yaml")
    text = Template(TEMPLATE.read_text()).substitute(
        java_opts=java_opts, jobmanager_memory=settings.jobmanager_memory,
        taskmanager_memory=settings.taskmanager_memory, slots=settings.slots,
        rest_port=settings.rest_port, rpc_port=settings.rpc_port, checkpoint_uri=checkpoint_uri(),
        savepoint_uri=savepoint_uri(), metrics_ports=settings.metrics_ports,
        python_warmup=_python_warmup(settings))
    config = conf / "config.yaml"
    config.write_text(text + _high_availability(settings) + _s3_access() + _scheduler(settings))
    config.chmod(0o600)   # with the S3 store it holds the key pair
    return conf


def _scheduler(settings: ClusterSettings) -> str:
    """The adaptive scheduler's keys (Flink 2.x names): a job starts with the slots free after 5 s
    (not its full parallelism), and a TaskManager that joins is used 10 s after the slots stop
    changing (default 60 s), at most every 10 s."""
    if settings.scheduler != "adaptive":
        return ""
    return ("jobmanager.scheduler: adaptive\n"
            "jobmanager.adaptive-scheduler.submission.resource-wait-timeout: 5 min\n"
            "jobmanager.adaptive-scheduler.submission.resource-stabilization-timeout: 5 s\n"
            "jobmanager.adaptive-scheduler.executing.resource-stabilization-timeout: 10 s\n"
            "jobmanager.adaptive-scheduler.executing.cooldown-after-rescaling: 10 s\n")


def _s3_access() -> str:
    """The S3 plugin's endpoint and key pair (the folders are in the template)."""
    if not s3_store():
        return ""
    return "".join(f"{key}: {value}\n" for key, value in _s3_keys().items() if key.startswith("s3."))


def ha_dir() -> Path:
    """Job graphs and checkpoint pointers of an HA cluster (ZooKeeper holds only their paths):
    durable, like the checkpoint store."""
    return sub(home(), "ha")


def _high_availability(settings: ClusterSettings) -> str:
    """The ZooKeeper HA keys. The JobManagers' RPC ports come from a range (two on one host); a
    short ZooKeeper session lets the standby notice a dead leader in seconds (the server's
    minimum is 2 ticks: 4 s)."""
    if not settings.ha:
        return ""
    from vigil import zookeeper
    return (f"high-availability.type: zookeeper\n"
            f"high-availability.zookeeper.quorum: {zookeeper.connect_string()}\n"
            f"high-availability.zookeeper.path.root: /vigil\n"
            f"high-availability.cluster-id: /{home().name}\n"
            f"high-availability.storageDir: {ha_dir().as_uri()}\n"
            f"high-availability.jobmanager.port: {settings.rpc_port}-{settings.rpc_port + 2}\n"
            f"high-availability.zookeeper.client.session-timeout: 4000\n"
            f"high-availability.zookeeper.client.connection-timeout: 3000\n")


def _python_warmup(settings: ClusterSettings) -> str:
    """Not a reporter: vigil-runtime's hook that starts each TaskManager's embedded Python before
    any task can run, so a task cancelled while Python starts cannot leave the JVM unable to run
    Python. The interpreter must be the jobs' python.executable."""
    if not settings.python_warmup:
        return ""
    python = flink_env.python_executable()
    return ("    python_warmup:\n      factory:\n        class: vigil.flink.runtime.PythonWarmupReporterFactory\n"
            f"      python: {python}")


def _default_java_opts(default_config: Path) -> str:
    """The --add-opens/--add-exports flags the wheel's own config sets (Flink needs them on Java 17)."""
    for line in default_config.read_text().splitlines():
        if line.strip().startswith("all: --add-"):
            return line.split("all:", 1)[1].strip()
    return ""


def _lib_dir() -> Path:
    """The wheel's lib/ plus opt/flink-python: a standalone cluster needs the Python operators on
    its classpath to run PyFlink jobs (the wheel keeps that jar in opt/). Links, not copies."""
    lib = sub(home(), "lib")
    wanted = {p.name: p for p in (flink_home() / "lib").glob("*.jar")}
    wanted.update({p.name: p for p in (flink_home() / "opt").glob("flink-python-*.jar")})
    runtime = jars.vigil_jar("vigil-runtime")  # the embedded-Python warm-up (config.yaml.template)
    wanted[runtime.name] = runtime
    for existing in lib.iterdir():
        if existing.name not in wanted or existing.resolve() != wanted[existing.name]:
            existing.unlink()
    for name, target in wanted.items():
        if not (lib / name).exists():
            (lib / name).symlink_to(target)
    return lib


def environment(settings: ClusterSettings = ClusterSettings()) -> dict[str, str]:
    """Environment for Flink's scripts (bin/flink too): our conf, lib, logs and pid folders."""
    import sys
    env = dict(os.environ)
    # Flink's scripts start Python (the job's client side, the workers): the interpreter that has
    # pyflink and Vigil installed must come first, whatever PATH the caller had.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYFLINK_CLIENT_EXECUTABLE"] = sys.executable
    env.update(FLINK_HOME=str(flink_home()), FLINK_CONF_DIR=str(_conf_dir(settings)),
               FLINK_LIB_DIR=str(_lib_dir()),
               FLINK_LOG_DIR=str(sub(home(), "log")), FLINK_PID_DIR=str(sub(home(), "pid")))
    if s3_store():
        from vigil import object_store
        env["FLINK_PLUGINS_DIR"] = str(object_store.plugins_dir())
    return env


def _tm_pid_files() -> list[Path]:
    return sorted(sub(home(), "pid").glob("taskmanager-*.pid"), key=lambda f: int(f.stem.split("-")[1]))


def taskmanager_pids() -> list[int]:
    return [pid for f in _tm_pid_files() if procs.is_alive(pid := procs.read_pid(f))]


def _jm_pid_file() -> Path:
    return sub(home(), "pid") / "jobmanager.pid"


def _standby_pid_file() -> Path:
    return sub(home(), "pid") / "jobmanager-standby.pid"


def jobmanager_pids() -> dict[int, int]:
    """REST port -> pid of each live JobManager (one, or the leader and standby with HA)."""
    settings = ClusterSettings()
    files = {settings.rest_port: _jm_pid_file(), settings.standby_rest_port: _standby_pid_file()}
    return {port: pid for port, f in files.items() if procs.is_alive(pid := procs.read_pid(f))}


def leading_rest_port(settings: ClusterSettings = ClusterSettings()) -> int | None:
    """The REST port of the JobManager that leads (its endpoint serves /overview), if any."""
    for port in (settings.rest_port, settings.standby_rest_port) if settings.ha else (settings.rest_port,):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/overview", timeout=2):
                return port
        except OSError:
            continue
    return None


def start_jobmanager(rest_port: int, pid_file: Path, settings: ClusterSettings = ClusterSettings()) -> int:
    """A JobManager process serving REST on `rest_port` (dynamic property: with HA, the leader and
    the standby share one configuration folder)."""
    name = "jobmanager" if pid_file == _jm_pid_file() else pid_file.stem
    return procs.spawn([str(flink_home() / "bin" / "jobmanager.sh"), "start-foreground", "-D", f"rest.port={rest_port}"],
                       sub(home(), "log") / f"{name}-{int(time.time())}.out", pid_file, env=environment(settings))


def rest(path: str, settings: ClusterSettings = ClusterSettings(), method: str = "GET",
         body: dict | None = None, timeout: float = 5):
    """One call to the leading JobManager's REST API. With HA, a standby's endpoint answers 503
    (or nothing, when the JobManager is gone): the next JobManager is asked."""
    data = json.dumps(body).encode() if body is not None else None
    urls = settings.rest_urls()
    for index, url in enumerate(urls):
        request = urllib.request.Request(url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            if error.code != 503 or index == len(urls) - 1:
                raise
        except OSError:
            if index == len(urls) - 1:
                raise


def _overview(settings: ClusterSettings) -> dict | None:
    try:
        return rest("/overview", settings, timeout=2)
    except OSError:
        return None


def _taskmanager_ids(settings: ClusterSettings) -> set[str]:
    """Registered TaskManagers (a killed one stays listed until its heartbeat times out)."""
    try:
        return {tm["id"] for tm in rest("/taskmanagers", settings, timeout=2)["taskmanagers"]}
    except OSError:
        return set()


def is_running(settings: ClusterSettings = ClusterSettings()) -> bool:
    return bool(jobmanager_pids()) and _overview(settings) is not None


def start_taskmanager(settings: ClusterSettings = ClusterSettings(), log=print) -> int:
    """Start one more TaskManager process and wait until the JobManager counts it."""
    return start_taskmanagers(1, settings, log)[0]


def start_taskmanagers(count: int, settings: ClusterSettings = ClusterSettings(), log=print) -> list[int]:
    """Start `count` more TaskManager processes at once and wait until the JobManager counts them
    all (started together, their JVMs and embedded Pythons start side by side)."""
    env = environment(settings)
    before = _taskmanager_ids(settings)
    first = 1 + max([int(f.stem.split("-")[1]) for f in _tm_pid_files()] or [0])
    pids = [procs.spawn([str(flink_home() / "bin" / "taskmanager.sh"), "start-foreground"],
                        sub(home(), "log") / f"taskmanager-{index}.out",
                        sub(home(), "pid") / f"taskmanager-{index}.pid", env=env)
            for index in range(first, first + count)]
    procs.wait_until(lambda: len(_taskmanager_ids(settings) - before) >= count, 90 + 30 * count,
                     f"{count} new TaskManager(s) to register")
    log(f"flink: TaskManager(s) {', '.join(map(str, range(first, first + count)))} registered (pids {pids})")
    return pids


def start(settings: ClusterSettings = ClusterSettings(), taskmanagers: int = 1, log=print) -> None:
    if is_running(settings):
        log(f"flink: already running, REST {settings.rest_url}")
        return
    if procs.port_open("127.0.0.1", settings.rest_port):
        raise RuntimeError(f"port {settings.rest_port} is taken by a process this project did not "
                           "start; set VIGIL_FLINK_REST_PORT")
    for stale in _tm_pid_files():
        stale.unlink()
    if settings.ha:
        from vigil import zookeeper
        zookeeper.start(log=log)
    if s3_store():   # outlives the cluster (stop() leaves it): the DR drill restores from it
        from vigil import object_store
        object_store.start(log=log)
        object_store.ensure_bucket(object_store.StoreSettings().bucket)
    log(f"flink: starting JobManager, REST {settings.rest_url} (logs: {home() / 'log'})")
    start_jobmanager(settings.rest_port, _jm_pid_file(), settings)
    procs.wait_until(lambda: _overview(settings) is not None, 90, "the Flink REST API")
    if settings.ha:
        log(f"flink: high availability through ZooKeeper; standby JobManager, REST "
            f"http://127.0.0.1:{settings.standby_rest_port}")
        start_jobmanager(settings.standby_rest_port, _standby_pid_file(), settings)
    if taskmanagers:
        start_taskmanagers(taskmanagers, settings, log)
    log(f"flink: ready, web UI {settings.rest_url}")


def stop_taskmanagers(log=print) -> None:
    """Stop every TaskManager of the cluster (the JobManager keeps running): benchmarks start fresh
    ones between variants, since a TaskManager's embedded Python keeps the modules it imported."""
    stopped = [procs.stop(f) for f in _tm_pid_files()]
    log(f"flink: {sum(stopped)} TaskManager(s) stopped")


def stop(log=print) -> None:
    stopped = [procs.stop(f) for f in _tm_pid_files()] + [procs.stop(_jm_pid_file()), procs.stop(_standby_pid_file())]
    log("flink: stopped" if any(stopped) else "flink: not running")
    if ClusterSettings().ha:
        from vigil import zookeeper
        zookeeper.stop(log=log)


def kill_all() -> list[int]:
    """SIGKILL the JobManager and every TaskManager with their children (Python workers), as the
    loss of the machine would (disaster-recovery drills); returns the pids killed."""
    import signal
    pids = [pid for f in [_jm_pid_file(), _standby_pid_file(), *_tm_pid_files()]
            if procs.is_alive(pid := procs.read_pid(f))]
    for pid in pids:
        procs.kill_tree(pid, signal.SIGKILL)
    procs.wait_until(lambda: not any(procs.is_alive(p) for p in pids), 15, "the cluster's processes to die")
    return pids


# What object storage would keep when the cluster is lost: the state, and the kept plans that
# restore it without recompiling the jobs (submit_kept_plan). With the S3 store they are in its
# bucket, and every local folder is working files.
DURABLE = ("checkpoints", "savepoints", "plans")


def durable_folders() -> tuple[str, ...]:
    return () if s3_store() else DURABLE


def wipe_working_files() -> list[str]:
    """Delete the cluster's local working files (config, links, logs, pids, anything else under
    its folder) except the checkpoint and savepoint store; returns what was deleted."""
    wiped = []
    for entry in sorted(home().iterdir()):
        if entry.name in durable_folders():
            continue
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        wiped.append(entry.name)
    return wiped


def status(settings: ClusterSettings = ClusterSettings()) -> str:
    overview = _overview(settings)
    if not is_running(settings) or overview is None:
        return "flink: stopped"
    return (f"flink: running, REST {settings.rest_url}, {overview['taskmanagers']} TaskManager(s), "
            f"{overview['slots-available']}/{overview['slots-total']} slots free, "
            f"{overview['jobs-running']} job(s) running")


# --- jobs on the cluster ----------------------------------------------------------------------

def submit_python_job(script: Path, args: list[str], python: str | None = None,
                      settings: ClusterSettings = ClusterSettings(), keep_plan: Path | None = None) -> str:
    """`flink run --detached -py script args` against this cluster; returns the job id. With
    `keep_plan`, the compiled plan is also written there (vigil-runtime KeptPlans), for
    submit_kept_plan to restore the job without running its Python client again."""
    import sys

    python = python or sys.executable
    target = ["-t", "vigil-remote", f"-Dvigil.kept-plan.path={keep_plan}"] if keep_plan else []
    cmd = [str(flink_home() / "bin" / "flink"), "run", "--detached", *target, "-py", str(script),
           "-pyclientexec", python, "-pyexec", python, *args]
    job_id = _submitted_job_id("flink run", cmd, settings)
    if keep_plan:
        _store_kept_plan(keep_plan)
    return job_id


def _submitted_job_id(what: str, cmd: list[str], settings: ClusterSettings) -> str:
    import re
    import subprocess

    result = subprocess.run(cmd, env=environment(settings), capture_output=True, text=True, timeout=300)
    match = re.search(r"JobID ([0-9a-f]{32})", result.stdout + result.stderr)
    if result.returncode != 0 or not match:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return match.group(1)


def kept_plan(script: Path, args: list[str]) -> Path:
    """Where the plan of `script` with `args` (no restore flags) is kept: keyed by the job's code
    and flags, so a plan is never reused for other code or other flags.

    >>> kept_plan(Path("jobs/ingest.py"), ["--a", "1"]).name.startswith("ingest-")
    True
    """
    import hashlib
    digest = hashlib.sha256("\0".join([script.name, *args]).encode())
    for folder in ("jobs", "udfs", "sql", "vigil", "java/vigil-formats/src"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".sql", ".java"):
                digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + path.read_bytes())
    return sub(home(), "plans") / f"{script.stem}-{digest.hexdigest()[:16]}.plan"


def restore_python_job(script: Path, args: list[str], restore_from: str, log=print,
                       settings: ClusterSettings = ClusterSettings()) -> tuple[str, bool]:
    """Resubmit `script` with `args` from `restore_from` (savepoint or retained checkpoint URI);
    returns (job id, whether the kept plan was used). The plan kept for this code and these flags
    is submitted when there is one (seconds); otherwise, or if it is refused (e.g. kept by another
    Flink version), `flink run -s` compiles the job again and keeps its plan."""
    plan = kept_plan(script, args)
    if not plan.exists():
        _fetch_kept_plan(plan, log)
    if plan.exists():
        try:
            return submit_kept_plan(plan, restore_from, settings), True
        except RuntimeError as error:
            log(f"the kept plan {plan.name} was refused, compiling the job again: {str(error)[-300:]}")
    return submit_python_job(script, ["-s", restore_from, *args], settings=settings, keep_plan=plan), False


def _plan_key(plan: Path) -> str:
    return f"{home().name}/plans/{plan.name}"


def _store_kept_plan(plan: Path) -> None:
    """With the S3 store, a copy of the plan goes to the bucket beside the checkpoints: a cluster
    whose local folders are lost restores from the plan as quickly."""
    if s3_store() and plan.exists():
        from vigil import object_store
        object_store.put_object(object_store.StoreSettings().bucket, _plan_key(plan), plan.read_bytes())


def _fetch_kept_plan(plan: Path, log=print) -> None:
    """The bucket's copy of a kept plan, if the S3 store has one (none: the job is compiled again)."""
    if not s3_store():
        return
    from vigil import object_store
    bucket = object_store.StoreSettings().bucket
    if any(o.key == _plan_key(plan) for o in object_store.list_objects(bucket, _plan_key(plan))):
        plan.parent.mkdir(parents=True, exist_ok=True)
        plan.write_bytes(object_store.get_object(bucket, _plan_key(plan)))
        log(f"kept plan {plan.name} read from s3://{bucket}/{_plan_key(plan)}")


def submit_kept_plan(plan: Path, restore_from: str, settings: ClusterSettings = ClusterSettings()) -> str:
    """Submit a kept plan (submit_python_job's keep_plan) as a new job restoring from
    `restore_from` (a savepoint or retained checkpoint URI); returns the job id. A JVM start and a
    REST call: seconds, where `flink run` compiles the Python plan for 10-45 s."""
    java = shutil.which("java") or "java"
    cmd = [java, "-cp", f"{_lib_dir()}/*", "vigil.flink.runtime.KeptPlans", str(plan), restore_from]
    return _submitted_job_id("submitting the kept plan " + plan.name, cmd, settings)


def job(job_id: str, settings: ClusterSettings = ClusterSettings()) -> dict:
    return rest(f"/jobs/{job_id}", settings)


def checkpoint_counts(job_id: str, settings: ClusterSettings = ClusterSettings()) -> dict:
    """{'completed': n, 'failed': n, 'restored': n, ...} from the REST API."""
    return rest(f"/jobs/{job_id}/checkpoints", settings)["counts"]


def wait_for_checkpoints(job_id: str, more_than: int, timeout_s: float = 120,
                         settings: ClusterSettings = ClusterSettings()) -> int:
    """Wait until the job has completed more than `more_than` checkpoints; return the count."""
    def done() -> bool:
        try:
            return checkpoint_counts(job_id, settings)["completed"] > more_than
        except OSError:
            return False
    procs.wait_until(done, timeout_s, f"checkpoint {more_than + 1} of job {job_id}", interval=0.5)
    return checkpoint_counts(job_id, settings)["completed"]


def wait_for_recovery(job_id: str, since_ms: int, timeout_s: float = 180,
                      settings: ClusterSettings = ClusterSettings()) -> tuple[int, int]:
    """Wait until the job has restored from a checkpoint after `since_ms` (epoch ms, e.g. a
    TaskManager kill) and then completed a checkpoint; return (restore started, that checkpoint
    acknowledged), both epoch ms. Checkpoint counts alone can mislead: one may complete just
    before the kill."""
    found: dict = {}

    def recovered() -> bool:
        try:
            latest = rest(f"/jobs/{job_id}/checkpoints", settings)["latest"]
        except OSError:
            return False
        restored, completed = latest.get("restored") or {}, latest.get("completed") or {}
        restore_ms = restored.get("restore_timestamp") or 0
        if restore_ms > since_ms and (completed.get("trigger_timestamp") or 0) > restore_ms:
            found["at"] = (restore_ms, completed["latest_ack_timestamp"])
            return True
        return False
    procs.wait_until(recovered, timeout_s, f"job {job_id} to restore and checkpoint again", interval=0.5)
    return found["at"]


def cancel(job_id: str, settings: ClusterSettings = ClusterSettings()) -> None:
    rest(f"/jobs/{job_id}?mode=cancel", settings, method="PATCH")
