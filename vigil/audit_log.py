"""The audit log: every administrative action appended to Kafka topic `audit.log`, hash-chained
(vigil/audit_chain.py), with anchors kept outside Kafka. `vigil audit show|verify|anchor`.

- The topic has one partition (one order), `cleanup.policy=delete` with no retention limit (no
  compaction, nothing expires), and LogAppendTime.
- An append reads the newest entry and writes the next one with an idempotent producer, under a
  file lock (`<state>/audit/append.lock`), so two commands on this machine never fork the chain.
  Writers on several machines would need one audit writer service; `verify` reports a fork as a
  repeated sequence number.
- Anchors: after each append, the new (seq, hash) is appended to `<state>/audit/anchors.jsonl`
  (mode 0600). `verify` checks every anchor against the log, which detects removal of the oldest
  entries and of the newest ones up to the last anchor. In production the anchor file belongs in
  write-once storage (an object-lock bucket): whoever can rewrite both the topic and the anchors
  can rewrite history.
- The actor is VIGIL_ACTOR, else the operating-system user and host.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import sys
from pathlib import Path

from vigil import audit_chain, kafka_io, procs, topics
from vigil.paths import state_dir, sub

TOPIC = os.environ.get("VIGIL_AUDIT_TOPIC", "audit.log")
SPEC_CONFIG = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1",
               "message.timestamp.type": "LogAppendTime"}


def spec(topic: str = TOPIC) -> topics.TopicSpec:
    return topics.TopicSpec(topic, partitions=1, config=SPEC_CONFIG)


def home() -> Path:
    return sub(state_dir(), "audit")


def anchors_file(topic: str = TOPIC) -> Path:
    """<state>/audit/anchors-<topic>.jsonl; only Kafka's topic characters make a file name here."""
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic) or topic in (".", ".."):
        raise ValueError(f"not a Kafka topic name: {topic!r}")
    return home() / f"anchors-{topic}.jsonl"


def actor() -> str:
    if os.environ.get("VIGIL_ACTOR"):
        return os.environ["VIGIL_ACTOR"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def entries(bootstrap: str, topic: str = TOPIC) -> list[dict]:
    """Every record of the log in order, decoded; a record that is not a JSON object becomes
    {"raw": its first bytes} (verify reports it)."""
    found = []
    for message in kafka_io.read(bootstrap, topic, idle_timeout_s=3):
        try:
            entry = json.loads(message.value())
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except (ValueError, TypeError):
            entry = {"raw": (message.value() or b"")[:200].decode(errors="replace")}
        found.append(entry)
    return found


def _newest(bootstrap: str, topic: str) -> dict | None:
    end = kafka_io.end_offsets(bootstrap, topic).get(0, 0)
    if end == 0:
        return None
    last = list(kafka_io.read(bootstrap, topic, start={0: end - 1}, idle_timeout_s=3))
    if not last:
        raise RuntimeError(f"audit: could not read the newest entry of {topic}")
    return json.loads(last[-1].value())


def append(bootstrap: str, action: str, target: str, before=None, after=None, topic: str = TOPIC,
           who: str | None = None) -> dict:
    """Append one entry; returns it. Raises RuntimeError when the log cannot be written (the
    caller says so: an action without its audit entry must not pass unnoticed)."""
    from confluent_kafka import Producer

    topics.ensure_topics(bootstrap, [spec(topic)], log=lambda *_: None)
    with procs.exclusive(home() / "append.lock"):
        entry = audit_chain.next_entry(_newest(bootstrap, topic), who or actor(), action, target, before, after)
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
        producer.produce(topic, key=str(entry["seq"]).encode(), value=json.dumps(entry, default=str).encode())
        if producer.flush(30):
            raise RuntimeError(f"audit: could not write to {topic}")
        _write_anchor(audit_chain.Anchor(entry["seq"], entry["hash"], entry["at"]), topic)
    return entry


def default_bootstrap() -> str:
    from vigil.kafka_broker import BrokerSettings
    return os.environ.get("VIGIL_BOOTSTRAP") or BrokerSettings().bootstrap


def record(action: str, target: str, before=None, after=None, bootstrap: str | None = None) -> None:
    """append() for commands, on the platform's broker: a failure is printed, and exits 3, after
    the action has happened."""
    try:
        append(bootstrap or default_bootstrap(), action, target, before, after)
    except Exception as error:  # noqa: BLE001 - any failure to audit is reported the same way
        print(f"AUDIT NOT WRITTEN for {action} {target}: {error}. The action was done; record it by hand "
              "(`vigil audit show` lists what was recorded).", file=sys.stderr)
        raise SystemExit(3) from error


def _write_anchor(anchor: audit_chain.Anchor, topic: str) -> None:
    path = anchors_file(topic)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a") as out:
        out.write(json.dumps({"seq": anchor.seq, "hash": anchor.hash, "at": anchor.at}) + "\n")


def anchors(topic: str = TOPIC) -> list[audit_chain.Anchor]:
    path = anchors_file(topic)
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
            found.append(audit_chain.Anchor(int(row["seq"]), str(row["hash"]), str(row["at"])))
        except (ValueError, KeyError, TypeError):
            continue
    return found


# --- CLI ----------------------------------------------------------------------------------------

def add_parser(sub_parsers, default_bootstrap: str) -> None:
    p = sub_parsers.add_parser("audit", help="the audit trail of administrative actions: show, verify")
    actions = p.add_subparsers(dest="audit_action", required=True)
    show = actions.add_parser("show", help="the newest entries (actor, action, target, before -> after)")
    show.add_argument("--last", type=_positive, default=20, help="how many (default 20)")
    show.add_argument("--action", help="only this action (e.g. rules.publish)")
    show.add_argument("--json", action="store_true", help="one JSON entry a line")
    verify = actions.add_parser("verify", help="check the hash chain and the anchors; exit 1 on any problem")
    for parser in (show, verify):
        parser.add_argument("--bootstrap", default=default_bootstrap)
        parser.add_argument("--topic", default=TOPIC)
    p.set_defaults(func=run)


def _positive(text: str) -> int:
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args) -> int:
    try:
        topics.ensure_topics(args.bootstrap, [spec(args.topic)], log=lambda *_: None)
        log = entries(args.bootstrap, args.topic)
    except Exception as error:  # noqa: BLE001 - Kafka unreachable, a topic name it refuses: one line
        print(f"vigil audit: cannot read {args.topic!r} on {args.bootstrap}: {error}", file=sys.stderr)
        return 3
    if args.audit_action == "verify":
        problems = audit_chain.verify(log, anchors(args.topic))
        for problem in problems:
            print(f"TAMPERED: {problem}")
        if problems:
            return 1
        newest = log[-1] if log else None
        print(f"audit log {args.topic}: {len(log)} entries, chain intact"
              + (f", newest seq {newest['seq']} at {newest['at']}" if newest else "")
              + f"; {len(anchors(args.topic))} anchor(s) match")
        return 0
    shown = [e for e in log if not args.action or e.get("action") == args.action][-args.last:]
    for entry in shown:
        if args.json:
            print(json.dumps(entry, default=str))
        else:
            change = "" if entry.get("before") is None and entry.get("after") is None else \
                f"  {json.dumps(entry.get('before'), default=str)} -> {json.dumps(entry.get('after'), default=str)}"
            print(f"{entry.get('seq'):>6} {entry.get('at')} {entry.get('actor')} {entry.get('action')} "
                  f"{entry.get('target')}{change}")
    return 0
