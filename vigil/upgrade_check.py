"""`vigil upgrade check JOB --from PATH | --latest [job flags]`: which savepoint state a restore
of the code as checked out now would keep, and which it would drop.

Flink restores a savepoint by operator id: each operator state in `_metadata` goes to the operator
of the new job with that id (Flink derives it from the operator's uid; Vigil's jobs set uids for
every operator, savepoints/README.md). State whose id the new job lacks makes Flink refuse the
restore with one line naming a hex id, or, with --allowNonRestoredState, vanish. This check says
it before the restore, by name:

- savepoint side: java/vigil-runtime SavepointStates reads `_metadata` with Flink's own loader;
- new-job side: the job script runs with the same flags `vigil restore` would pass, under
  `flink run -t vigil-plan-export` (java/vigil-runtime PlanExportExecutorFactory), which writes
  the JobGraph's operators (generated and user-defined ids, names, uids) instead of running it;
- `compare` (pure, tests/unit/test_upgrade_check.py) matches them as Flink's
  Checkpoints.loadAndValidateCheckpoint does: an id matches a new operator's generated or
  user-defined id; an unmatched state blocks the restore only if it holds something.

Exit codes (those of savepoint_ops, plus one): 0 compatible, every state in the savepoint maps
to an operator of the new job; 5 state would be dropped (listed); 2 job or savepoint not found;
4 the check failed (savepoint unreadable, job script failed: its error printed); 1 usage.
`vigil restore` runs the same check first and refuses with the same report (exit 5) unless
--allow-dropped-state is given.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vigil import flink_cluster, jars, savepoint_ops
from vigil.paths import PROJECT_ROOT
from vigil.savepoint_ops import OpsError

STATE_DROPPED = 5
# Operator factories whose operators keep non-keyed state: source splits (offsets), sink writers'
# and committers' pending transactions. Keyed operators are known from the plan itself.
STATEFUL_FACTORIES = ("SourceOperatorFactory", "SinkWriterOperatorFactory", "CommitterOperatorFactory")


# --- pure logic -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SavedState:
    """One operator state of a savepoint (SavepointStates' JSON)."""

    id: str
    name: str | None = None
    uid: str | None = None
    state_size: int = 0
    parallelism: int = 1
    max_parallelism: int = 128
    keyed: bool = False
    operator_state: bool = False
    coordinator_state: bool = False
    has_state: bool = False


@dataclass(frozen=True)
class NewOperator:
    """One operator of the new job's JobGraph (PlanExportExecutorFactory's JSON)."""

    generated_id: str
    user_defined_id: str | None = None
    name: str | None = None
    uid: str | None = None
    keyed: bool = False
    factory: str | None = None
    vertex: str | None = None

    @property
    def ids(self) -> set[str]:
        return {self.generated_id} | ({self.user_defined_id} if self.user_defined_id else set())

    @property
    def stateful(self) -> bool:
        """Keyed, or a source/sink operator: it would hold state in the new job."""
        return self.keyed or (self.factory or "").rsplit(".", 1)[-1] in STATEFUL_FACTORIES


@dataclass
class Report:
    savepoint: str
    job_name: str | None
    mapped: list[tuple[SavedState, NewOperator]] = field(default_factory=list)
    dropped: list[SavedState] = field(default_factory=list)          # has state, no operator
    empty_unmatched: list[SavedState] = field(default_factory=list)  # no state, no operator: harmless
    new_stateful: list[NewOperator] = field(default_factory=list)    # start empty
    hints: dict[str, NewOperator] = field(default_factory=dict)      # dropped id -> likely successor

    @property
    def compatible(self) -> bool:
        return not self.dropped


def parse_savepoint(answer: dict) -> list[SavedState]:
    """SavepointStates' JSON -> the savepoint's operator states.

    >>> parse_savepoint({"operators": [{"id": "ab", "state_size": 7, "has_state": True, "extra": 1}]})
    [SavedState(id='ab', name=None, uid=None, state_size=7, parallelism=1, max_parallelism=128, keyed=False, operator_state=False, coordinator_state=False, has_state=True)]
    """
    known = SavedState.__dataclass_fields__
    return [SavedState(**{k: v for k, v in op.items() if k in known}) for op in answer.get("operators", [])]


def parse_plan(answer: dict) -> list[NewOperator]:
    """PlanExportExecutorFactory's JSON -> the new job's operators, each with its vertex's name."""
    known = NewOperator.__dataclass_fields__
    return [NewOperator(**{k: v for k, v in op.items() if k in known}, vertex=vertex.get("name"))
            for vertex in answer.get("vertices", []) for op in vertex.get("operators", [])]


def operator_kind(name: str | None, uid: str | None) -> str | None:
    """What an operator is, without the plan's node ids (which any SQL change renumbers): the
    key for guessing which new operator a dropped state's operator became.

    >>> operator_kind("clean_events[8]: Writer", "vigil-ingest.8_sink")
    'clean_events: Writer'
    >>> operator_kind(None, "vigil-ingest.6_over-aggregate")
    'over-aggregate'
    >>> operator_kind(None, None) is None
    True
    """
    if name:
        return re.sub(r"\[\d+\]", "", name)
    if uid:
        return re.sub(r"^.*\.\d+_", "", uid)
    return None


def compare(saved: list[SavedState], new: list[NewOperator], savepoint: str = "",
            job_name: str | None = None) -> Report:
    """Match savepoint states to new operators by id, as Flink does on restore.

    >>> s = [SavedState("a1", "OverAggregate[6]", has_state=True, state_size=10),
    ...      SavedState("b2", "Calc[7]"), SavedState("c3", "OverAggregate[5]", has_state=True)]
    >>> n = [NewOperator("a1", name="OverAggregate[6]", keyed=True), NewOperator("d4", name="OverAggregate[9]", keyed=True)]
    >>> r = compare(s, n)
    >>> [x.id for x in r.dropped], [x.id for x in r.empty_unmatched], [x.generated_id for x in r.new_stateful]
    (['c3'], ['b2'], ['d4'])
    >>> r.hints["c3"].generated_id, r.compatible
    ('d4', False)
    """
    by_id = {i: op for op in new for i in op.ids}
    report = Report(savepoint=savepoint, job_name=job_name)
    for state in saved:
        operator = by_id.get(state.id)
        if operator is not None:
            report.mapped.append((state, operator))
        elif state.has_state:
            report.dropped.append(state)
        else:
            report.empty_unmatched.append(state)
    saved_ids = {s.id for s in saved}
    report.new_stateful = [op for op in new if op.stateful and not (op.ids & saved_ids)]
    for state in report.dropped:   # a successor is a guess: only when exactly one new operator fits
        kind = operator_kind(state.name, state.uid)
        fits = [op for op in report.new_stateful if kind and operator_kind(op.name, op.uid) == kind]
        if len(fits) == 1:
            report.hints[state.id] = fits[0]
    return report


def exit_code(report: Report) -> int:
    return savepoint_ops.OK if report.compatible else STATE_DROPPED


def _size(n: int) -> str:
    """>>> _size(512), _size(2_500_000)
    ('512 B', '2.5 MB')
    """
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _label(name: str | None, uid: str | None) -> str:
    return f"{name or '(name unknown)'}  uid {uid or '(unknown)'}"


def _kinds(state: SavedState) -> str:
    kinds = [k for k, on in (("keyed", state.keyed), ("operator", state.operator_state),
                             ("coordinator", state.coordinator_state)) if on]
    return "+".join(kinds) or "empty"


def render(report: Report) -> str:
    """The report an operator reads before a restore (savepoints/README.md shows one)."""
    lines = [f"upgrade check: {report.job_name or 'job'} (code as checked out) from {report.savepoint}"]
    if report.dropped:
        lines.append(f"STATE WOULD BE DROPPED ({len(report.dropped)} operator(s) of the savepoint are not in "
                     "the new job):")
        for state in report.dropped:
            lines.append(f"  {state.id}  {_label(state.name, state.uid)}  {_size(state.state_size)} "
                         f"{_kinds(state)} state, parallelism {state.parallelism}")
            hint = report.hints.get(state.id)
            if hint:
                lines.append(f"      probably now {hint.generated_id}  {_label(hint.name, hint.uid)} (its uid changed)")
    lines.append(f"restored ({sum(1 for s, _ in report.mapped if s.has_state)} with state, "
                 f"{sum(1 for s, _ in report.mapped if not s.has_state)} stateless):")
    for state, operator in report.mapped:
        if state.has_state:
            lines.append(f"  {state.id}  {_label(operator.name, operator.uid)}  {_size(state.state_size)} "
                         f"{_kinds(state)} state")
    if report.new_stateful:
        lines.append(f"new stateful operators, starting EMPTY ({len(report.new_stateful)}):")
        lines += [f"  {op.generated_id}  {_label(op.name, op.uid)}  "
                  f"{'keyed' if op.keyed else (op.factory or '').rsplit('.', 1)[-1]}" for op in report.new_stateful]
    if report.empty_unmatched:
        lines.append(f"({len(report.empty_unmatched)} stateless operator(s) of the savepoint are gone: nothing lost)")
    lines.append("compatible: every state in the savepoint maps to an operator of the new job" if report.compatible
                 else f"NOT compatible: restoring drops {_size(sum(s.state_size for s in report.dropped))} of state "
                      "(`vigil restore` refuses unless --allow-dropped-state)")
    return "\n".join(lines)


def as_json(report: Report) -> dict:
    return {"savepoint": report.savepoint, "job_name": report.job_name, "compatible": report.compatible,
            "dropped": [{**asdict(s), "likely_successor": asdict(report.hints[s.id]) if s.id in report.hints else None}
                        for s in report.dropped],
            "mapped": [{"state": asdict(s), "operator": asdict(o)} for s, o in report.mapped],
            "new_stateful": [asdict(o) for o in report.new_stateful],
            "empty_unmatched": [asdict(s) for s in report.empty_unmatched]}


# --- I/O ----------------------------------------------------------------------------------------

def savepoint_states(folder: Path) -> list[SavedState]:
    """Run SavepointStates on a local savepoint folder (a JVM with the wheel's lib/)."""
    classpath = f"{flink_cluster.flink_home() / 'lib'}/*:{jars.vigil_jar('vigil-runtime', log=_stderr)}"
    result = subprocess.run(["java", "-cp", classpath, "vigil.flink.runtime.SavepointStates", str(folder)],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise OpsError(savepoint_ops.SAVEPOINT_FAILED,
                       f"could not read the savepoint metadata in {folder}:\n{result.stderr[-2000:]}")
    return parse_savepoint(json.loads(result.stdout))


def job_plan(script: Path, job_flags: list[str]) -> tuple[str | None, list[NewOperator]]:
    """The new job's operators: its script, run with `job_flags` under the plan-export executor."""
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="vigil-plan-") as tmp:
        out = Path(tmp) / "plan.json"
        cmd = [str(flink_cluster.flink_home() / "bin" / "flink"), "run", "--detached",
               "-t", "vigil-plan-export", f"-Dvigil.plan-export.path={out}",
               "-py", str(script), "-pyclientexec", python, "-pyexec", python, *job_flags]
        result = subprocess.run(cmd, env=flink_cluster.environment(), capture_output=True, text=True, timeout=600)
        if result.returncode != 0 or not out.exists():
            raise OpsError(savepoint_ops.SAVEPOINT_FAILED,
                           f"could not build the plan of {script.name} with flags {' '.join(job_flags) or '(defaults)'}:\n"
                           + savepoint_ops._cause_lines(result.stdout + result.stderr))
        answer = json.loads(out.read_text())
    return answer.get("job_name"), parse_plan(answer)


def check(script: Path, location: str, job_flags: list[str]) -> Report | None:
    """Compare a savepoint with the job as checked out; None for a savepoint on a remote file
    system (not read here: Flink's own check still refuses a restore that drops state)."""
    folder = savepoint_ops.local_path(location)
    if folder is None:
        return None
    saved = savepoint_states(folder)
    job_name, new = job_plan(script, job_flags)
    return compare(saved, new, location, job_name)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def cmd_check(args, extra: list[str]) -> int:
    from vigil.cli import JOBS

    if bool(args.source) == bool(args.latest):
        raise OpsError(savepoint_ops.FAILED, "vigil upgrade check needs exactly one of --from PATH and --latest")
    flags = extra[1:] if extra[:1] == ["--"] else extra
    name, submit_job, entry, location, used = savepoint_ops.resolve_savepoint(args.job, args.source, args.latest, flags)
    _stderr(f"checking {name} ({JOBS[submit_job]}, flags: {' '.join(used) or '(job defaults)'}) against {location}")
    report = check(PROJECT_ROOT / JOBS[submit_job], location, used)
    if report is None:
        raise OpsError(savepoint_ops.SAVEPOINT_FAILED, f"{location} is not on a local file system: not read here")
    print(json.dumps(as_json(report), indent=2) if args.json else render(report))
    return exit_code(report)


def add_parser(sub) -> None:
    """`vigil upgrade check` (vigil/cli.py: `upgrade_check.add_parser(sub)`)."""
    upgrade = sub.add_parser("upgrade", help="upgrade safety: compare a savepoint with the job as checked out")
    actions = upgrade.add_subparsers(dest="upgrade_action", required=True)
    p = actions.add_parser("check", help="which savepoint state a restore would keep, drop, or start empty",
                           allow_abbrev=False)
    p.add_argument("job", help="ingest, fraud_detection, analytics or a job name (vigil-ingest)")
    p.add_argument("--from", dest="source", help="savepoint path (file:/... or a folder)")
    p.add_argument("--latest", action="store_true", help="the newest catalogued savepoint of the job")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=savepoint_ops._run(cmd_check), passthrough=True)
