"""The registry process against hostile and broken HTTP: whatever the method, path, headers and
body, the answer is a 2xx or a 4xx with Confluent's JSON error body, never a 5xx, an HTML page or
a hung connection, and the process keeps serving.

Requests are written as raw bytes on a socket (http.client refuses much of what is sent here),
and each request's sending side is closed so that a body shorter than its Content-Length ends at
once instead of waiting for the server's timeout (one test waits for it on purpose).

Everything the fuzz may create lives under subjects prefixed `fuzz-<run>-`; the global
compatibility mode is never written (other tests share the `_schemas` log).
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from vigil import procs
from vigil.registry import service

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
RUN = uuid.uuid4().hex[:8]
KNOWN = f"fuzz-{RUN}-known"  # registered once, one version
RECORD = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def registry(kafka):
    """A registry process of this checkout (the program `vigil infra up` starts) on its own port,
    on the shared `_schemas` log. Not the session's `schema_registry`: a registry already
    running on 8085 would be reused, and it may run older code."""
    settings = service.RegistrySettings(port=_free_port())
    service.start(kafka, settings, log=lambda *_: None)
    assert send(settings.port, req("POST", f"/subjects/{KNOWN}/versions", {"schema": RECORD})).status == 200
    yield settings
    service.stop(settings, log=lambda *_: None)


# --- raw HTTP ----------------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    content_type: str | None
    headers: http.client.HTTPMessage
    body: bytes
    seconds: float

    def json(self):
        return json.loads(self.body)


def req(method: str | bytes, target: str | bytes, body: bytes | dict | None = None,
        headers: list[tuple[str, str]] = (), length: bool = True) -> bytes:
    """A raw HTTP/1.1 request; a Content-Length for the body unless `length` is False."""
    as_bytes = (lambda v: v if isinstance(v, bytes) else str(v).encode("latin-1"))  # "\xff": one byte
    data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    lines = [as_bytes(method) + b" " + as_bytes(target) + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [as_bytes(name) + b": " + as_bytes(value) for name, value in headers]
    if length and data:
        lines.append(b"Content-Length: %d" % len(data))
    return b"\r\n".join(lines) + b"\r\n\r\n" + data


def send(port: int, request: bytes, close_write: bool = True, timeout: float = 20) -> Reply:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
            if close_write:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer (e.g. 414) and close before reading everything
        method = request.split(b" ", 1)[0].decode("latin-1")
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        body = response.read()
        return Reply(response.status, response.getheader("Content-Type"), response.headers, body,
                     time.monotonic() - started)


def assert_confluent(reply: Reply, status: int | None = None, error_code: int | None = None) -> None:
    """< 500; our content type; on an error, {"error_code": int, "message": str} (HEAD: no body)."""
    assert reply.status < 500, reply
    if status is not None:
        assert reply.status == status, reply
    assert reply.content_type == CONTENT_TYPE, reply
    if reply.status >= 400 and reply.body:
        error = reply.json()
        assert isinstance(error, dict) and isinstance(error.get("error_code"), int), reply
        assert isinstance(error.get("message"), str) and error["message"], reply
        if error_code is not None:
            assert error["error_code"] == error_code, reply


def assert_alive(registry) -> None:
    reply = send(registry.port, req("GET", "/config"))
    assert reply.status == 200 and "compatibilityLevel" in reply.json()
    assert procs.is_alive(service.pid(registry))


# --- the fuzz ------------------------------------------------------------------------------------------
FUZZ_SUBJECTS = [f"fuzz-{RUN}-{i}" for i in range(3)]  # not KNOWN: later tests need it as it is
BAD_SUBJECTS = ["", ".", "..", "%2e%2e", "a" * 256, "%00", "a%0Ab", "%7F", "%C2%85", "%ff", "%", "%zz",
                "caf%C3%A9", "\x01", "\xff", "a%2Fb"]
VERSIONS = ["latest", "-1", "1", "2", "0", "-2", "abc", str(2**70), "2147483648", "1.0", "%31", "%ff", ""]
IDS = ["1", "0", "-1", "abc", str(2**70), "%D9%A1", ""]
WORDS = (["subjects", "versions", "schemas", "ids", "config", "compatibility", "schema", ".."]
         + FUZZ_SUBJECTS[:1] + BAD_SUBJECTS + VERSIONS)
QUERIES = ["", "?deleted=true", "?permanent=true", "?verbose=true", "?defaultToGlobal=true", "?%zz=%ff&&=",
           "?deleted=" + "x" * 500]
TEMPLATES = [  # (method, path) as in the API; "{s}" a subject, "{v}" a version, "{id}" a schema id
    ("GET", "/subjects"), ("GET", "/subjects/{s}/versions"), ("GET", "/subjects/{s}/versions/{v}"),
    ("GET", "/subjects/{s}/versions/{v}/schema"), ("GET", "/schemas/ids/{id}"),
    ("GET", "/schemas/ids/{id}/subjects"), ("POST", "/subjects/{s}/versions"), ("POST", "/subjects/{s}"),
    ("POST", "/compatibility/subjects/{s}/versions/{v}"), ("GET", "/config"), ("GET", "/config/{s}"),
    ("PUT", "/config/{s}"), ("DELETE", "/subjects/{s}"), ("DELETE", "/subjects/{s}/versions/{v}"),
]  # PUT /config (global) is left out: other tests rely on the global mode
METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "get"]
MODES = ["BACKWARD", "forward", "FULL_TRANSITIVE", "NONE", "SIDEWAYS", None, 5, ["NONE"]]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["schema", "schemaType", "references", "x"]), inner, max_size=3),
    max_leaves=10)

names = st.sampled_from(["R", "S", "dev.vigil.T", "1bad", ""])


def records(inner):
    field = st.tuples(inner, st.sampled_from([{}]) | st.builds(lambda v: {"default": v}, json_values))
    return st.builds(lambda name, fields: {"type": "record", "name": name, "fields": [
        {"name": f"f{i}", "type": t, **default} for i, (t, default) in enumerate(fields)]},
        names, st.lists(field, max_size=3))


avro_types = st.recursive(
    st.sampled_from(["null", "boolean", "int", "long", "float", "double", "bytes", "string", "strng", "R"]),
    lambda inner: (
        st.lists(inner, min_size=1, max_size=3)  # unions
        | st.builds(lambda items: {"type": "array", "items": items}, inner)
        | st.builds(lambda values: {"type": "map", "values": values}, inner)
        | st.builds(lambda name, symbols: {"type": "enum", "name": name, "symbols": symbols},
                    names, st.lists(st.sampled_from(["A", "B", "a-b", ""]), max_size=3))
        | st.builds(lambda name, size: {"type": "fixed", "name": name, "size": size},
                    names, st.sampled_from([0, 16, -1, "x"]))
        | st.builds(lambda p, s: {"type": "bytes", "logicalType": "decimal", "precision": p, "scale": s},
                    st.sampled_from([0, 4, -1, "x"]), st.sampled_from([0, 2, 9]))
        | records(inner)),
    max_leaves=8)

schema_bodies = st.fixed_dictionaries(
    {"schema": st.one_of(records(avro_types).map(json.dumps), avro_types.map(json.dumps),
                         st.sampled_from([RECORD, "{not json", "", "[" * 3000]), json_values)},
    optional={"schemaType": st.sampled_from([None, "AVRO", "avro", "JSON", "PROTOBUF", "", 7, []]),
              "references": st.sampled_from([None, [], "x", [1], {"a": 1}, [{"name": 1}],
                                             [{"name": "n", "subject": "s", "version": 1}],
                                             [{"name": "n", "subject": "s", "version": True}]])})
junk_bodies = st.one_of(
    st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"", b"{nope", b"\xff\xfe\x00{", b"[" * 100_000, b'{"schema": "\\ud800"}',
                     b"1" * 5000, b"x" * (2 * 1024 * 1024)]))
header_items = st.sampled_from([
    ("Content-Type", CONTENT_TYPE), ("Content-Type", "application/json"), ("Content-Type", "text/html"),
    ("Content-Type", "\x00\xff"), ("Accept", "*/*"), ("Accept", "text/html"), ("Accept", "\u00e9"),
    ("Transfer-Encoding", "chunked"), ("Content-Length", "-1"), ("Content-Length", "abc"),
    ("Content-Length", "0"), ("Content-Length", "99999"), ("Content-Length", "1" * 40),
    ("Content-Length", str(10**30)), ("Expect", "100-continue"), ("Connection", "keep-alive"),
    ("Content-Encoding", "gzip"), ("X-\u00e9", "\x7f"), ("", "empty name"), (":", ":"),
]) | st.tuples(st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_|~-]{1,20}", fullmatch=True),
               st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=40))


@st.composite
def http_requests(draw) -> bytes:
    headers = draw(st.one_of(st.just([]), st.just([]), st.lists(header_items, min_size=1, max_size=3)))
    length = draw(st.booleans()) or not headers  # without one, the body is sent unannounced
    if draw(st.sampled_from([True, True, False])):  # the API's own routes, hostile arguments and bodies
        method, template = draw(st.sampled_from(TEMPLATES) | st.sampled_from(TEMPLATES[6:9]))  # + POSTs
        subject = draw(st.sampled_from(FUZZ_SUBJECTS) | st.sampled_from(BAD_SUBJECTS))
        path = (template.replace("{s}", subject).replace("{v}", draw(st.sampled_from(VERSIONS)))
                .replace("{id}", draw(st.sampled_from(IDS))))
        if method == "PUT" and subject in FUZZ_SUBJECTS:  # writes only under this run's subjects
            body = json.dumps({"compatibility": draw(st.sampled_from(MODES))}).encode()
        elif method == "POST" and subject in FUZZ_SUBJECTS:
            body = json.dumps(draw(schema_bodies)).encode()
        else:
            body = draw(junk_bodies)
    else:  # anything: verbs, segments, percent-junk and raw bytes (never a valid mode or schema)
        method = draw(st.sampled_from(METHODS) | st.from_regex(r"[A-Z]{1,10}", fullmatch=True))
        raw_segments = st.binary(max_size=12).map(lambda b: b.decode("latin-1"))
        segments = draw(st.lists(st.sampled_from(WORDS) | raw_segments, max_size=6))
        path = "/" + "/".join(segments)
        body = draw(junk_bodies)
    return req(method, (path + draw(st.sampled_from(QUERIES))).encode("latin-1"), body, headers, length=length)


@settings(max_examples=1500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=http_requests())
def test_fuzzed_requests_get_2xx_or_confluent_4xx_and_the_server_stays_up(registry, request):
    reply = send(registry.port, request)
    assert reply.status < 500, (request[:300], reply)
    assert reply.content_type == CONTENT_TYPE, (request[:300], reply)
    error = {}
    if reply.status >= 400 and not request.startswith(b"HEAD "):
        error = reply.json()
        assert isinstance(error["error_code"], int) and isinstance(error["message"], str), error
    event(f"HTTP {reply.status} {error.get('error_code', '')}")  # --hypothesis-show-statistics
    assert reply.seconds < 5, (request[:300], reply)  # nothing here waits for the 10 s timeout


def test_the_server_still_answers_after_the_fuzz(registry):
    assert_alive(registry)


# --- explicit cases ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["PATCH", "TRACE", "OPTIONS", "CONNECT", "BREW", "get"])
@pytest.mark.parametrize("path", ["/subjects", "/config", "/nope"])
def test_unsupported_methods_get_405_in_json_not_an_html_501(registry, method, path):
    reply = send(registry.port, req(method, path, b'{"x": 1}'))
    assert_confluent(reply, 405, 405)
    assert "GET" in reply.headers["Allow"]


def test_a_method_the_path_does_not_have_gets_405_naming_those_it_has(registry):
    reply = send(registry.port, req("GET", f"/subjects/{KNOWN}"))  # lookup is POST, delete DELETE
    assert_confluent(reply, 405, 405)
    assert reply.headers["Allow"] == "DELETE, POST"


def test_head_answers_like_get_without_a_body(registry):
    reply = send(registry.port, req("HEAD", "/config"))
    assert reply.status == 200 and reply.body == b"" and int(reply.headers["Content-Length"]) > 0
    assert_confluent(send(registry.port, req("HEAD", "/nope")), 404)


@pytest.mark.parametrize("target, status, code", [
    ("/nope", 404, 404), ("/", 404, 404), ("/subjects/x/versions/1/nope", 404, 404),
    ("/../../etc/passwd", 404, 404), ("/subjects/../config", 404, 404), ("/subjects/../versions", 422, 42208),
    ("/subjects/..%2F..%2Fetc/versions", 404, 40401), ("/subjects/%2e%2e/versions", 422, 42208),
    ("http://[/subjects", 400, 400), ("*", 404, 404),
])
def test_unknown_paths_and_traversal(registry, target, status, code):
    assert_confluent(send(registry.port, req("GET", target)), status, code)


@pytest.mark.parametrize("subject, status, code", [
    ("%00", 422, 42208), ("a%0Ab", 422, 42208), ("a%7F", 422, 42208), ("a%C2%85", 422, 42208),  # U+0085
    ("a\x01b", 422, 42208), ("%ff", 422, 42208), ("\xff", 422, 42208), (".", 422, 42208),
    ("s" * 256, 422, 42208), ("caf%C3%A9", 404, 40401), ("caf\xc3\xa9", 404, 40401),  # raw UTF-8
    ("a%2Fb", 404, 40401),
])
def test_subjects_with_control_characters_bad_utf8_or_too_long_are_refused(registry, subject, status, code):
    reply = send(registry.port, req("GET", f"/subjects/{subject}/versions"))
    assert_confluent(reply, status, code)
    if code == 42208:
        reply = send(registry.port, req("POST", f"/subjects/{subject}/versions", {"schema": RECORD}))
        assert_confluent(reply, 422, 42208)
        assert "Invalid subject" in reply.json()["message"]


def test_a_subject_of_255_characters_is_accepted_and_256_refused(registry):
    subject = f"fuzz-{RUN}-".ljust(255, "x")
    assert send(registry.port, req("POST", f"/subjects/{subject}/versions", {"schema": RECORD})).status == 200
    assert send(registry.port, req("GET", f"/subjects/{subject}/versions")).json() == [1]
    reply = send(registry.port, req("POST", f"/subjects/{subject}y/versions", {"schema": RECORD}))
    assert_confluent(reply, 422, 42208)
    assert "255" in reply.json()["message"]


@pytest.mark.parametrize("version, status, code", [
    ("latest", 200, None), ("-1", 200, None), ("1", 200, None), ("%31", 200, None),
    ("2", 404, 40402), ("2147483647", 404, 40402), ("2147483648", 422, 42202), ("0", 422, 42202),
    ("-2", 422, 42202), ("abc", 422, 42202), (str(2**70), 422, 42202), ("1.0", 422, 42202),
    ("%201", 422, 42202), ("%D9%A1", 422, 42202),  # an Arabic-Indic one: int() would take it
])
def test_version_strings(registry, version, status, code):
    reply = send(registry.port, req("GET", f"/subjects/{KNOWN}/versions/{version}"))
    assert_confluent(reply, status, code)
    if status == 200:
        assert reply.json()["version"] == 1
    check = send(registry.port, req("POST", f"/compatibility/subjects/{KNOWN}/versions/{version}",
                                    {"schema": RECORD}))
    assert_confluent(check, status, code)


@pytest.mark.parametrize("schema_id", ["abc", "-1", str(2**70), "%D9%A1", "1.5"])
def test_schema_ids_that_are_not_ids_are_not_found(registry, schema_id):
    assert_confluent(send(registry.port, req("GET", f"/schemas/ids/{schema_id}")), 404, 40403)


@pytest.mark.parametrize("body, status, code", [
    (b"{nope", 400, 400), (b"\xff\xfe{}", 400, 400), (b"[" * 100_000, 400, 400), (b"[1]", 400, 400),
    (b'"schema"', 400, 400), (b"1" * 5000, 400, 400),
    ({"schema": 5}, 422, 42201), ({"schema": ["x"]}, 422, 42201), ({"schema": ""}, 422, 42201), ({}, 422, 42201),
    ({"schema": "{not json"}, 422, 42201), ({"schema": '{"type": "strng"}'}, 422, 42201),
    ({"schema": "[" * 5000 + "]" * 5000}, 422, 42201),
    ({"schema": RECORD, "schemaType": "PROTOBUF"}, 422, 42201),
    ({"schema": RECORD, "schemaType": "FOO"}, 422, 42201),
    ({"schema": RECORD, "schemaType": 7}, 422, 42201),
    ({"schema": RECORD, "references": "x"}, 422, 42201), ({"schema": RECORD, "references": [1]}, 422, 42201),
    ({"schema": RECORD, "references": [{"name": 1}]}, 422, 42201),
    ({"schema": RECORD, "references": {"a": 1}}, 422, 42201),
    ({"schema": RECORD, "schemaType": None, "references": []}, 200, None),
    ({"schema": RECORD, "schemaType": "AVRO", "references": None}, 200, None),
])
def test_register_bodies(registry, body, status, code):
    reply = send(registry.port, req("POST", f"/subjects/fuzz-{RUN}-bodies/versions", body))
    assert_confluent(reply, status, code)


@pytest.mark.parametrize("body", [{"compatibility": None}, {"compatibility": 5}, {"compatibility": ["NONE"]}, {}])
def test_config_bodies_of_the_wrong_type_are_refused_not_read_as_none(registry, body):
    subject = f"fuzz-{RUN}-config"
    assert_confluent(send(registry.port, req("PUT", f"/config/{subject}", body)), 422, 42203)
    assert_confluent(send(registry.port, req("PUT", "/config", body)), 422, 42203)  # global: never applied
    assert_confluent(send(registry.port, req("GET", f"/config/{subject}")), 404, 40408)


@pytest.mark.parametrize("request_bytes, status", [
    (b"GARBAGE\r\n\r\n", 400), (b"GET /config HTTP/2.0\r\n\r\n", 400), (b"GET /config HTTP/x\r\n\r\n", 400),
    (b"GET /config\r\n\r\n", 200),  # HTTP/0.9 form: still answered with a status line
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /config HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
    (b"GET /config HTTP/1.1\r\nX: " + b"y" * 70_000 + b"\r\n\r\n", 431),
    (req("POST", "/subjects/s/versions", b"{}", [("Transfer-Encoding", "chunked")], length=False), 411),
    (req("POST", "/subjects/s/versions", b"{}", [("Content-Length", "-1")], length=False), 400),
    (req("POST", "/subjects/s/versions", b"{}", [("Content-Length", "abc")], length=False), 400),
    (req("POST", "/subjects/s/versions", b"{}", [("Content-Length", "2"), ("Content-Length", "3")],
         length=False), 400),
    (req("POST", "/subjects/s/versions", b"{}", [("Content-Length", "100")], length=False), 400),  # short
    (req("POST", "/subjects/s/versions", b"{}", [("Content-Length", str(10**30))], length=False), 413),
    (req("POST", "/subjects/s/versions", b"{}", [("Content-Length", "1" * 5000)], length=False), 413),
    (req("POST", "/subjects/s/versions", b"x" * (2 * 1024 * 1024)), 413),
    (req("GET", "/subjects", b"x" * (2 * 1024 * 1024)), 413),
])
def test_broken_framing_gets_a_json_4xx(registry, request_bytes, status):
    assert_confluent(send(registry.port, request_bytes), status)


def test_a_client_that_stops_sending_mid_body_gets_408_after_the_timeout_not_a_hung_connection(registry):
    request = req("POST", f"/subjects/fuzz-{RUN}-slow/versions", b"{", [("Content-Length", "100")], length=False)
    reply = send(registry.port, request, close_write=False, timeout=30)
    assert_confluent(reply, 408, 408)
    assert reply.seconds < 15


def test_the_server_still_answers_after_everything(registry):
    assert_alive(registry)
