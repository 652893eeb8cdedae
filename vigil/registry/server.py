"""The registry's HTTP server: the part of the Confluent Schema Registry REST API that clients
and Flink's avro-confluent format use. Loopback only by default; state in the `_schemas` log.

Every answer, errors included, is Confluent's JSON (`{"error_code", "message"}`, content type
application/vnd.schemaregistry.v1+json): unknown paths 404, other methods 405, malformed
requests 400, bodies over 1 MiB 413, invalid subjects, versions and schemas 422. Client input
never gets a 5xx; a 500 is a bug or an outage of the log.

    python -m vigil.registry.server [--port 8085] [--bootstrap 127.0.0.1:9092]
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import threading
import unicodedata
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, unquote_to_bytes, urlsplit

from vigil.registry import compatibility
from vigil.registry.kafka_log import KafkaLog
from vigil.registry.store import RegistryError, canonical_or_422

MAX_BODY_BYTES = 1024 * 1024
DRAIN_LIMIT_BYTES = 16 * 1024 * 1024  # unread request bytes beyond this are cut off with a reset
# Kafka topic names have at most 249 characters, so the longest TopicNameStrategy subject
# ("<topic>-value") has 255: every real subject fits, and keys in the log stay small.
MAX_SUBJECT_CHARS = 255
MAX_VERSION = 2**31 - 1  # Confluent's versions are Java ints
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_SUBJECT = r"(?P<subject>[^/]+)"
_VERSION = r"(?P<version>[^/]+)"


class Registry:
    """Request handling against a KafkaLog; one lock serialises writes of this instance."""

    def __init__(self, log: KafkaLog):
        self.log = log
        self.write_lock = threading.Lock()

    def _write(self, command):
        """Run a command against the current state and append its records; retry a lost race."""
        with self.write_lock:
            for _ in range(5):
                with self.log.lock:
                    result, records = command(self.log.state)
                if not records or self.log.append(records):
                    return result
            raise RegistryError(500, 50003, "registration kept losing races with another instance")

    def call(self, name: str, *args, **kwargs):
        """Run the route `name`. Reads hold the log's lock: its tailing thread applies records
        under it, and iterating the state's dicts while it inserts would fail."""
        if name in WRITES:  # they take the lock themselves (after write_lock: one order)
            return getattr(self, name)(*args, **kwargs)
        with self.log.lock:
            return getattr(self, name)(*args, **kwargs)

    # --- routes ----------------------------------------------------------------------------------
    def get_subjects(self, query):
        return self.log.state.subjects(include_deleted=_flag(query, "deleted"))

    def get_versions(self, query, subject):
        return [v.version for v in self.log.state.live_versions(subject, _flag(query, "deleted"))]

    def get_version(self, query, subject, version):
        v = self.log.state.version(subject, version, _flag(query, "deleted"))
        return {"subject": v.subject, "version": v.version, "id": v.schema_id, "schema": v.schema}

    def get_version_schema(self, query, subject, version):
        return json.loads(self.log.state.version(subject, version).schema)

    def get_schema(self, query, schema_id):
        return {"schema": self.log.state.schema_by_id(schema_id)}

    def get_schema_subjects(self, query, schema_id):
        schema = self.log.state.schema_by_id(schema_id)
        return sorted({v.subject for vs in self.log.state.versions.values() for v in vs.values()
                       if v.schema == schema and not v.deleted})

    def register(self, query, body, subject):
        schema_id = self._write(lambda state: state.register(subject, _schema_of(body)))
        return {"id": schema_id}

    def lookup(self, query, body, subject):
        v = self.log.state.lookup(subject, _schema_of(body))
        return {"subject": v.subject, "version": v.version, "id": v.schema_id, "schema": v.schema}

    def check(self, query, body, subject, version):
        state = self.log.state
        text = canonical_or_422(_schema_of(body))
        mode = state.compatibility_of(subject)
        # Transitive modes check every version; the others the one named in the path.
        if mode.endswith("_TRANSITIVE") or mode == "NONE":
            existing = [v.schema for v in state.live_versions(subject)] if subject in state.versions else []
        else:
            existing = [state.version(subject, version).schema]
        problems = compatibility.incompatibilities(text, existing, mode)
        result = {"is_compatible": not problems}
        if _flag(query, "verbose") or problems:
            result["messages"] = problems
        return result

    def get_config(self, query, subject=None):
        if subject is not None and subject not in self.log.state.config and not _flag(query, "defaultToGlobal"):
            raise RegistryError(404, 40408, f"Subject '{subject}' does not have subject-level compatibility configured")
        return {"compatibilityLevel": self.log.state.compatibility_of(subject)}

    def put_config(self, query, body, subject=None):
        mode = body.get("compatibility")
        mode = mode.upper() if isinstance(mode, str) else ""  # null is no mode (str(None) was "NONE")
        return {"compatibility": self._write(lambda state: state.set_config(subject, mode))}

    def delete_subject(self, query, subject):
        return self._write(lambda state: state.delete_subject(subject, _flag(query, "permanent")))

    def delete_version(self, query, subject, version):
        return self._write(lambda state: state.delete_version(subject, version, _flag(query, "permanent")))


ROUTES = [  # (method, pattern, handler name, has body)
    ("GET", r"/subjects", "get_subjects", False),
    ("GET", rf"/subjects/{_SUBJECT}/versions", "get_versions", False),
    ("GET", rf"/subjects/{_SUBJECT}/versions/{_VERSION}", "get_version", False),
    ("GET", rf"/subjects/{_SUBJECT}/versions/{_VERSION}/schema", "get_version_schema", False),
    ("GET", r"/schemas/ids/(?P<schema_id>[^/]+)", "get_schema", False),
    ("GET", r"/schemas/ids/(?P<schema_id>[^/]+)/subjects", "get_schema_subjects", False),
    ("POST", rf"/subjects/{_SUBJECT}/versions", "register", True),
    ("POST", rf"/subjects/{_SUBJECT}", "lookup", True),
    ("POST", rf"/compatibility/subjects/{_SUBJECT}/versions/{_VERSION}", "check", True),
    ("GET", r"/config", "get_config", False),
    ("GET", rf"/config/{_SUBJECT}", "get_config", False),
    ("PUT", r"/config", "put_config", True),
    ("PUT", rf"/config/{_SUBJECT}", "put_config", True),
    ("DELETE", rf"/subjects/{_SUBJECT}", "delete_subject", False),
    ("DELETE", rf"/subjects/{_SUBJECT}/versions/{_VERSION}", "delete_version", False),
]
_COMPILED = [(m, re.compile(p + "/?$"), h, b) for m, p, h, b in ROUTES]
METHODS = sorted({m for m, *_ in ROUTES} | {"HEAD"})
WRITES = {"register", "put_config", "delete_subject", "delete_version"}


def _flag(query: dict, name: str) -> bool:
    return query.get(name, ["false"])[0].lower() == "true"


def _short(value) -> str:
    """A client's value quoted in a message: bounded, control characters escaped."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _subject(raw: str) -> str:
    # http.server decodes the request line as latin-1: undo that, then percent-decode as UTF-8.
    try:
        subject = unquote_to_bytes(raw.encode("latin-1")).decode("utf-8")
    except UnicodeDecodeError:
        raise RegistryError(422, 42208, f"Invalid subject {_short(raw)}: not UTF-8") from None
    if len(subject) > MAX_SUBJECT_CHARS:
        problem = f"longer than {MAX_SUBJECT_CHARS} characters"
    elif any(unicodedata.category(c) == "Cc" for c in subject):
        problem = "control characters are not allowed"
    elif subject in (".", ".."):  # clients normalise such path segments away: unreachable
        problem = "not a usable path segment"
    else:
        return subject
    raise RegistryError(422, 42208, f"Invalid subject {_short(subject)}: {problem}")


def _version(raw: str) -> str | int:
    text = unquote(raw)
    if text in ("latest", "-1"):  # -1 is Confluent's alias of latest
        return "latest"
    if re.fullmatch(r"[0-9]{1,10}", text) and 1 <= int(text) <= MAX_VERSION:
        return int(text)
    raise RegistryError(422, 42202, f"The specified version {_short(text)} is not a valid version id. "
                        "Allowed values are between [1, 2^31-1] and the string \"latest\"")


def _schema_id(raw: str) -> int:
    text = unquote(raw)
    if not re.fullmatch(r"[0-9]{1,10}", text):  # ASCII digits only: int() also takes "١" and " 1"
        raise RegistryError(404, 40403, "Schema not found")
    return int(text)


_PATH_ARGS = {"subject": _subject, "version": _version, "schema_id": _schema_id}


def _json_object(raw: bytes) -> dict:
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise RegistryError(400, 400, "the request body is not JSON (UTF-8)") from None
    if not isinstance(body, dict):
        raise RegistryError(400, 400, "the request body must be a JSON object")
    return body


def _schema_of(body: dict) -> str:
    schema_type = body.get("schemaType")
    if schema_type not in (None, "AVRO"):  # absent or null is Avro, as in Confluent's API
        raise RegistryError(422, 42201, f"Invalid schema: schemaType {_short(schema_type)} is not supported "
                            "(only AVRO)")
    schema = body.get("schema")
    if not isinstance(schema, str) or not schema:
        raise RegistryError(422, 42201, "Invalid schema: the request needs a 'schema' string")
    references = body.get("references") or []
    if not isinstance(references, list) or not all(
            isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("subject"), str)
            and type(r.get("version")) is int for r in references):
        raise RegistryError(422, 42201, "Invalid schema: 'references' must be a list of "
                            "{\"name\": string, \"subject\": string, \"version\": int}")
    return schema


def make_handler(registry: Registry):
    class Handler(BaseHTTPRequestHandler):
        server_version = "vigil-schema-registry"
        # A request line without a version is answered with a status line and headers all the
        # same: HTTP/0.9's bare bodies would make our JSON errors unreadable to every client.
        default_request_version = "HTTP/1.0"
        timeout = 10  # seconds of silence before a connection is dropped: none hangs for ever

        def log_message(self, *args):  # access logs stay out of test output
            pass

        def __getattr__(self, name: str):
            # http.server answers a method without a do_<METHOD> with an HTML 501 page: send every
            # method to _handle, which answers 405 in Confluent's JSON.
            if name.startswith("do_"):
                return lambda: self._handle(name[3:])
            raise AttributeError(name)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            # http.server's own errors (bad request line, too long or too many headers) as JSON.
            # An HTTP version we do not speak (505) is the client's mistake: 400.
            status = 400 if code >= 500 else code
            self.close_connection = True
            self._reply(status, {"error_code": status,
                                 "message": f"HTTP {status} {message or HTTPStatus(code).phrase}"})

        def _reply(self, status: int, payload, headers: dict | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _handle(self, method: str) -> None:
            try:
                raw_body = self._read_body()
                try:
                    url = urlsplit(self.path)
                except ValueError:  # e.g. "http://[": not a request target
                    raise RegistryError(400, 400, f"HTTP 400 malformed path {_short(self.path)}") from None
                query = parse_qs(url.query)
                route_method = "GET" if method == "HEAD" else method
                allowed = set()
                for m, pattern, name, has_body in _COMPILED:
                    match = pattern.match(url.path)
                    if not match:
                        continue
                    if m != route_method:
                        allowed.add(m)
                        continue
                    args = {k: _PATH_ARGS[k](v) for k, v in match.groupdict().items()}
                    if has_body:
                        self._reply(200, registry.call(name, query, _json_object(raw_body), **args))
                    else:
                        self._reply(200, registry.call(name, query, **args))
                    return
                if allowed or route_method not in METHODS:
                    allow = allowed | {"HEAD"} if "GET" in allowed else allowed or set(METHODS)
                    message = f"HTTP 405 Method Not Allowed: {_short(method)}"
                    self._reply(405, {"error_code": 405, "message": message}, {"Allow": ", ".join(sorted(allow))})
                    return
                self._reply(404, {"error_code": 404, "message": f"HTTP 404 Not Found: {_short(url.path)}"})
            except RegistryError as error:
                self._reply(error.http_status, {"error_code": error.error_code, "message": error.message})
            except RecursionError:  # a schema nested deeper than Avro's own code can follow
                self._reply(422, {"error_code": 42201, "message": "Invalid schema: nested too deeply"})
            except (ConnectionError, TimeoutError):
                self.close_connection = True  # the client left or went silent: nobody to answer
            except Exception as error:  # noqa: BLE001 - a bug must answer 500, not kill the thread
                self._reply(500, {"error_code": 50001, "message": f"internal error: {type(error).__name__}"})

        def _read_body(self) -> bytes:
            """The whole body, read before answering on any route: closing a connection with
            request bytes unread resets it, and the client may lose our answer."""
            if "Transfer-Encoding" in self.headers:
                raise RegistryError(411, 411, "send a Content-Length (chunked bodies are not supported)")
            values = {v.strip() for v in self.headers.get_all("Content-Length", [])}
            if not values:
                return b""
            if len(values) > 1 or not re.fullmatch(r"[0-9]+", text := values.pop()):
                raise RegistryError(400, 400, f"invalid Content-Length {_short(self.headers['Content-Length'])}")
            if len(text.lstrip("0")) > 18 or int(text) > MAX_BODY_BYTES:  # int() refuses > 4300 digits
                raise RegistryError(413, 413, f"request body of {_short(text)} bytes exceeds {MAX_BODY_BYTES}")
            length = int(text)
            try:
                raw = self.rfile.read(length)
            except TimeoutError:
                raise RegistryError(408, 408, f"the body did not arrive within {self.timeout} s") from None
            if len(raw) < length:
                raise RegistryError(400, 400, f"the body ended after {len(raw)} of {length} bytes")
            return raw

        def finish(self) -> None:
            super().finish()
            # Read what the client still sends (bounded, briefly) before the socket closes: a close
            # with unread bytes sends a reset that can destroy the answer still in flight, e.g. a
            # 413 to a client still uploading.
            try:
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(1.0)
                remaining = DRAIN_LIMIT_BYTES
                while remaining > 0 and (chunk := self.connection.recv(65536)):
                    remaining -= len(chunk)
            except OSError:
                pass
    return Handler


def serve(bootstrap: str, host: str = "127.0.0.1", port: int = 8085) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(Registry(KafkaLog(bootstrap))))
    threading.Thread(target=server.serve_forever, daemon=True, name="registry-http").start()
    return server


def main() -> None:
    from vigil.kafka_broker import BrokerSettings
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default=BrokerSettings().bootstrap)
    parser.add_argument("--port", type=int, default=8085)
    args = parser.parse_args()
    server = serve(args.bootstrap, port=args.port)
    print(f"schema registry on http://127.0.0.1:{args.port} (state in Kafka topic _schemas)", flush=True)
    threading.Event().wait()
    server.shutdown()


if __name__ == "__main__":
    main()
