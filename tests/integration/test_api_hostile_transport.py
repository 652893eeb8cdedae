"""Hostile input at the analytics API's door, against the real `vigil api` process (uvicorn with
httptools and the transport guard, vigil/api/transport_guard.py): every route of the OpenAPI
schema and the dashboard, with every method, wrong content types, malformed and oversized bodies,
oversized heads, broken framing (property-based, arbitrary bytes), path tricks, slow clients, and
credentials missing, wrong, revoked or of another tenant. Each must get a clear 4xx (or, for a
read with a tenant's own key, that tenant's answer), the process stays up and answers others
meanwhile, and nothing is stored (every serving table and the key table hold what they held).
The parameter-level cases (SQL injection, arbitrary text in every parameter) are in
test_serving_api.py. Case counts: tests/hostile_doors.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import psycopg
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile_doors import Tally
from vigil.api.transport_guard import HEAD_TIMEOUT_S, MAX_HEAD_BYTES
from vigil.paths import PROJECT_ROOT
from vigil.serving import credentials, keys
from vigil.serving import postgres as pg

RUN = uuid.uuid4().hex[:6]
TA, TB = f"hta{RUN}", f"htb{RUN}"
TALLY = Tally("the analytics API and dashboard (HTTP)")
METHODS = ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND")
BODIES = {   # content type -> body
    "application/json": b'{"tenant_id": "' + TB.encode() + b'", "limit": 1',              # malformed JSON
    "application/json; charset=utf-8": b'{"tenant_id": "x", "sql": "DROP TABLE analytics.sales_minute"}',
    "application/x-www-form-urlencoded": b"tenant_id=x&limit=1",
    "multipart/form-data; boundary=zz": b"--zz\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nx\r\n--zz--\r\n",
    "text/xml": b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>",
    "application/octet-stream": bytes(range(256)) * 4,
    "text/plain; charset=utf-16": "\ufeffhello".encode("utf-16"),
}
PATH_TRICKS = [
    "/dashboard/static/../app.py", "/dashboard/static/..%2f..%2fapp.py", "/dashboard/static/%2e%2e/%2e%2e/settings.py",
    "/dashboard/static/%252e%252e%252fapp.py", "/dashboard/static/..\\..\\app.py", "/dashboard/static/%00",
    "/dashboard/static/dashboard.js%00.html", "/dashboard/static//etc/passwd", "/dashboard/static/" + "a/" * 2000,
    "/dashboard/static/\u2025/app.py", "/dashboard/../vigil/api/app.py", "/%2e%2e/%2e%2e/etc/passwd",
    "/v1/entities/user/..%2f..%2fetc%2fpasswd/features", "/v1/entities/user/%00/features",
    "/v1/entities/../../health/x/features", "/v1/revenue/..;/whoami", "/V1/REVENUE", "/v1//revenue",
    "/v1/revenue%20", "/v1/revenue.json", "/dashboard/static/vendor", "/openapi.json/../../etc/passwd",
]
LEAKS = ("import ", "def ", "root:x:", "BEGIN PRIVATE", TB, "password")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data(postgres):
    admin = pg.dsn(credentials.ADMIN, postgres)
    with psycopg.connect(pg.dsn(credentials.WRITER, postgres)) as conn:
        for tenant, gmv in ((TA, 10.0), (TB, 987654.0)):
            conn.execute("INSERT INTO analytics.sales_minute (tenant_id, merchant_id, window_start, window_end, orders,"
                         " gmv_usd, events) VALUES (%s, '*', '2026-12-01 10:00', '2026-12-01 10:01', 1, %s, 1)",
                         [tenant, gmv])
    revoked_id, revoked = keys.create(admin, TA, "revoked")
    keys.revoke(admin, revoked_id)
    return {"a": keys.create(admin, TA)[1], "b": keys.create(admin, TB)[1], "revoked": revoked, "database": postgres}


@pytest.fixture(scope="module")
def api(data):
    """`vigil api` as deployed (a process, one worker), on a free port; stopped at the end."""
    port = _free_port()
    log = open(f"/tmp/vigil-hostile-api-{RUN}.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "vigil.cli", "api", "--port", str(port), "--database",
                                data["database"], "--workers", "1"], cwd=PROJECT_ROOT, stdout=log,
                               stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the API did not start: " + open(log.name, errors="replace").read()[-2000:])
    yield {"url": url, "port": port, "process": process}
    assert process.poll() is None, "the API process died during the hostile input"
    process.terminate()
    process.wait(15)
    log.close()
    TALLY.save()


@pytest.fixture(scope="module")
def routes(api):
    schema = requests.get(api["url"] + "/openapi.json", timeout=10).json()
    paths = [p.replace("{entity_type}", "user").replace("{entity_id}", "u1") for p in schema["paths"]]
    assert len(paths) >= 15, paths
    return [*paths, "/dashboard", "/dashboard/static/dashboard.js"]


def _stored(database: str) -> dict:
    """Row counts of every serving table and of the key table: what the API could change."""
    with psycopg.connect(pg.dsn(credentials.ADMIN, database)) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname IN ('analytics', 'serving_private')"
            " ORDER BY 1")]
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


@pytest.fixture(scope="module")
def unchanged(data, api):
    before = _stored(data["database"])
    yield
    assert _stored(data["database"]) == before


def raw(port: int, request: bytes, timeout: float = 10.0, first_answer: bool = False) -> bytes:
    """Send bytes, read the answer until the server closes or `timeout` passes (with
    `first_answer`: until the first answer's head is in, not the connection's end)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(request)
        except OSError:
            pass                                  # the server may close before reading it all
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if first_answer and b"\r\n\r\n" in out:
                    break
        except (socket.timeout, ConnectionResetError):
            pass
        return out


def status_of(answer: bytes) -> int | None:
    try:
        return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else None
    except (IndexError, ValueError):
        return None


def alive(api) -> None:
    assert api["process"].poll() is None, "the API process died"
    assert requests.get(api["url"] + "/health", timeout=5).status_code == 200


# ------------------------------------------------------------------ methods, content types, bodies

def test_every_route_refuses_every_other_method_with_any_body_as_a_json_405(api, routes, data, unchanged):
    with requests.Session() as http:
        for path in routes:
            for method in METHODS:
                for content_type, body in BODIES.items():
                    r = http.request(method, api["url"] + path, data=body, timeout=10,
                                     headers={"Content-Type": content_type, "Authorization": f"Bearer {data['a']}"})
                    TALLY.add("method x content type x body")
                    assert r.status_code in (405, 400), (method, path, r.status_code, r.text[:200])
                    if r.status_code == 405:
                        assert r.json()["error"]["code"] == "method_not_allowed"
    alive(api)


def test_a_get_with_a_body_of_any_type_is_answered_as_without_it(api, routes, data, unchanged):
    with requests.Session() as http:
        for path in routes:
            plain = http.get(api["url"] + path, headers={"Authorization": f"Bearer {data['a']}"}, timeout=10)
            for content_type, body in BODIES.items():
                r = http.get(api["url"] + path, data=body, timeout=10,
                             headers={"Content-Type": content_type, "Authorization": f"Bearer {data['a']}"})
                TALLY.add("GET with a body")
                assert r.status_code == plain.status_code < 500, (path, content_type, r.status_code)
                assert TB not in r.text and "987654" not in r.text


def test_oversized_bodies_heads_and_urls_get_4xx_and_the_server_stays_up(api, data, unchanged):
    port, key = api["port"], data["a"]
    big = b"x" * (20 * 1024 * 1024)
    cases = {
        "POST 20 MB": b"POST /v1/revenue HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + key.encode()
                      + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(big) + big,
        "GET 20 MB body": b"GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(big) + big,
        "Content-Length 10 GB, no body": b"POST /v1/revenue HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000000\r\n\r\n{",
        "200 KB header": b"GET /health HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * 200_000 + b"\r\n\r\n",
        "10,000 headers": b"GET /health HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(10000)) + b"\r\n",
        "100 KB URL": b"GET /v1/revenue?x=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
        "100 KB cookie of keys": b"GET /v1/revenue HTTP/1.1\r\nHost: a\r\nCookie: " + b"k=v; " * 20_000 + b"\r\n\r\n",
    }
    for name, request in cases.items():
        answer = raw(port, request, timeout=15)
        TALLY.add("oversized")
        status = status_of(answer)
        assert status is None or 200 <= status < 500, (name, answer[:200])
        if name in ("200 KB header", "10,000 headers", "100 KB cookie of keys"):
            assert status == 431, (name, answer[:200])
        if name.startswith("POST"):
            assert status in (405, 413, 431, None), (name, answer[:200])
    assert MAX_HEAD_BYTES < 200_000
    alive(api)


# ------------------------------------------------------------------ framing, paths

@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda method, target, tail: method + b" " + target + b" HTTP/1.1\r\n" + tail,
              st.sampled_from([b"GET", b"POST", b"G\x00T", b"get", b"CONNECT", b"PRI", b"\xff\xfe"]),
              st.binary(min_size=0, max_size=300), st.binary(max_size=600)),
    st.builds(lambda headers: b"GET /v1/revenue HTTP/1.1\r\n" + headers + b"\r\n\r\n",
              st.binary(max_size=1500)),
))
def test_arbitrary_bytes_get_a_4xx_or_a_close_never_a_5xx(api, request):
    answer = raw(api["port"], request + b"\r\n\r\n", timeout=HEAD_TIMEOUT_S + 5, first_answer=True)
    TALLY.add("arbitrary bytes (property-based)")
    status = status_of(answer)
    assert status is None or status < 500 or status == 503, answer[:300]
    assert b"Traceback" not in answer


def test_path_tricks_find_no_file_and_leak_nothing(api, data, unchanged):
    for path in PATH_TRICKS:
        answer = raw(api["port"], f"GET {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {data['a']}\r\n"
                     "Connection: close\r\n\r\n".encode(), timeout=15)
        TALLY.add("path tricks")
        status = status_of(answer)
        assert status is not None and 400 <= status < 500, (path, answer[:200])
        body = answer.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")
        assert not any(leak in body for leak in LEAKS), (path, body[:300])
    alive(api)


# ------------------------------------------------------------------ slow clients

def test_slow_and_idle_clients_are_cut_at_the_head_deadline_while_others_are_served(api, data):
    """40 clients hold connections (20 silent, 20 sending their head a byte every half second);
    meanwhile normal requests are answered at once, and every slow client gets 408 and is closed
    at the deadline (HEAD_TIMEOUT_S), not held as long as it likes."""
    port, results = api["port"], {}

    def slow(i: int, dribble: bool) -> None:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=HEAD_TIMEOUT_S + 10) as s:
            answer = b""
            try:
                if dribble:
                    for byte in b"GET /v1/revenue HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"z" * 200:
                        s.sendall(bytes([byte]))
                        time.sleep(0.5)
                        if time.monotonic() - started > HEAD_TIMEOUT_S + 8:
                            break
                answer = s.recv(4096)
            except OSError:     # reset after the 408, while still sending
                answer = answer or b"<reset>"
            results[i] = (status_of(answer) or answer[:20], time.monotonic() - started)

    threads = [threading.Thread(target=slow, args=(i, i % 2 == 0)) for i in range(40)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    latencies = []
    with requests.Session() as http:
        for _ in range(20):
            t0 = time.monotonic()
            assert http.get(api["url"] + "/v1/revenue", headers={"X-API-Key": data["a"]},
                            params={"from": "2026-12-01T10:00:00Z", "to": "2026-12-01T11:00:00Z"},
                            timeout=10).status_code == 200
            latencies.append(time.monotonic() - t0)
            time.sleep(0.2)
    for t in threads:
        t.join(HEAD_TIMEOUT_S + 20)
    TALLY.add("slow or idle clients", len(threads))
    print(f"\nslow clients: {sorted(set(r[0] for r in results.values()), key=str)}; cut after "
          f"{min(r[1] for r in results.values()):.1f}-{max(r[1] for r in results.values()):.1f} s; "
          f"normal requests meanwhile: max {max(latencies) * 1000:.0f} ms")
    assert len(results) == 40
    for status, seconds in results.values():
        assert status in (408, b"<reset>"), results
        assert HEAD_TIMEOUT_S - 0.5 <= seconds <= HEAD_TIMEOUT_S + 6, results
    assert max(latencies) < 2.0, latencies
    alive(api)


# ------------------------------------------------------------------ credentials

def test_every_route_with_missing_wrong_revoked_or_another_tenants_key(api, routes, data, unchanged):
    bad = [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"},
           {"Authorization": "Bearer " + "vgl_000000000000_" + "A" * 43}, {"X-API-Key": data["revoked"]},
           {"X-API-Key": data["a"][:-1]}, {"X-API-Key": data["a"] + "\u00e9"}, {"X-API-Key": "' OR '1'='1"},
           {"Authorization": f"Bearer {data['a']}", "X-API-Key": data["b"]}, {"X-API-Key": data["a"].upper()}]
    with requests.Session() as http:
        for path in routes:
            needs_key = path.startswith("/v1/")
            for headers in bad:
                try:
                    r = http.get(api["url"] + path, headers=headers, timeout=10)
                except (requests.exceptions.InvalidHeader, UnicodeEncodeError):
                    r = None      # the client refuses to send it; the raw form is below
                TALLY.add("credentials missing, wrong or revoked")
                if r is not None and needs_key:
                    assert r.status_code == 401, (path, headers, r.status_code)
                    assert r.json()["error"]["code"] == "unauthorized"
            if needs_key:
                raw_answer = raw(api["port"], f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n".encode()
                                 + b"X-API-Key: " + data["a"].encode() + b"\xff\xfe\r\n\r\n")
                TALLY.add("credentials missing, wrong or revoked")
                assert status_of(raw_answer) == 401, raw_answer[:200]
                r = http.get(api["url"] + path, headers={"X-API-Key": data["b"]}, timeout=10,
                             params={"from": "2026-12-01T10:00:00Z", "to": "2026-12-01T11:00:00Z"}
                             if "entities" not in path and path != "/v1/whoami" else None)
                TALLY.add("another tenant's key")
                assert r.status_code in (200, 404), (path, r.status_code, r.text[:200])
                assert TA not in r.text, path     # B's key never shows A's rows
                if r.status_code == 200 and "tenant_id" in r.json():
                    assert r.json()["tenant_id"] == TB
    alive(api)


def test_the_api_still_answers_after_everything(api, data):
    answer = requests.get(api["url"] + "/v1/revenue", headers={"X-API-Key": data["a"]}, timeout=10,
                          params={"from": "2026-12-01T10:00:00Z", "to": "2026-12-01T11:00:00Z"}).json()
    assert answer["tenant_id"] == TA and json.dumps(answer).count("987654") == 0
    alive(api)
