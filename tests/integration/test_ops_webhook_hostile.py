"""Hostile input at the alert webhook (`python -m vigil.ops_stack webhook`, the receiver the local
Alertmanager notifies; an admin endpoint on 127.0.0.1): path tricks, wrong methods and content
types, missing, negative, huge or lying Content-Length, malformed or foreign JSON, arbitrary
bytes and bodies (property-based), idle and slow clients. Each gets a clear 4xx or a closed
connection; the receiver stays up and answers real notifications meanwhile; only real
Alertmanager notifications are stored. Case counts: tests/hostile_doors.py."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile_doors import Tally
from tests.integration.test_api_hostile_transport import _free_port, raw, status_of
from vigil.paths import PROJECT_ROOT

TALLY = Tally("the alert webhook (HTTP)")
NOTIFICATION = {"version": "4", "status": "firing", "receiver": "page",
                "alerts": [{"status": "firing", "labels": {"alertname": "VigilTest"}, "annotations": {}}]}


@pytest.fixture(scope="module")
def hook(tmp_path_factory):
    out = tmp_path_factory.mktemp("webhook")
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "vigil.ops_stack", "webhook", "--port", str(port),
                                "--out", str(out)], cwd=PROJECT_ROOT)
    deadline = time.monotonic() + 20
    while status_of(_get(port, "/health")) != 200:
        assert time.monotonic() < deadline and process.poll() is None, "the webhook did not start"
        time.sleep(0.2)
    yield {"port": port, "out": out, "process": process, "valid": 0}
    assert process.poll() is None, "the webhook died during the hostile input"
    process.terminate()
    process.wait(10)
    TALLY.save()


def _get(port: int, path: str) -> bytes:
    try:
        return raw(port, f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode(), timeout=5)
    except OSError:
        return b""


def post(port: int, path: str, body: bytes, headers: dict | None = None, length: str | None = None) -> int | None:
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body)) if length is None else length,
               **(headers or {})}
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if v is not None)
    return status_of(raw(port, f"POST {path} HTTP/1.1\r\nHost: a\r\n{head}\r\n".encode() + body, timeout=15))


def stored(hook) -> int:
    return sum(len(f.read_text().splitlines()) for f in hook["out"].glob("*.jsonl"))


def send_valid(hook) -> None:
    assert post(hook["port"], "/page", json.dumps(NOTIFICATION).encode()) == 200
    hook["valid"] += 1
    assert stored(hook) == hook["valid"]


def test_hostile_requests_get_4xx_and_nothing_is_stored(hook):
    port, good = hook["port"], json.dumps(NOTIFICATION).encode()
    send_valid(hook)
    cases = [
        *[(path, good, {}, None, 404) for path in ("/", "/../page", "/page/../../etc/passwd", "/%2e%2e/page",
                                                    "/PAGE", "/page%00", "/" + "p" * 5000, "/page?x=1")],
        *[("/page", good, {"Content-Type": ct}, None, 415) for ct in (None, "text/plain", "application/xml",
                                                                       "application/x-www-form-urlencoded",
                                                                       "multipart/form-data; boundary=x", "json")],
        *[("/page", good, {}, length, status) for length, status in (("-1", 411), ("abc", 411), ("", 411),
                                                                     ("1e3", 411), ("٣", 411), (None, 200),
                                                                     ("99999999999", 413), (str(2 * 1024 * 1024), 413))
          if length is not None],
        ("/page", b"{not json", {}, None, 400), ("/page", b"\xff\xfe\x00", {}, None, 400), ("/page", b"", {}, None, 400),
        *[("/page", json.dumps(p).encode(), {}, None, 400) for p in (
            [], "x", 1, None, {}, {"alerts": []}, {"version": "3", "alerts": []}, {"version": "4", "alerts": "x"},
            {"version": "4", "alerts": [1]}, {"version": "4", "alerts": [{"labels": "x"}]})],
        ("/page", b'{"a": ' * 100_000, {}, None, 400),                      # nested beyond the parser's depth
    ]
    for path, body, headers, length, expected in cases:
        status = post(port, path, body, headers, length)
        TALLY.add("POST: paths, content types, lengths, bodies")
        assert status == expected, (path, headers, length, body[:60], status)
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD"):
        answer = raw(port, f"{method} /page HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode(), timeout=5)
        TALLY.add("methods")
        assert status_of(answer) == 405, (method, answer[:100])
    assert stored(hook) == hook["valid"]
    send_valid(hook)


def test_a_body_shorter_than_its_length_and_idle_clients_are_dropped_while_others_are_served(hook):
    port, results = hook["port"], []

    def hold(request: bytes) -> None:
        started = time.monotonic()
        answer = raw(port, request, timeout=30)
        results.append((status_of(answer), time.monotonic() - started))

    requests_ = [b"", b"POST /page HTTP/1.1\r\n", b"POST /page HTTP/1.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 500\r\n\r\n{\"version\": \"4\""] * 5
    threads = [threading.Thread(target=hold, args=(r,)) for r in requests_]
    for t in threads:
        t.start()
    time.sleep(1)
    send_valid(hook)                      # served while 15 connections are held
    for t in threads:
        t.join(40)
    TALLY.add("idle or slow clients", len(requests_))
    assert len(results) == len(requests_)
    assert all(seconds < 25 for _, seconds in results), results          # dropped at the 10 s read timeout
    assert all(status in (None, 400, 408) for status, _ in results), results
    assert stored(hook) == hook["valid"]


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(st.binary(max_size=512), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20).map(lambda v: json.dumps(v).encode())))
def test_arbitrary_bodies_are_stored_only_when_they_are_notifications(hook, body):
    from vigil.ops_stack import is_notification
    try:
        valid = is_notification(json.loads(body))
    except ValueError:
        valid = False
    status = post(hook["port"], "/ticket", body)
    TALLY.add("arbitrary bodies (property-based)")
    assert status == (200 if valid else 400), (body[:80], status)
    hook["valid"] += valid
    assert stored(hook) == hook["valid"]


def test_arbitrary_bytes_never_stop_the_receiver(hook):
    import random
    rng = random.Random(7)
    for _ in range(100):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        try:
            answer = raw(hook["port"], junk + b"\r\n\r\n", timeout=12)
        except OSError:
            answer = b""
        TALLY.add("arbitrary bytes")
        assert status_of(answer) in (None, 400, 404, 405, 408, 411, 414, 415, 501, 505), answer[:100]
    assert socket.create_connection(("127.0.0.1", hook["port"]), timeout=5)
    send_valid(hook)
