"""Operator commands for savepoints, through Flink's REST API and `flink run -s`.

  vigil jobs [--all] [--json]                 jobs on the cluster: state, start, last checkpoint
                                              and savepoint, where it restored from
  vigil savepoint JOB [--timeout S]           trigger a savepoint, wait, print its path, catalog it
  vigil stop JOB --savepoint                  stop with a savepoint (drain false), catalog it
  vigil savepoints [--json] [--keep N]        the catalog; --keep N deletes older savepoints per
                                              job name (only folders the catalog recorded)
  vigil restore JOB (--from PATH | --latest) [--allow-dropped-state] [job flags]
                                              resubmit the job with `flink run -s PATH`, after
                                              the upgrade check (vigil/upgrade_check.py)

JOB is a job name (vigil-ingest), a `vigil submit` job (ingest) or a job id. Exit codes, for an
operator at night: 0 done; 2 job or savepoint not found, or the name is ambiguous (the ids are
listed); 3 the cluster's REST API does not answer; 4 the savepoint or the restore failed (Flink's
failure cause is printed); 5 the restore would drop savepoint state (the upgrade check's report is
printed; --allow-dropped-state drops it); 1 anything else.

The catalog is a JSON file beside the savepoints (`<cluster savepoint dir>/catalog.json`): job
name, job id, path, time, size on disk, code commit, plan fingerprint (a hash of the job's sorted
vertex ids, which Flink derives from the operator uids) and the job's arguments when known
(recorded when `vigil restore` submitted the job). The logic (parsing REST answers, choosing the
latest savepoint, retention, fingerprints) is in pure functions, tested in
tests/unit/test_savepoint_ops.py; I/O is in the `cmd_*` functions and the small helpers they call.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from vigil import audit_log, cli_args, flink_cluster
from vigil.paths import PROJECT_ROOT

OK, FAILED, NOT_FOUND, UNREACHABLE, SAVEPOINT_FAILED = 0, 1, 2, 3, 4
TERMINAL = {"FINISHED", "CANCELED", "FAILED"}
# Job names (pipeline.name) -> the `vigil submit` job that runs them (vigil/cli.py JOBS).
SUBMIT_JOB = {"vigil-ingest": "ingest", "vigil-fraud": "fraud_detection",
              "vigil-fraud-fast": "fraud_detection", "vigil-analytics": "analytics"}


class OpsError(Exception):
    """A failure with the exit code and the one message an operator acts on."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


# --- pure logic -------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobInfo:
    job_id: str
    name: str
    state: str
    start_ms: int


def parse_overview(answer: dict) -> list[JobInfo]:
    """GET /jobs/overview -> jobs, newest first.

    >>> parse_overview({"jobs": [{"jid": "a" * 32, "name": "vigil-ingest", "state": "RUNNING",
    ...                           "start-time": 5}]})
    [JobInfo(job_id='aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', name='vigil-ingest', state='RUNNING', start_ms=5)]
    """
    jobs = [JobInfo(j["jid"], j["name"], j["state"], int(j.get("start-time") or 0)) for j in answer.get("jobs", [])]
    return sorted(jobs, key=lambda j: j.start_ms, reverse=True)


def resolve_job(jobs: list[JobInfo], wanted: str, *, active_only: bool = True) -> JobInfo:
    """The one job meant by `wanted`: a job id, a job name (vigil-ingest) or a `vigil submit`
    job (ingest). Raises OpsError(2) when none or several match."""
    candidates = [j for j in jobs if not active_only or j.state not in TERMINAL]
    by_id = [j for j in jobs if j.job_id == wanted.lower()]
    if by_id:
        return by_id[0]
    names = {wanted, f"vigil-{wanted}"} | ({job_target(wanted)[0]} if _known(wanted) else set())
    matches = [j for j in candidates if j.name in names]
    if not matches:
        running = ", ".join(f"{j.name} ({j.job_id})" for j in candidates) or "none"
        raise OpsError(NOT_FOUND, f"no {'running ' if active_only else ''}job named or with id {wanted!r}; "
                                  f"running jobs: {running} (`vigil jobs`)")
    if len(matches) > 1:
        ids = ", ".join(f"{j.job_id} ({j.state}, started {fmt_ms(j.start_ms)})" for j in matches)
        raise OpsError(NOT_FOUND, f"{len(matches)} jobs named {matches[0].name}: {ids}; pass the job id")
    return matches[0]


def job_target(wanted: str) -> tuple[str, str]:
    """(job name, `vigil submit` job) for a job name or a `vigil submit` job.

    >>> job_target("ingest"), job_target("vigil-fraud-fast"), job_target("fraud_detection")
    (('vigil-ingest', 'ingest'), ('vigil-fraud-fast', 'fraud_detection'), ('vigil-fraud', 'fraud_detection'))
    """
    if wanted in SUBMIT_JOB:
        return wanted, SUBMIT_JOB[wanted]
    names = [n for n, job in SUBMIT_JOB.items() if job == wanted]
    if not names:
        raise OpsError(NOT_FOUND, f"unknown job {wanted!r}; jobs: {', '.join(sorted(set(SUBMIT_JOB.values())))} "
                                  f"or job names {', '.join(sorted(SUBMIT_JOB))}")
    return min(names, key=len), wanted


def _known(wanted: str) -> bool:
    return wanted in SUBMIT_JOB or wanted in SUBMIT_JOB.values()


def checkpoint_summary(answer: dict) -> dict:
    """GET /jobs/:id/checkpoints -> the last completed checkpoint, savepoint, failure and restore
    (path and epoch ms; None where there is none) and the counts."""
    latest = answer.get("latest") or {}

    def point(entry: dict | None, at: str) -> dict | None:
        if not entry:
            return None
        return {"id": entry.get("id"), "path": entry.get("external_path"), "at_ms": entry.get(at),
                "size": entry.get("state_size") or entry.get("checkpointed_size")}
    failed = latest.get("failed")
    return {"counts": answer.get("counts") or {},
            "checkpoint": point(latest.get("completed"), "latest_ack_timestamp"),
            "savepoint": point(latest.get("savepoint"), "latest_ack_timestamp"),
            "restored": point(latest.get("restored"), "restore_timestamp"),
            "failed": None if not failed else {"id": failed.get("id"), "at_ms": failed.get("failure_timestamp"),
                                               "message": failed.get("failure_message")}}


def plan_fingerprint(plan_answer: dict) -> str:
    """A short hash of the job's sorted vertex ids (GET /jobs/:id/plan or /jobs/:id). Flink
    derives a vertex id from its head operator's uid, so the same uids give the same fingerprint
    whatever the names and parallelism; a changed plan (new, removed or renamed stateful
    operators) gives another.

    >>> a = {"plan": {"nodes": [{"id": "v2", "description": "x"}, {"id": "v1"}]}}
    >>> plan_fingerprint(a) == plan_fingerprint({"vertices": [{"id": "v1"}, {"id": "v2", "name": "y"}]})
    True
    >>> plan_fingerprint(a) == plan_fingerprint({"plan": {"nodes": [{"id": "v1"}]}})
    False
    """
    nodes = (plan_answer.get("plan") or {}).get("nodes") or plan_answer.get("vertices") or []
    ids = sorted(str(n["id"]) for n in nodes)
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def trigger_outcome(answer: dict) -> tuple[str, str | None]:
    """GET /jobs/:id/savepoints/:trigger -> ("IN_PROGRESS", None), ("COMPLETED", path) or
    ("FAILED", Flink's failure cause)."""
    status = (answer.get("status") or {}).get("id", "IN_PROGRESS")
    if status != "COMPLETED":
        return "IN_PROGRESS", None
    operation = answer.get("operation") or {}
    if operation.get("location"):
        return "COMPLETED", operation["location"]
    return "FAILED", failure_text(operation.get("failure-cause") or {})


def failure_text(cause: dict) -> str:
    """Flink's failure cause, reduced to what an operator reads: the exception line and every
    `Caused by:` line of the stack trace (the root cause last).

    >>> failure_text({"class": "java.util.concurrent.CompletionException", "stack-trace":
    ...     "java.util.concurrent.CompletionException: x\\n\\tat a.b(C.java:1)\\n"
    ...     "Caused by: org.apache.flink.runtime.checkpoint.CheckpointException: Checkpoint Coordinator is suspending."})
    'java.util.concurrent.CompletionException: x; Caused by: org.apache.flink.runtime.checkpoint.CheckpointException: Checkpoint Coordinator is suspending.'
    """
    trace = cause.get("stack-trace") or ""
    lines = [line.strip() for line in trace.splitlines() if line.strip()]
    keep = lines[:1] + [line for line in lines[1:] if line.startswith("Caused by:")]
    return "; ".join(keep) or cause.get("class") or "no failure cause given"


def local_path(location: str) -> Path | None:
    """The folder of a `file:` savepoint location, None for other file systems.

    >>> local_path("file:/a/savepoints/savepoint-1a2b3c-0123456789ab")
    PosixPath('/a/savepoints/savepoint-1a2b3c-0123456789ab')
    >>> local_path("s3://bucket/sp") is None
    True
    """
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path)
    return None


@dataclass
class CatalogEntry:
    job_name: str
    job_id: str
    path: str
    taken_ms: int
    kind: str                          # "savepoint" or "stop-with-savepoint"
    size_bytes: int | None = None
    commit: str | None = None
    plan_fingerprint: str | None = None
    args: list[str] | None = None      # the job's flags, when known
    restored_by: list[str] = field(default_factory=list)   # job ids restored from it


def latest_entry(entries: list[CatalogEntry], job_name: str) -> CatalogEntry | None:
    """The newest catalogued savepoint of `job_name` (None if there is none).

    >>> e = lambda t: CatalogEntry("vigil-ingest", "j", f"file:/s{t}", t, "savepoint")
    >>> latest_entry([e(1), e(3), e(2)], "vigil-ingest").taken_ms
    3
    >>> latest_entry([e(1)], "vigil-fraud") is None
    True
    """
    own = [e for e in entries if e.job_name == job_name]
    return max(own, key=lambda e: e.taken_ms) if own else None


def retention(entries: list[CatalogEntry], keep: int) -> tuple[list[CatalogEntry], list[CatalogEntry]]:
    """(kept, to delete): the newest `keep` savepoints of each job name are kept, the older go.

    >>> e = lambda n, t: CatalogEntry(n, "j", f"file:/{n}{t}", t, "savepoint")
    >>> kept, gone = retention([e("a", 1), e("a", 3), e("b", 1), e("a", 2)], 2)
    >>> [(x.job_name, x.taken_ms) for x in gone]
    [('a', 1)]
    """
    if keep < 1:
        raise ValueError("--keep must be at least 1: the newest savepoint is the way back")
    kept, gone = [], []
    for name in sorted({e.job_name for e in entries}):
        own = sorted((e for e in entries if e.job_name == name), key=lambda e: e.taken_ms, reverse=True)
        kept += own[:keep]
        gone += own[keep:]
    return kept, gone


def restore_command_args(savepoint: str, allow_dropped_state: bool, job_flags: list[str]) -> list[str]:
    """The arguments after `flink run ... -py script -pyclientexec P -pyexec P`: Flink's `-s`
    (and `-n` only when asked) come before the job's own flags, where Flink's CLI still reads
    options (it stops at the first argument it does not know).

    >>> restore_command_args("file:/s/sp-1", False, ["--raw-topic", "r"])
    ['-s', 'file:/s/sp-1', '--raw-topic', 'r']
    >>> restore_command_args("file:/s/sp-1", True, [])
    ['-s', 'file:/s/sp-1', '--allowNonRestoredState']
    """
    return ["-s", savepoint, *(["--allowNonRestoredState"] if allow_dropped_state else []), *job_flags]


def fmt_ms(ms: int | None) -> str:
    """>>> fmt_ms(0)
    '-'
    >>> fmt_ms(1767225600000)
    '2026-01-01 00:00:00Z'
    """
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


# --- I/O ----------------------------------------------------------------------------------------

def _rest(path: str, method: str = "GET", body: dict | None = None, timeout: float = 10):
    settings = flink_cluster.ClusterSettings()
    try:
        return flink_cluster.rest(path, settings, method=method, body=body, timeout=timeout)
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        if error.code == 404:
            raise OpsError(NOT_FOUND, f"Flink answered 404 for {path}: {text[:300]}") from error
        raise OpsError(FAILED, f"Flink answered {error.code} for {method} {path}: {text[:500]}") from error
    except OSError as error:
        raise OpsError(UNREACHABLE, f"the Flink REST API at {settings.rest_url} does not answer ({error}); "
                                    "is the cluster up? `vigil cluster status`") from error


def catalog_file() -> Path:
    return flink_cluster.savepoint_dir() / "catalog.json"


def load_catalog(path: Path | None = None) -> list[CatalogEntry]:
    path = path or catalog_file()
    if not path.exists():
        return []
    return [CatalogEntry(**row) for row in json.loads(path.read_text())["savepoints"]]


def save_catalog(entries: list[CatalogEntry], path: Path | None = None) -> None:
    path = path or catalog_file()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"savepoints": [asdict(e) for e in entries]}, indent=2) + "\n")
    os.replace(tmp, path)   # a reader never sees half a catalog


def _submissions_file() -> Path:
    return flink_cluster.savepoint_dir() / "submissions.json"


def _submitted_args(job_id: str) -> list[str] | None:
    path = _submissions_file()
    return json.loads(path.read_text()).get(job_id) if path.exists() else None


def _record_submission(job_id: str, args: list[str]) -> None:
    path = _submissions_file()
    known = json.loads(path.read_text()) if path.exists() else {}
    known[job_id] = args
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(known, indent=2) + "\n")
    os.replace(tmp, path)


def _size_on_disk(location: str) -> int | None:
    folder = local_path(location)
    if folder is None or not folder.exists():
        return None
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _jobs() -> list[JobInfo]:
    return parse_overview(_rest("/jobs/overview"))


def _fingerprint(job_id: str) -> str:
    try:
        return plan_fingerprint(_rest(f"/jobs/{job_id}/plan"))
    except OpsError:
        return plan_fingerprint(_rest(f"/jobs/{job_id}"))


def _await_trigger(job: JobInfo, request_id: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, value = trigger_outcome(_rest(f"/jobs/{job.job_id}/savepoints/{request_id}"))
        if status == "COMPLETED":
            return value
        if status == "FAILED":
            raise OpsError(SAVEPOINT_FAILED, f"savepoint of {job.name} ({job.job_id}) failed: {value}")
        time.sleep(0.5)
    raise OpsError(SAVEPOINT_FAILED, f"savepoint of {job.name} ({job.job_id}) not done after {timeout_s:.0f}s "
                                     f"(trigger {request_id}); the job keeps running. Check `vigil jobs` and "
                                     "the JobManager log before retrying")


def _await_terminal(job: JobInfo, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    state = None
    while time.monotonic() < deadline:
        state = _rest(f"/jobs/{job.job_id}")["state"]
        if state in TERMINAL:
            if state != "FINISHED":
                raise OpsError(SAVEPOINT_FAILED, f"{job.name} ({job.job_id}) ended {state} after its stop savepoint; "
                                                 "`vigil jobs --all` and the JobManager log say why")
            return
        time.sleep(0.5)
    raise OpsError(SAVEPOINT_FAILED, f"{job.name} ({job.job_id}) still {state} {timeout_s:.0f}s after its stop "
                                     "savepoint completed")


def _catalogue(job: JobInfo, location: str, kind: str, fingerprint: str) -> CatalogEntry:
    entry = CatalogEntry(job_name=job.name, job_id=job.job_id, path=location, taken_ms=int(time.time() * 1000),
                         kind=kind, size_bytes=_size_on_disk(location), commit=_commit(),
                         plan_fingerprint=fingerprint, args=_submitted_args(job.job_id))
    save_catalog(load_catalog() + [entry])
    return entry


def take_savepoint(wanted: str, *, stop: bool, timeout_s: float = 300) -> CatalogEntry:
    job = resolve_job(_jobs(), wanted)
    fingerprint = _fingerprint(job.job_id)   # before a stop: a stopped job's plan is still served, but be sure
    target = flink_cluster.savepoint_uri()
    if stop:
        answer = _rest(f"/jobs/{job.job_id}/stop", "POST", {"targetDirectory": target, "drain": False})
    else:
        answer = _rest(f"/jobs/{job.job_id}/savepoints", "POST", {"target-directory": target, "cancel-job": False})
    location = _await_trigger(job, answer["request-id"], timeout_s)
    if stop:   # the savepoint is done before the job is: say "stopped" only once it is
        _await_terminal(job, timeout_s)
    return _catalogue(job, location, "stop-with-savepoint" if stop else "savepoint", fingerprint)


def resolve_savepoint(wanted: str, source: str | None, latest: bool, job_flags: list[str]
                      ) -> tuple[str, str, CatalogEntry | None, str, list[str]]:
    """(job name, `vigil submit` job, catalog entry if known, savepoint location, job flags) for
    `vigil restore` and `vigil upgrade check`: --latest is the newest catalogued savepoint of the
    job; without job flags, the recorded ones (else the job's defaults)."""
    name, submit_job = job_target(wanted)
    entries = load_catalog()
    if latest:
        entry = latest_entry(entries, name)
        if entry is None:
            raise OpsError(NOT_FOUND, f"no catalogued savepoint of {name} in {catalog_file()}; "
                                      "`vigil savepoints` lists them, or pass --from PATH")
    else:
        entry = next((e for e in entries if e.path == source or local_path(e.path) == local_path(source)), None)
    location = entry.path if entry else (Path(source).resolve().as_uri() if "://" not in source and
                                         not source.startswith("file:") else source)
    folder = local_path(location)
    try:
        found = folder is None or (folder / "_metadata").is_file()
    except (OSError, ValueError):     # a name too long for the file system, a NUL
        found = False
    if not found:
        raise OpsError(NOT_FOUND, f"{location[:300]} is not a savepoint (no _metadata in {str(folder)[:300]})")
    flags = job_flags if job_flags else list(entry.args or []) if entry else []
    return name, submit_job, entry, location, flags


def restore(wanted: str, source: str | None, latest: bool, allow_dropped_state: bool,
            job_flags: list[str]) -> tuple[str, CatalogEntry | None, list[str]]:
    """Submit the job from a savepoint; returns (new job id, catalog entry if known, flags used).
    The upgrade check runs first: state the new job would drop stops the restore (exit 5, the
    report printed) unless `allow_dropped_state`, which prints the report and drops it."""
    from vigil import upgrade_check
    from vigil.cli import JOBS   # the scripts `vigil submit` runs

    name, submit_job, entry, location, flags = resolve_savepoint(wanted, source, latest, job_flags)
    _rest("/overview")   # an unreachable cluster is exit 3, not a flink run failure
    report = upgrade_check.check(PROJECT_ROOT / JOBS[submit_job], location, flags)
    if report is None:
        print(f"vigil: {location} is not local: not checked here; Flink refuses the restore if state would be "
              "dropped", file=sys.stderr)
    elif not report.compatible and not allow_dropped_state:
        raise OpsError(upgrade_check.STATE_DROPPED, f"restore of {name} refused: the new job would drop savepoint "
                                                    f"state (--allow-dropped-state drops it).\n{upgrade_check.render(report)}")
    elif not report.compatible:
        print(f"vigil: --allow-dropped-state: this state is DROPPED.\n{upgrade_check.render(report)}", file=sys.stderr)
    script = PROJECT_ROOT / JOBS[submit_job]
    try:
        if allow_dropped_state:   # flink run -s ... --allowNonRestoredState; no plan kept for it
            job_id = flink_cluster.submit_python_job(script, restore_command_args(location, True, flags))
        else:
            job_id, from_plan = flink_cluster.restore_python_job(
                script, flags, location, log=lambda text: print(f"vigil: {text}", file=sys.stderr))
            if from_plan:
                print("vigil: submitted the job's kept plan (no recompilation)", file=sys.stderr)
    except RuntimeError as error:
        text = str(error)
        hint = (" The savepoint holds state for operators this job no longer has: see `savepoints/README.md`; "
                "--allow-dropped-state drops that state." if "allowNonRestoredState" in text else "")
        raise OpsError(SAVEPOINT_FAILED, f"restore of {name} from {location} failed.{hint}\n{_cause_lines(text)}") from error
    _record_submission(job_id, flags)
    if entry:
        entries = load_catalog()   # re-read: the check took a while
        for known in entries:
            if known.path == entry.path:
                known.restored_by.append(job_id)
        save_catalog(entries)
    return job_id, entry, flags


def _cause_lines(text: str) -> str:
    lines = [line for line in text.splitlines() if "Exception" in line or line.startswith("Caused by")]
    return "\n".join(lines[:8]) or text[-2000:]


def delete_savepoint(entry: CatalogEntry) -> bool:
    """Delete a catalogued savepoint's folder: only a local folder holding a savepoint's
    `_metadata`, never anything else."""
    folder = local_path(entry.path)
    if folder is None or not folder.is_dir() or not (folder / "_metadata").exists():
        return False
    shutil.rmtree(folder)
    return True


# --- commands -----------------------------------------------------------------------------------

def cmd_jobs(args) -> int:
    rows = []
    for job in _jobs():
        if not args.all and job.state in TERMINAL:
            continue
        summary = checkpoint_summary(_rest(f"/jobs/{job.job_id}/checkpoints"))
        rows.append({**asdict(job), **summary})
    if args.json:
        print(json.dumps(rows, indent=2))
        return OK
    if not rows:
        print("no running jobs" + ("" if args.all else " (--all shows finished ones)"))
    for row in rows:
        print(f"{row['name']}  {row['job_id']}  {row['state']}  started {fmt_ms(row['start_ms'])}")
        for label in ("checkpoint", "savepoint", "restored"):
            point = row[label]
            print(f"    {'last ' + label if label != 'restored' else 'restored from':<16} "
                  + (f"{fmt_ms(point['at_ms'])}  {point['path']}" if point else "-"))
        if row["failed"]:
            print(f"    last failure     {fmt_ms(row['failed']['at_ms'])}  {row['failed']['message']}")
    return OK


def cmd_savepoint(args) -> int:
    entry = take_savepoint(args.job, stop=False, timeout_s=args.timeout)
    print(entry.path)
    print(f"savepoint of {entry.job_name} ({entry.job_id}) done; catalogued in {catalog_file()}", file=sys.stderr)
    audit_log.record("savepoint.take", entry.job_name, after={"job_id": entry.job_id, "path": entry.path})
    return OK


def cmd_stop(args) -> int:
    if not args.savepoint:
        raise OpsError(FAILED, "vigil stop needs --savepoint (to stop without one: `flink cancel <job id>`)")
    entry = take_savepoint(args.job, stop=True, timeout_s=args.timeout)
    print(entry.path)
    print(f"{entry.job_name} ({entry.job_id}) stopped with a savepoint; restore: "
          f"vigil restore {entry.job_name} --latest", file=sys.stderr)
    audit_log.record("job.stop", entry.job_name, before={"job_id": entry.job_id, "state": "RUNNING"},
                     after={"state": "STOPPED", "savepoint": entry.path})
    return OK


def cmd_savepoints(args) -> int:
    entries = load_catalog()
    if args.keep is not None:
        kept, gone = retention(entries, args.keep)
        for entry in gone:
            done = delete_savepoint(entry)
            print(f"{'deleted' if done else 'forgot (folder not found)'}: {entry.job_name} {fmt_ms(entry.taken_ms)} "
                  f"{entry.path}", file=sys.stderr)
        save_catalog(kept)
        entries = kept
    entries = sorted(entries, key=lambda e: (e.job_name, -e.taken_ms))
    if args.json:
        print(json.dumps([{**asdict(e), "exists": _exists(e)} for e in entries], indent=2))
        return OK
    if not entries:
        print(f"no savepoints catalogued in {catalog_file()}")
    for e in entries:
        size = f"{e.size_bytes / 1e6:.1f} MB" if e.size_bytes is not None else "size ?"
        print(f"{e.job_name}  {fmt_ms(e.taken_ms)}  {e.kind}  {size}  plan {e.plan_fingerprint}  "
              f"commit {(e.commit or '?')[:10]}  job {e.job_id}{'' if _exists(e) else '  (MISSING on disk)'}")
        print(f"    {e.path}")
        if e.args is not None:
            print(f"    args: {' '.join(e.args) or '(job defaults)'}")
    return OK


def _exists(entry: CatalogEntry) -> bool | None:
    folder = local_path(entry.path)
    return None if folder is None else (folder / "_metadata").exists()


def cmd_restore(args, extra: list[str]) -> int:
    if bool(args.source) == bool(args.latest):
        raise OpsError(FAILED, "vigil restore needs exactly one of --from PATH and --latest")
    flags = extra[1:] if extra[:1] == ["--"] else extra
    job_id, entry, used = restore(args.job, args.source, args.latest, args.allow_dropped_state, flags)
    path = entry.path if entry else args.source
    print(job_id)
    print(f"restored {args.job} from {path} as job {job_id}; flags: {' '.join(used) or '(job defaults)'}"
          + ("" if entry is None or entry.plan_fingerprint is None else
             f"; savepoint plan {entry.plan_fingerprint}, new plan {_fingerprint_or_none(job_id)}"), file=sys.stderr)
    audit_log.record("job.restore", args.job, before={"restore_point": path},
                     after={"job_id": job_id, "flags": used, "allow_dropped_state": bool(args.allow_dropped_state)})
    return OK


def _fingerprint_or_none(job_id: str) -> str | None:
    try:
        return _fingerprint(job_id)
    except OpsError:
        return None


def _run(func):
    def wrapped(*a) -> int:
        try:
            return func(*a)
        except OpsError as error:
            print(f"vigil: {error}", file=sys.stderr)
            return error.code
        except ValueError as error:
            print(f"vigil: {error}", file=sys.stderr)
            return FAILED
    return wrapped


def add_parser(sub) -> None:
    """`vigil jobs|savepoint|stop|savepoints|restore` (vigil/cli.py: `savepoint_ops.add_parser(sub)`)."""
    p = sub.add_parser("jobs", help="jobs on the Flink cluster, their last checkpoint and savepoint")
    p.add_argument("--all", action="store_true", help="finished, cancelled and failed jobs too")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run(cmd_jobs))

    for name, func, text in (("savepoint", cmd_savepoint, "take a savepoint of a running job"),
                             ("stop", cmd_stop, "stop a job with a savepoint")):
        p = sub.add_parser(name, help=text)
        p.add_argument("job", help="job name (vigil-ingest), vigil submit job (ingest) or job id")
        if name == "stop":
            p.add_argument("--savepoint", action="store_true", help="required: stop with a savepoint (drain false)")
        p.add_argument("--timeout", type=cli_args.bounded(float, 1, 86_400), default=300, help="seconds to wait for the savepoint (default 300)")
        p.set_defaults(func=_run(func))

    p = sub.add_parser("savepoints", help="the savepoint catalog, with retention")
    p.add_argument("--json", action="store_true")
    p.add_argument("--keep", type=int, help="keep the newest N savepoints per job name, delete older catalogued ones")
    p.set_defaults(func=_run(cmd_savepoints))

    p = sub.add_parser("restore", help="resubmit a job from a savepoint (flink run -s)", allow_abbrev=False)
    p.add_argument("job", help="ingest, fraud_detection, analytics or a job name (vigil-ingest)")
    p.add_argument("--from", dest="source", help="savepoint path (file:/... or a folder)")
    p.add_argument("--latest", action="store_true", help="the newest catalogued savepoint of the job")
    p.add_argument("--allow-dropped-state", action="store_true",
                   help="pass --allowNonRestoredState: state of operators the job no longer has is DROPPED")
    p.set_defaults(func=_run(cmd_restore), passthrough=True)
