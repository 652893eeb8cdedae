"""`vigil backtest`: what a rule or model change would have done over a recorded range.

Replays a range of `events.clean` (and `labels.chargebacks`) through the fraud job twice, bounded,
with the same code as production (`python -m jobs.fraud_detection --paths exact`, its
--start-time/--stop-time flags): once with the rules and models in force ("current") and once with
a candidate rule set and/or model versions ("candidate"); then reads both runs' alerts and
incidents back and compares them per pattern (vigil/backtest_report.py): hits and incidents
added and removed, precision and recall against scenario labels and chargebacks, detection
latency. Prints a table, writes report.json, report.txt, chart.png and the jobs' logs to --out.

  vigil backtest --candidate-rules rules.json [--from 2026-12-03T00:00Z | --from 6h] [--to ...]
                 [--candidate-model hst-v2] [--scenario-labels .vigil/labels-42.jsonl] [--out DIR]

rules.json: {"*": {"card_testing_min_small": 6}, "t007": {"velocity_1m": 15}}: parameters of
vigil/fraud_rules.py per tenant ("*": every tenant's defaults), applied on top of the rules in force.

Each run writes to fresh topics (backtest-<id>-current.* / -candidate.*): its own copy of the
rules topic (the candidate's with the overrides merged into every version of the tenants it names,
and in force from before the range), its alerts, incidents, scores, features and dead letters,
its own consumer group and transactional ids, its own model snapshots (copies of
--model-snapshot-dir, or fresh models). Nothing of production is written. The topics and
snapshots are deleted at the end unless --keep.

The range is by record time: events.clean records carry the time the broker appended them (the
topic's LogAppendTime, which follows event time within seconds in live traffic), chargebacks their
label time. --warmup replays that much before --from to fill the patterns' windows; alerts of
warm-up events are left out of the comparison.

Exit codes: 0 compared, 2 bad arguments (the message says which), 1 a run or a service failed
(the job's log tail is printed; the whole log is in --out).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from vigil import backtest_report, cli_args, fraud_rules, kafka_io, topics
from vigil.instants import is_duration, iso, parse_duration, parse_instant
from vigil.paths import PROJECT_ROOT, state_dir

# The topics each run gets fresh (its inputs are read in place; it writes no scores, features or
# low-latency decisions: job_command).
OUTPUT_ROLES = (("rules", topics.RULES), ("alerts", topics.ALERTS), ("incidents", topics.INCIDENTS),
                ("dlq", topics.FRAUD_DLQ))
UNWRITTEN_ROLES = (("scores", topics.SCORES), ("features", topics.FEATURES), ("decisions", topics.DECISIONS))


class BadArguments(ValueError):
    """A problem with what the user asked for: exit 2 with its message."""


class RunFailed(RuntimeError):
    """A job or a service failed: exit 1 with its message."""


def add_parser(sub, default_bootstrap: str, default_registry: str) -> None:
    p = sub.add_parser("backtest", help="replay a recorded range with candidate rules or models beside the current ones",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="start", metavar="WHEN",
                   help="start of the range: ISO 8601 (UTC) or epoch ms, or a duration before --to "
                        "(e.g. 6h); default: the oldest record the topic retains")
    p.add_argument("--to", dest="stop", metavar="WHEN", help="end of the range (excluded); default: now")
    p.add_argument("--warmup", default="0", metavar="DURATION",
                   help="replay this much before --from to fill the windows, not compared (default 0)")
    p.add_argument("--candidate-rules", metavar="FILE", help='JSON {"tenant or *": {"parameter": value}}')
    p.add_argument("--candidate-model", action="append", default=[], metavar="VERSION",
                   help="a model version for the candidate run (repeatable; e.g. hst-v2)")
    p.add_argument("--current-model", action="append", default=[], metavar="VERSION",
                   help="the live model versions, if not the job's defaults (repeatable)")
    p.add_argument("--model-snapshot-dir", metavar="DIR",
                   help="copy these model snapshots into each run's own folder (default: fresh models)")
    p.add_argument("--scenario-labels", metavar="FILE", help="the generator's scenario labels (JSON lines)")
    p.add_argument("--chargeback-horizon", default="7d", metavar="DURATION",
                   help="chargebacks labelled up to this long after --to count (default 7d)")
    p.add_argument("--clean-topic", default=topics.CLEAN)
    p.add_argument("--rules-topic", default=topics.RULES)
    p.add_argument("--chargebacks-topic", default=topics.CHARGEBACKS)
    p.add_argument("--bootstrap", default=default_bootstrap)
    p.add_argument("--schema-registry-url", default=default_registry)
    p.add_argument("--out", metavar="DIR", help="report, chart and logs (default .vigil/backtests/<id>)")
    p.add_argument("--at-once", action="store_true",
                   help="run current and candidate at the same time (default: one after the other, "
                        "faster over large ranges on 2 cores; at once is faster over small ones)")
    p.add_argument("--job-flags", default="", metavar="FLAGS",
                   help="more flags for both runs of the fraud job, e.g. --job-flags='--parallelism 2'")
    p.add_argument("--timeout", type=cli_args.bounded(float, 1), default=3600.0, metavar="SECONDS", help="per run (default 3600)")
    p.add_argument("--keep", action="store_true", help="keep the runs' topics and model snapshots")
    p.set_defaults(func=main)


@dataclass(frozen=True)
class Plan:
    """What a backtest replays, checked before anything runs."""
    start_ms: int | None            # None: the oldest retained record
    stop_ms: int
    warmup_ms: int
    candidate_rules: dict           # tenant -> overrides
    current_models: dict            # role -> version (empty: the job's defaults)
    candidate_models: dict
    scenario_labels: list = field(default_factory=list)
    horizon_ms: int = 7 * 86_400_000

    @property
    def replay_from_ms(self) -> int:
        return max(0, self.start_ms - self.warmup_ms) if self.start_ms is not None else 0

    def describe(self) -> str:
        changes = [f"rules {json.dumps(self.candidate_rules, sort_keys=True)}"] if self.candidate_rules else []
        changes += [f"{role} model {version}" for role, version in sorted(self.candidate_models.items())]
        start = iso(self.start_ms) if self.start_ms is not None else "the oldest retained record"
        return (f"range {start} .. {iso(self.stop_ms)}"
                + (f" (+{self.warmup_ms // 1000}s warm-up)" if self.warmup_ms and self.start_ms is not None else "")
                + f"; candidate: {', '.join(changes)}")


def plan_of(args, now_ms: int | None = None) -> Plan:
    """The Plan from the command line, or BadArguments naming the problem."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    try:
        stop = parse_instant(args.stop) if args.stop else now_ms
        start = None
        if args.start:
            start = stop - parse_duration(args.start) if is_duration(args.start) else parse_instant(args.start)
        warmup, horizon = parse_duration(args.warmup), parse_duration(args.chargeback_horizon)
    except ValueError as error:
        raise BadArguments(str(error)) from None
    if start is not None and start >= stop:
        raise BadArguments(f"--from ({iso(start)}) must be before --to ({iso(stop)})")
    rules = read_candidate_rules(args.candidate_rules) if args.candidate_rules else {}
    current_models = model_roles(args.current_model, "--current-model")
    candidate_models = model_roles(args.candidate_model, "--candidate-model")
    if not rules and not candidate_models:
        raise BadArguments("nothing to compare: give --candidate-rules FILE and/or --candidate-model VERSION")
    if current_models or candidate_models:
        from udfs.fraud_models import ModelConfig
        current_models = {"anomaly": ModelConfig().anomaly, "supervised": ModelConfig().supervised, **current_models}
        if not rules and all(current_models[role] == version for role, version in candidate_models.items()):
            raise BadArguments("the candidate models are the current ones and no rules change: nothing to compare")
    labels = read_scenario_labels(args.scenario_labels) if args.scenario_labels else []
    return Plan(start, stop, warmup, rules, current_models, candidate_models, labels, horizon)


def read_candidate_rules(path: str) -> dict:
    """{tenant: overrides} from a JSON file, each checked as the fraud job checks rules (what it
    would refuse is BadArguments, with the job's own detail)."""
    try:
        rules = json.loads(cli_args.read_text_file(path, 1024 * 1024, "rules file"))
    except ValueError as error:            # cli_args.BadFile is one
        raise BadArguments(f"--candidate-rules {path}: {error}") from None
    if not isinstance(rules, dict) or not rules or not all(isinstance(v, dict) and v for v in rules.values()):
        raise BadArguments(f'--candidate-rules {path}: expected {{"tenant or *": {{"parameter": value, ...}}, ...}}')
    for tenant, overrides in rules.items():
        try:
            message = fraud_rules.rule_message(tenant, overrides, 0)
        except ValueError as error:
            raise BadArguments(f"--candidate-rules {path}: tenant {tenant!r}: {error}") from None
        verdict = fraud_rules.parse_rule_message(json.dumps({"tenant_id": tenant}).encode(), json.dumps(message).encode())
        if verdict.reason is not None:
            raise BadArguments(f"--candidate-rules {path}: tenant {tenant!r}: {verdict.detail}")
    return rules


def model_roles(versions: list[str], flag: str) -> dict:
    """{role: version} of model versions given on the command line (udfs/fraud_models.MODEL_VERSIONS)."""
    if not versions:
        return {}
    from udfs.fraud_models import MODEL_VERSIONS   # River: imported only when models are named

    roles = {}
    for version in versions:
        if version not in MODEL_VERSIONS:
            raise BadArguments(f"{flag} {version}: unknown model version; known: {', '.join(MODEL_VERSIONS)}")
        role = MODEL_VERSIONS[version][0]
        if role in roles and roles[role] != version:
            raise BadArguments(f"{flag}: two {role} models ({roles[role]}, {version})")
        roles[role] = version
    return roles


def read_scenario_labels(path: str) -> list[dict]:
    try:   # a run's labels: some MB; 1 GiB is no label file
        lines = cli_args.read_text_file(path, 1024 ** 3, "label file").splitlines()
    except cli_args.BadFile as error:
        raise BadArguments(f"--scenario-labels {path}: {error}") from None
    labels = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            label = json.loads(line)
            labels.append({k: label[k] for k in ("event_id", "scenario", "instance", "event_time")})
        except (ValueError, KeyError, TypeError):
            raise BadArguments(f"--scenario-labels {path}: line {number} is not a label "
                               "(JSON with event_id, scenario, instance, event_time)") from None
    return labels


# ---- the candidate's rules -------------------------------------------------------------------------

def _effective_ms(value: bytes | None) -> int | None:
    try:
        return parse_instant(json.loads(value)["effective_from"])
    except (ValueError, KeyError, TypeError):
        return None


def rule_copies(records: list[tuple[bytes | None, bytes | None]], overrides: dict | None,
                replay_from_ms: int) -> list[tuple[bytes, bytes | None]]:
    """The records to write to a run's rules topic, from the production topic's (key, value) in
    topic order. Without `overrides`, a copy. With them, every accepted version of a named tenant's
    row gets the overrides merged in, and each named tenant first gets a row of the overrides alone
    in force from before the range and before its first version: at any event time the candidate's
    row is the production row then in force with the overrides applied. Accepted rows are written
    in effective-time order (the job's rules source has its watermark at effective_from: a row
    older than one already read would be late); the records the job refuses follow, unchanged.

    >>> star = json.dumps(fraud_rules.rule_message("*", {"velocity_1m": 10, "card_testing_min_small": 4}, 5000))
    >>> out = rule_copies([(b'{"tenant_id": "*"}', star.encode())], {"*": {"card_testing_min_small": 6}}, 9000)
    >>> [(json.loads(v)["effective_from"], json.loads(v)["card_testing_min_small"], json.loads(v)["velocity_1m"])
    ...  for _, v in out]
    [('1970-01-01 00:00:04.000', 6, None), ('1970-01-01 00:00:05.000', 6, 10)]
    """
    overrides = overrides or {}
    accepted, refused = [], []
    first_of: dict[str, int] = {}
    for key, value in records:
        verdict = fraud_rules.parse_rule_message(key, value)
        effective = _effective_ms(value) if verdict.reason is None else None
        if effective is None:
            refused.append((key, value))
            continue
        tenant = verdict.tenant_id
        first_of[tenant] = min(first_of.get(tenant, effective), effective)
        if tenant in overrides:
            message = json.loads(value)
            message.update(overrides[tenant])
            value = json.dumps(message).encode()
        accepted.append((effective, key, value))
    for tenant, values in overrides.items():
        before = min(first_of.get(tenant, replay_from_ms), replay_from_ms) - 1000
        message = fraud_rules.rule_message(tenant, values, max(0, before))
        accepted.append((max(0, before), json.dumps({"tenant_id": tenant}).encode(), json.dumps(message).encode()))
    accepted.sort(key=lambda item: item[0])   # stable: versions with one effective time keep topic order
    return [(key, value) for _, key, value in accepted] + refused


# ---- running ----------------------------------------------------------------------------------------

def create_run_topics(bootstrap: str, prefix: str, clean: str, chargebacks: str) -> dict:
    """A run's fresh output and rules topics (production settings); inputs are read in place."""
    names = {role: f"{prefix}.{name}" for role, name in OUTPUT_ROLES}
    topics.ensure_topics(bootstrap, [topics.like(names[role], name) for role, name in OUTPUT_ROLES], log=lambda *_: None)
    unwritten = {role: f"{prefix}.{name}" for role, name in UNWRITTEN_ROLES}   # named for the job's flags only
    return {**names, **unwritten, "clean": clean, "chargebacks": chargebacks, "prefix": prefix}


def job_command(names: dict, bootstrap: str, registry: str, start_ms: int, stop_ms: int, labels_start_ms: int,
                snapshots: str, models: dict, extra: list[str]) -> list[str]:
    """The fraud job over the range, with what the comparison reads only."""
    model_flags = []
    for role, version in sorted(models.items()):
        model_flags += [f"--{role}-model", version]
    return [sys.executable, "-m", "jobs.fraud_detection", "--bootstrap", bootstrap, "--schema-registry-url", registry,
            "--clean-topic", names["clean"], "--rules-topic", names["rules"], "--chargebacks-topic", names["chargebacks"],
            "--alerts-topic", names["alerts"], "--incidents-topic", names["incidents"],
            "--scores-topic", names["scores"], "--features-topic", names["features"],
            "--decisions-topic", names["decisions"], "--dlq-topic", names["dlq"],
            "--group-id", names["prefix"], "--transactional-id-prefix", names["prefix"],
            "--start-time", str(start_ms), "--stop-time", str(stop_ms), "--labels-start-time", str(labels_start_ms),
            # only alerts and incidents are compared: no scores, no online features (the planner
            # then drops the card, device and merchant features), no low-latency decisions
            "--paths", "exact", "--skip-output", "fraud_scores", "--skip-output", "features_online",
            # a replay scores identically only if the labels source starts before it is deemed idle
            "--labels-idle-timeout", "30 s", "--model-snapshot-dir", snapshots,
            # Checkpoints commit the runs' output; every 10 s, not 2, since each one copies the
            # whole (heap) state and nobody watches a backtest's output live.
            "--checkpoint-interval-ms", "10000", *model_flags, *extra]


@dataclass
class Run:
    name: str
    command: list[str]
    log: Path
    process: subprocess.Popen | None = None
    started: float = 0.0
    seconds: float = 0.0
    returncode: int | None = None

    def start(self) -> None:
        self.started = time.monotonic()
        with open(self.log, "wb") as log:
            # Its own process group: on failure or timeout the job's JVM goes with it.
            self.process = subprocess.Popen(self.command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def poll(self, deadline: float) -> None:
        """Sets returncode once the job has ended; stops it past `deadline`."""
        if self.process.poll() is None and time.monotonic() > deadline:
            self.stop()
            with open(self.log, "a") as log:
                log.write("\nvigil backtest: timed out, stopped\n")
        if self.process.poll() is not None:
            self.returncode = self.process.returncode
            self.seconds = time.monotonic() - self.started

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def run_jobs(runs: list[Run], at_once: bool, timeout_s: float, log) -> None:
    """The runs one after the other (the default) or all at once; raises RunFailed with the log
    tail of the first run that failed (the other is stopped).

    Measured on this 2-core machine (bench/backtest.py, nothing else running): over 1M events one
    after the other took 557 s (runs of 259 s and 247 s), at once 663 s (599 s and 591 s): two
    jobs of 4-6 GB each share two cores and memory bandwidth worse than they share time. Over a
    small range start-up dominates and at once wins (the integration test: ~95 s at once against
    ~2 x 90 s), hence --at-once."""
    pending = list(runs)
    try:
        while pending:
            batch = pending if at_once else pending[:1]
            deadline = time.monotonic() + timeout_s
            for run in batch:
                run.start()
            while any(run.returncode is None for run in batch):
                time.sleep(0.5)
                for run in batch:
                    if run.returncode is None:
                        run.poll(deadline)
                        if run.returncode is not None:
                            log(f"{run.name} run: {run.seconds:.0f}s, exit {run.returncode}")
                failed = next((run for run in batch if run.returncode not in (None, 0)), None)
                if failed is not None:
                    raise RunFailed(f"the {failed.name} run failed (exit {failed.returncode}); "
                                    f"last lines of {failed.log}:\n{failed.tail()}")
            pending = pending[len(batch):]
    finally:
        for run in runs:
            run.stop()


def copy_rules(bootstrap: str, target: str, records: list[tuple]) -> None:
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for key, value in records:
        producer.produce(target, key=key, value=value)
    if producer.flush(30):
        raise RunFailed(f"could not write the rules to {target}")


def topic_exists(bootstrap: str, topic: str) -> bool:
    from confluent_kafka.admin import AdminClient
    try:
        return topic in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    except Exception as error:  # noqa: BLE001 - any client failure: the broker is not there
        raise RunFailed(f"Kafka at {bootstrap} does not answer ({error}); start it with `vigil infra up`") from None


def registry_answers(url: str) -> None:
    import urllib.request
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/subjects", timeout=10):
            return
    except Exception as error:  # noqa: BLE001
        raise RunFailed(f"the schema registry at {url} does not answer ({error}); start it with `vigil infra up`") from None


def delete_run_topics(bootstrap: str, names: list[dict]) -> None:
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})
    doomed = [n[role] for n in names for role, _ in OUTPUT_ROLES]
    for future in admin.delete_topics(doomed, operation_timeout=30).values():
        try:
            future.result()
        except Exception:  # noqa: BLE001 - already gone, or never created: nothing to keep
            pass
    groups = [n["prefix"] for n in names]
    try:
        for future in admin.delete_consumer_groups(groups, request_timeout=30).values():
            try:
                future.result()
            except Exception:  # noqa: BLE001 - a group that never committed does not exist
                pass
    except Exception:  # noqa: BLE001
        pass


# ---- reading back ----------------------------------------------------------------------------------

def read_avro(bootstrap: str, registry: str, topic: str) -> list[dict]:
    """Every committed record of a run's output topic, decoded (tombstones left out)."""
    from vigil.registry.catalog import value_decoder
    decode = value_decoder(registry)
    return [decode(m.value()) for m in kafka_io.read(bootstrap, topic, idle_timeout_s=5, max_wait_s=1800)
            if m.value() is not None]


def appended_ms(alert: dict) -> int | None:
    """When the broker appended the alert's triggering event: decided_at less detection_latency_ms."""
    decided, latency = backtest_report.epoch_ms(alert.get("decided_at")), alert.get("detection_latency_ms")
    return decided - latency if decided is not None and latency is not None else None


def in_compared_range(alerts: list[dict], incidents: list[dict], start_ms: int | None) -> tuple[list, list]:
    """Alerts of events appended from `start_ms` on (not warm-up ones), and the incidents that
    have one of them."""
    if start_ms is None:
        return alerts, incidents
    kept = [a for a in alerts if (appended_ms(a) or start_ms) >= start_ms]
    ids = {a["alert_id"] for a in kept}
    return kept, [i for i in incidents if ids & set(i.get("alert_ids") or [])]


def earliest_event_ms(bootstrap: str, registry: str, topic: str, start: dict, stop: dict,
                      per_partition: int = 200) -> int | None:
    """The earliest event time among the first records of each partition from `start`: where the
    range's chargeback labels begin (a label comes after its payment). None for an empty range."""
    from vigil.registry.catalog import value_decoder
    decode, earliest = value_decoder(registry), None
    for partition, offset in start.items():
        first = {partition: offset}
        for message in kafka_io.read_range(bootstrap, topic, first, {partition: min(stop[partition], offset + per_partition)},
                                           idle_timeout_s=10):
            try:
                at = backtest_report.epoch_ms(decode(message.value()).get("event_time"))
            except Exception:  # noqa: BLE001 - undecodable: the job refuses it
                continue
            if at is not None and (earliest is None or at < earliest):
                earliest = at
    return earliest


def build_truth(bootstrap: str, registry: str, plan: Plan, clean: str, chargebacks: str,
                alert_events: set, log) -> tuple[backtest_report.Truth, int]:
    """Ground truth over the range and the number of events in it: one pass over events.clean's
    range (event ids, users and cards of payments and alerted events, event times), then the fraud
    chargebacks labelled from the range's first event time to its last plus the horizon, and the
    scenario labels."""
    from vigil.registry.catalog import value_decoder

    labelled = {label["event_id"] for label in plan.scenario_labels}
    decode = value_decoder(registry)
    seen_labelled, entities, count, first_ms, last_ms = set(), {}, 0, None, None
    started = time.monotonic()
    start = plan.start_ms if plan.start_ms is not None else 0
    for message in kafka_io.read_range(bootstrap, clean, kafka_io.offsets_at(bootstrap, clean, start),
                                       kafka_io.offsets_at(bootstrap, clean, plan.stop_ms)):
        try:
            event = decode(message.value())
        except Exception:  # noqa: BLE001 - undecodable: the job sent it to its dead letters
            continue
        count += 1
        event_id, at = event.get("event_id"), backtest_report.epoch_ms(event.get("event_time"))
        if at is not None:
            first_ms, last_ms = min(first_ms or at, at), max(last_ms or at, at)
        if event_id in labelled:
            seen_labelled.add(event_id)
        if event_id in alert_events or event.get("event_type") == "payment_attempt":
            entities[event_id] = (event.get("tenant_id"), event.get("user_id"), event.get("card_fingerprint"))
    log(f"read the range's {count:,} events back for ground truth in {time.monotonic() - started:.0f}s")
    fraud_payments = set()
    if first_ms is not None and topic_exists(bootstrap, chargebacks):
        for message in kafka_io.read_range(bootstrap, chargebacks, kafka_io.offsets_at(bootstrap, chargebacks, first_ms),
                                           kafka_io.offsets_at(bootstrap, chargebacks, last_ms + plan.horizon_ms)):
            try:
                label = json.loads(message.value())
                if label.get("is_fraud") is True:
                    fraud_payments.add(str(label["event_id"]))
            except (ValueError, KeyError, TypeError):
                continue   # the job refuses these too (fraud.dlq)
    truth = backtest_report.Truth.from_labels(plan.scenario_labels, lambda event_id, _ms: event_id in seen_labelled)
    truth.charged_back = {e: entities[e] for e in fraud_payments if e in entities}
    truth.event_entities = {e: entities[e] for e in alert_events | set(truth.charged_back) if e in entities}
    truth.fraud_entities = ({(t, "user", u) for t, u, _ in truth.charged_back.values() if u}
                            | {(t, "card", c) for t, _, c in truth.charged_back.values() if c})
    return truth, count


# ---- the command -----------------------------------------------------------------------------------

def main(args) -> int:
    try:
        return backtest(args)
    except BadArguments as error:
        print(f"vigil backtest: {error}", file=sys.stderr)
        return 2
    except RunFailed as error:
        print(f"vigil backtest: {error}", file=sys.stderr)
        return 1


def backtest(args) -> int:
    def log(text: str) -> None:
        print(f"backtest: {text}", file=sys.stderr, flush=True)

    began = time.monotonic()
    plan = plan_of(args)
    extra = shlex.split(args.job_flags)
    if not topic_exists(args.bootstrap, args.clean_topic):
        raise BadArguments(f"--clean-topic {args.clean_topic}: no such topic on {args.bootstrap}")
    registry_answers(args.schema_registry_url)
    if args.model_snapshot_dir and not Path(args.model_snapshot_dir).is_dir():
        raise BadArguments(f"--model-snapshot-dir {args.model_snapshot_dir}: not a folder")
    run_id = uuid.uuid4().hex[:8]
    out = Path(args.out) if args.out else state_dir() / "backtests" / run_id
    out.mkdir(parents=True, exist_ok=True)
    log(f"{run_id}: {plan.describe()}; output in {out}")

    rules = []
    if topic_exists(args.bootstrap, args.rules_topic):
        rules = [(m.key(), m.value()) for m in kafka_io.read(args.bootstrap, args.rules_topic, idle_timeout_s=2)]
    else:
        log(f"no topic {args.rules_topic}: both runs use the compiled defaults and the candidate's rules")
    # The labels of the range's payments come after their event times, which can be long before
    # the range's record times (events appended by a backfill): labels are read from an hour before
    # the first events' event time.
    replay_start = kafka_io.offsets_at(args.bootstrap, args.clean_topic, plan.replay_from_ms)
    replay_stop = kafka_io.offsets_at(args.bootstrap, args.clean_topic, plan.stop_ms)
    if all(replay_start[p] >= replay_stop.get(p, 0) for p in replay_start):
        raise BadArguments(f"{args.clean_topic} has no record in the range ({plan.describe().split(';')[0]})")
    first_event_ms = earliest_event_ms(args.bootstrap, args.schema_registry_url, args.clean_topic, replay_start, replay_stop)
    labels_start_ms = max(0, min(plan.replay_from_ms, (first_event_ms or plan.replay_from_ms) - 3_600_000))
    # From here on a SIGTERM ends the backtest like Ctrl-C: its runs are stopped, its topics deleted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names, scratch, runs = [], [], []
    try:
        for run_name, overrides, models in (("current", None, plan.current_models),
                                            ("candidate", plan.candidate_rules, {**plan.current_models,
                                                                                  **plan.candidate_models})):
            run_names = create_run_topics(args.bootstrap, f"backtest-{run_id}-{run_name}", args.clean_topic,
                                          args.chargebacks_topic)
            names.append(run_names)
            copy_rules(args.bootstrap, run_names["rules"], rule_copies(rules, overrides, plan.replay_from_ms))
            # the run's own model snapshots and checkpoints, deleted with it
            folder = Path(tempfile.mkdtemp(prefix=f"vigil-backtest-{run_id}-{run_name}-"))
            scratch.append(folder)
            snapshots = folder / "models"
            if args.model_snapshot_dir:
                shutil.copytree(args.model_snapshot_dir, snapshots)
            snapshots.mkdir(exist_ok=True)
            command = job_command(run_names, args.bootstrap, args.schema_registry_url, plan.replay_from_ms,
                                  plan.stop_ms, labels_start_ms, str(snapshots), models,
                                  ["--checkpoint-dir", (folder / "checkpoints").as_uri(), *extra])
            runs.append(Run(run_name, command, out / f"{run_name}.log"))
        log(f"{len(rules)} rule record(s) copied from {args.rules_topic}; running the fraud job twice "
            f"({'at once' if args.at_once else 'one after the other'}); logs in {out}")
        jobs_began = time.monotonic()
        run_jobs(runs, args.at_once, args.timeout, log)
        jobs_s = time.monotonic() - jobs_began

        outputs = {}
        for run, run_names in zip(runs, names):
            alerts = read_avro(args.bootstrap, args.schema_registry_url, run_names["alerts"])
            incidents = list(backtest_report.latest_incidents(
                read_avro(args.bootstrap, args.schema_registry_url, run_names["incidents"])).values())
            outputs[run.name] = in_compared_range(alerts, incidents, plan.start_ms if plan.warmup_ms else None)
        alert_events = {a["event_id"] for alerts, _ in outputs.values() for a in alerts}
        truth, events = build_truth(args.bootstrap, args.schema_registry_url, plan, args.clean_topic,
                                    args.chargebacks_topic, alert_events, log)
        report = backtest_report.compare(outputs["current"][0], outputs["candidate"][0], outputs["current"][1],
                                         outputs["candidate"][1], truth)
    finally:
        for run in runs:
            run.stop()
        if not args.keep:
            delete_run_topics(args.bootstrap, names)
            for folder in scratch:
                shutil.rmtree(folder, ignore_errors=True)

    wall_s = time.monotonic() - began
    report.update(range={"from": iso(plan.start_ms) if plan.start_ms is not None else None, "to": iso(plan.stop_ms),
                         "warmup_s": plan.warmup_ms / 1000, "events": events},
                  candidate={"rules": plan.candidate_rules, "models": plan.candidate_models},
                  current={"models": plan.current_models}, runs={r.name: round(r.seconds, 1) for r in runs},
                  at_once=args.at_once, jobs_s=round(jobs_s, 1), wall_s=round(wall_s, 1),
                  topics=None if not args.keep else [n["prefix"] for n in names])
    text = "\n".join([
        f"backtest {run_id}: {plan.describe()}",
        f"{events:,} events in the range; runs {', '.join(f'{r.name} {r.seconds:.0f}s' for r in runs)} "
        f"({'at once' if args.at_once else 'one after the other'}); wall time {wall_s:.0f}s "
        f"({events / max(wall_s, 1e-9):,.0f} events/s)",
        "", backtest_report.table(report),
        "", "candidate changed nothing" if not backtest_report.changed(report) else "candidate changed alerts or incidents"])
    print(text)
    (out / "report.txt").write_text(text + "\n")
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    try:
        backtest_report.chart(report, out / "chart.png", title=f"backtest {run_id}: {plan.describe()}")
        log(f"report, chart and logs in {out}")
    except ImportError:
        log(f"no chart (matplotlib is missing: make setup installs it); report and logs in {out}")
    return 0
