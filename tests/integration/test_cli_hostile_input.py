"""Hostile input at the CLI's doors (issue 15, section 4): every command added since the
poison-record fix (sql, rules, audit, serving, api, upgrade, restore, savepoints, savepoint, stop,
backtest, dr, ops) and the older ones that take numbers (generate, demo, cluster), given bad files
(folders, FIFOs, /dev/zero, binary, oversized, NUL, empty, not UTF-8), bad numbers, hostile names
and paths, property-based arbitrary arguments. Each must end with a clear one-line error and a
non-zero exit (argparse's 2 included), never a traceback, never a hang, and store nothing: no
schema subject, rules record, serving key or audit entry with this run's marker appears.
Runs `vigil` in this process (cli.main), against the test session's Kafka, registry and PostgreSQL.
"""

from __future__ import annotations

import os
import traceback
import uuid

import psycopg
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile_doors import Tally
from vigil import audit_log, cli, kafka_io
from vigil.serving import credentials
from vigil.serving import postgres as pg

RUN = uuid.uuid4().hex[:6]
MARK = f"hostile{RUN}"          # in every name a case could store
TALLY = Tally("the vigil CLI")
RULES_TOPIC = f"{MARK}.rules"
SUBJECT = f"{MARK}-value"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile-files")
    made = {"folder": d / "folder", "fifo": d / "fifo", "binary": d / "binary.sql", "big": d / "big.sql",
            "nul": d / "nul.sql", "empty": d / "empty.sql", "comments": d / "comments.sql", "latin1": d / "latin1.sql",
            "nosemi": d / "nosemi.sql", "good": d / "good.sql", "loop": d / "loop.sql", "json_list": d / "list.json",
            "json_bad": d / "bad.json", "rules_nan": d / "nan.json", "labels_bad": d / "labels.jsonl"}
    made["folder"].mkdir()
    os.mkfifo(made["fifo"])
    made["binary"].write_bytes(os.urandom(4096))
    made["big"].write_text("SELECT 1;\n" * 200_000)                      # 2 MB
    made["nul"].write_text("SELECT 1;\x00\n")
    made["empty"].write_text("")
    made["comments"].write_text("-- nothing here\n-- at all\n")
    made["latin1"].write_bytes("SELECT 'é';\n".encode("latin-1"))
    made["nosemi"].write_text("INSERT INTO x SELECT 1")
    made["good"].write_text("INSERT INTO blackhole_sink SELECT 1;\n")
    made["loop"].symlink_to(made["loop"])
    made["json_list"].write_text("[1, 2, 3]")
    made["json_bad"].write_text('{"t1": {"card_testing_min_small": ')
    made["rules_nan"].write_text('{"t1": {"card_testing_small_usd": NaN}}')
    made["labels_bad"].write_text('{"event_id": 1}\nnot json\n')
    return {k: str(v) for k, v in made.items()}


def cases(f: dict, bootstrap: str, registry: str, database: str) -> list[list[str]]:
    long_name = "x" * 5000
    rules = ["--bootstrap", bootstrap, "--topic", RULES_TOPIC]
    window = ["--from", "2026-12-01T00:00:00Z", "--to", "2026-12-01T01:00:00Z"]
    return [
        # vigil sql -f: files, names and savepoints that cannot be used (refused before any cluster)
        *[["sql", "-f", f[k]] for k in ("folder", "fifo", "binary", "big", "nul", "empty", "comments", "latin1",
                                        "nosemi", "loop")],
        ["sql", "-f", "/dev/zero"], ["sql", "-f", "/nonexistent/x.sql"], ["sql", "-f", "a\x00b.sql"],
        ["sql", "-f", long_name], ["sql", "-f", f["good"], "--job-name", f"{MARK}'; DROP TABLE x; --"],
        ["sql", "-f", f["good"], "--job-name", ""], ["sql", "-f", f["good"], "--job-name", MARK * 20],
        ["sql", "-f", f["good"], "--job-name", f"{MARK}\n"], ["sql", "-f", f["good"], "--savepoint", "x' , 'y"],
        ["sql", "-f", f["good"], "--savepoint", "file:/a\nb"], ["sql", "-f", f["good"], "--savepoint", ""],
        # vigil rules set: names, values and tenants the fraud job would refuse
        ["rules", "set", *rules, "--tenant", MARK, "no_such_rule=1"],
        ["rules", "set", *rules, "--tenant", MARK, "card_testing_small_usd=nan"],
        ["rules", "set", *rules, "--tenant", MARK, "card_testing_small_usd=1e999"],
        ["rules", "set", *rules, "--tenant", MARK, "card_testing_small_usd=-1"],
        ["rules", "set", *rules, "--tenant", MARK, "card_testing_min_small=2.5"],
        ["rules", "set", *rules, "--tenant", MARK, "card_testing_enabled=maybe"],
        ["rules", "set", *rules, "--tenant", MARK, "card_testing_min_small"],
        ["rules", "set", *rules, "--tenant", MARK, "card_testing_min_small=" + "9" * 5000],
        ["rules", "set", *rules, "--tenant", f"../{MARK}", "card_testing_min_small=5"],
        ["rules", "set", *rules, "--tenant", f"{MARK}\x01", "card_testing_min_small=5"],
        ["rules", "set", *rules, "--tenant", MARK + "x" * 200, "card_testing_min_small=5"],
        ["rules", "set", *rules, "--tenant", "", "card_testing_min_small=5"],
        ["rules", "set", *rules, "--tenant", MARK, "--effective-from", "soon", "card_testing_min_small=5"],
        # vigil audit
        ["audit", "show", "--last", "0"], ["audit", "show", "--last", "-3"], ["audit", "show", "--last", "1e3"],
        ["audit", "verify", "--bootstrap", bootstrap, "--topic", "../../etc/passwd"],
        ["audit", "show", "--bootstrap", bootstrap, "--topic", "x" * 300],
        # vigil serving
        ["serving", "--database", database, "keys", "create", "--tenant", f"{MARK}'; DROP TABLE x; --"],
        ["serving", "--database", database, "keys", "create", "--tenant", ""],
        ["serving", "--database", database, "keys", "create", "--tenant", MARK + "\x00"],
        ["serving", "--database", database, "keys", "create", "--tenant", MARK * 30],
        ["serving", "--database", database, "keys", "revoke", "' OR '1'='1"],
        ["serving", "--database", f"{database}; DROP DATABASE x", "keys", "list"],
        ["serving", "--database", database, "retention", "--set", "sales_minute=-1"],
        ["serving", "--database", database, "retention", "--set", "sales_minute=nan"],
        ["serving", "--database", database, "retention", "--set", "pg_authid=5"],
        ["serving", "--database", database, "retention", "--set", "sales_minute"],
        # vigil api: refused before it binds anything
        ["api", "--port", "99999"], ["api", "--port", "-1"], ["api", "--port", "http"], ["api", "--workers", "0"],
        ["api", "--database", "x;drop"],
        # savepoints and upgrades: paths that are no savepoint, jobs that do not exist, bad numbers
        *[["upgrade", "check", "ingest", "--from", p] for p in ("/etc/passwd", "../../..", "/dev/zero", f["fifo"],
                                                                  "s3://nobucket/../../x", "file:///nonexistent",
                                                                  "a\x00b", long_name)],
        ["upgrade", "check", f"{MARK}-nojob", "--latest"],
        ["restore", "ingest", "--from", "/etc"], ["restore", f"{MARK}-nojob", "--latest"],
        ["savepoints", "--keep", "0"], ["savepoints", "--keep", "-1"], ["savepoints", "--keep", "all"],
        ["savepoint", f"{MARK}-nojob", "--timeout", "0"], ["savepoint", f"{MARK}' OR 1=1"],
        ["stop", f"{MARK}-nojob"], ["stop", f"{MARK}-nojob", "--savepoint", "--timeout", "-5"],
        # vigil backtest: files and ranges
        ["backtest", *window, "--candidate-rules", "/dev/zero"],
        *[["backtest", *window, "--candidate-rules", f[k]] for k in ("fifo", "binary", "json_list", "json_bad",
                                                                     "rules_nan", "folder")],
        ["backtest", *window, "--candidate-rules", f["good"], "--scenario-labels", f["labels_bad"]],
        ["backtest", "--from", "yesterday-ish", "--candidate-model", "nope"],
        ["backtest", *window, "--candidate-model", "nope"], ["backtest", *window, "--timeout", "0"],
        # drills and traffic: numbers out of range, refused before anything starts
        ["dr", "drill", "--rate", "-5"], ["dr", "drill", "--rate", "nan"], ["dr", "drill", "--scenario", "nope"],
        ["dr", "drill", "--checkpoint-interval-ms", "0"], ["dr", "drill", "--after-s", "1e9"],
        ["generate", "--rate", "-1"], ["generate", "--bad-fraction", "2"], ["generate", "--events", "0"],
        ["generate", "--rate", "inf"], ["demo", "--duration", "0"], ["demo", "--rate", "-1"],
        ["cluster", "up", "--taskmanagers", "999"], ["ops", "sideways"], ["infra", "explode"],
        ["schema", "register", f["fifo"], "--subject", SUBJECT, "--url", registry],
        ["schema", "register", f["binary"], "--subject", SUBJECT, "--url", registry],
        ["schema", "config", "--set", "SIDEWAYS", "--url", registry],
    ]


def run_vigil(capsys, argv: list[str]) -> tuple[int, str]:
    """Exit code and everything printed; an exception other than SystemExit fails the test."""
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (print(stop.code) or 1)
    except Exception:  # noqa: BLE001 - the finding: reported with the others
        code = None
        print("Traceback:\n" + traceback.format_exc(limit=-3))
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(scope="module")
def stores(kafka, schema_registry, postgres):
    """What a case could have stored, as seen before and after every case."""
    def snapshot() -> dict:
        subjects = requests.get(f"{schema_registry}/subjects", params={"deleted": "true"}, timeout=10).json()
        with psycopg.connect(pg.dsn(credentials.ADMIN, postgres)) as conn:
            keys = conn.execute("SELECT count(*) FROM serving_private.api_keys WHERE tenant_id LIKE %s",
                                [f"%{MARK}%"]).fetchone()[0]
            retention = conn.execute("SELECT table_name, retention::text FROM serving_private.partitioned_tables"
                                     " UNION ALL SELECT table_name, retention::text FROM serving_private.expiring_tables"
                                     " ORDER BY 1").fetchall()
        rules = kafka_io.read(kafka, RULES_TOPIC, idle_timeout_s=1) if _topic_exists(kafka, RULES_TOPIC) else []
        audited = [e for e in audit_log.entries(kafka) if MARK in str(e)] if _topic_exists(kafka, audit_log.TOPIC) else []
        return {"subjects": [s for s in subjects if MARK in s], "keys": keys, "retention": retention,
                "rules": len(list(rules)), "audit": len(audited)}
    snapshot.before = snapshot()
    assert snapshot.before["keys"] == 0 and snapshot.before["subjects"] == [] and snapshot.before["rules"] == 0
    yield snapshot
    TALLY.save()


def _topic_exists(bootstrap: str, topic: str) -> bool:
    from confluent_kafka.admin import AdminClient
    return topic in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics


def test_every_hostile_case_exits_non_zero_with_a_message_and_stores_nothing(capsys, files, stores, kafka,
                                                                               schema_registry, postgres):
    failures = []
    for argv in cases(files, kafka, schema_registry, postgres):
        code, printed = run_vigil(capsys, argv)
        TALLY.add(argv[0] if argv[0] != "serving" else "serving " + argv[3])
        if code in (0, None) or not printed.strip() or "Traceback" in printed:
            failures.append(f"vigil {' '.join(a[:60] for a in argv)!r} -> exit {code}: {printed[-300:]!r}")
    assert not failures, "\n".join(failures)
    assert stores() == stores.before


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(command=st.sampled_from([["rules", "set", "--topic", RULES_TOPIC, "--tenant"], ["audit", "show", "--last"],
                                ["serving", "keys", "create", "--tenant"], ["upgrade", "check", "ingest", "--from"],
                                ["sql", "-f"], ["api", "--port"], ["dr", "drill", "--rate"], ["savepoints", "--keep"],
                                ["backtest", "--candidate-rules"], ["generate", "--bad-fraction"]]),
       words=st.lists(st.text(st.characters(blacklist_categories=["Cs"]), max_size=80), min_size=1, max_size=4))
def test_arbitrary_arguments_never_raise(capsys, stores, command, words, kafka, postgres):
    argv = [*command, *[w.replace("\x00", "") or "-" for w in words]]
    if argv[0] == "rules":
        argv[2:2] = ["--bootstrap", kafka]
        argv.append(f"{MARK}_never_a_rule=1")        # whatever the tenant, an unknown rule
    if argv[0] == "serving":   # never a valid tenant (the first character must be a letter or digit)
        argv[-len(words)] = "." + MARK + argv[-len(words)]
        argv[1:1] = ["--database", postgres]
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code
    capsys.readouterr()
    TALLY.add("arbitrary arguments (property-based)")
    assert code not in (0, None) or argv[0] in ("audit", "savepoints"), argv


def test_nothing_any_case_tried_was_stored(stores):
    """Checked once after all the cases (each example checking every store took 0.7 s)."""
    assert stores() == stores.before
