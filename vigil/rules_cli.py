"""`vigil rules ...`: publish fraud rule parameters to `fraud.rules` (read by the fraud job at
runtime; see vigil/fraud_rules.py for precedence and parameters).

  vigil rules defaults                                  publish the "*" row (all defaults)
  vigil rules set --tenant t007 card_testing_min_small=6 velocity_1m=15 [--effective-from MS]
  vigil rules show                                      what fraud.rules holds, newest per tenant
"""

from __future__ import annotations

import json
import sys

from vigil import audit_log, fraud_rules
from vigil import kafka_io, topics


def add_parser(sub, default_bootstrap: str) -> None:
    p = sub.add_parser("rules", help="fraud rules per tenant (runtime thresholds and switches)")
    actions = p.add_subparsers(dest="action", required=True)
    for name, text in (("defaults", "publish the defaults row"), ("set", "override parameters for a tenant"),
                       ("show", "print the rules in force")):
        a = actions.add_parser(name, help=text)
        a.add_argument("--bootstrap", default=default_bootstrap)
        a.add_argument("--topic", default=topics.RULES)
        if name == "set":
            a.add_argument("--tenant", required=True, help='a tenant id, or "*" for everyone')
            a.add_argument("assignments", nargs="+", metavar="NAME=VALUE")
        if name in ("defaults", "set"):
            a.add_argument("--effective-from", type=int, help="event time (ms) from which it applies; default now")
        a.set_defaults(func=run)


def parse_assignments(assignments: list[str]) -> dict:
    """['velocity_1m=15', 'card_testing_enabled=false'] -> typed values.

    >>> parse_assignments(["velocity_1m=15", "card_testing_enabled=false", "card_testing_small_usd=2.5"])
    {'velocity_1m': 15, 'card_testing_enabled': False, 'card_testing_small_usd': 2.5}
    """
    defaults = fraud_rules.DEFAULTS
    values = {}
    for item in assignments:
        name, _, text = item.partition("=")
        if name not in fraud_rules.PARAMETERS:
            raise ValueError(f"unknown rule parameter {name!r}; known: {', '.join(fraud_rules.PARAMETERS)}")
        kind = type(getattr(defaults, name))
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(f"{name} takes true or false, not {text!r}")
            values[name] = text.lower() == "true"
        else:
            values[name] = kind(text)
    return values


def publish(bootstrap: str, topic: str, message: dict) -> None:
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    producer.produce(topic, key=json.dumps({"tenant_id": message["tenant_id"]}).encode(),
                     value=json.dumps(message).encode())
    if producer.flush(30):
        raise RuntimeError(f"could not write to {topic}")


def run(args) -> int:
    if args.action == "show":
        topics.ensure_topics(args.bootstrap, [topics.like(args.topic, topics.RULES)], log=lambda *_: None)
        return show(args.bootstrap, args.topic)
    try:
        message = (fraud_rules.default_message(args.effective_from) if args.action == "defaults" else
                   fraud_rules.rule_message(args.tenant, parse_assignments(args.assignments), args.effective_from))
    except ValueError as error:
        print(f"vigil rules: {error}", file=sys.stderr)
        return 2
    # The job's own check (types, ranges): what it would refuse is never published.
    verdict = fraud_rules.parse_rule_message(json.dumps({"tenant_id": message["tenant_id"]}).encode(),
                                             json.dumps(message).encode())
    if verdict.reason is not None:
        print(f"vigil rules: refused, the fraud job would not apply it: {verdict.detail}", file=sys.stderr)
        return 2
    topics.ensure_topics(args.bootstrap, [topics.like(args.topic, topics.RULES)], log=lambda *_: None)
    before = current_rules(args.bootstrap, args.topic).get(message["tenant_id"])
    publish(args.bootstrap, args.topic, message)
    print(f"published rules for {message['tenant_id']!r}, effective from {message['effective_from']} UTC")
    audit_log.record("rules.publish", f"{args.topic}/{message['tenant_id']}", before=before, after=message,
                     bootstrap=args.bootstrap)
    return 0


def _accepted(bootstrap: str, topic: str) -> tuple[dict, int]:
    """Per tenant, (effective_from, values) of the newest rule the job accepts; and how many
    records the job would refuse."""
    latest, refused = {}, 0
    for record in kafka_io.read(bootstrap, topic, idle_timeout_s=2):
        verdict = fraud_rules.parse_rule_message(record.key(), record.value())
        if verdict.reason is not None:
            refused += 1
            continue
        effective = json.loads(record.value())["effective_from"]
        if verdict.tenant_id not in latest or effective >= latest[verdict.tenant_id][0]:
            latest[verdict.tenant_id] = (effective, verdict.values)
    return latest, refused


def current_rules(bootstrap: str, topic: str) -> dict[str, dict]:
    """Per tenant, the parameters in force (set ones only) and since when: an audit entry's "before"."""
    latest, _ = _accepted(bootstrap, topic)
    return {tenant: {"effective_from": effective, **{k: v for k, v in values.items() if v is not None}}
            for tenant, (effective, values) in latest.items()}


def show(bootstrap: str, topic: str) -> int:
    """Per tenant, the newest rule (by effective time) that the job accepts, as the job reads them."""
    latest, refused = _accepted(bootstrap, topic)
    for tenant, (effective, values) in sorted(latest.items()):
        shown = {name: value for name, value in values.items() if value is not None}
        print(f"{tenant} (from {effective}): {json.dumps(shown)}")
    if refused:
        print(f"({refused} record(s) on {topic} refused by the fraud job: see its dead-letter topic)")
    return 0
