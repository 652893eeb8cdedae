"""The registry's HTTP server: the part of the Confluent Schema Registry REST API that clients
and Flink's avro-confluent format use. Loopback only by default; state in the `_schemas` log.

    python -m vigil.registry.server [--port 8085] [--bootstrap 127.0.0.1:9092]
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

from vigil.registry import compatibility
from vigil.registry.kafka_log import KafkaLog
from vigil.registry.store import RegistryError, canonical_or_422

MAX_BODY_BYTES = 1024 * 1024
DRAIN_LIMIT_BYTES = 16 * 1024 * 1024  # beyond this an oversized request is just cut off
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
        return {"schema": self.log.state.schema_by_id(_int(schema_id))}

    def get_schema_subjects(self, query, schema_id):
        schema = self.log.state.schema_by_id(_int(schema_id))
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
        mode = str(body.get("compatibility", "")).upper()
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


def _flag(query: dict, name: str) -> bool:
    return query.get(name, ["false"])[0].lower() == "true"


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RegistryError(404, 40403, "Schema not found") from None


def _schema_of(body: dict) -> str:
    if body.get("schemaType", "AVRO") != "AVRO":
        raise RegistryError(422, 42201, f"Invalid schema: schemaType {body.get('schemaType')} is not supported")
    schema = body.get("schema")
    if not isinstance(schema, str) or not schema:
        raise RegistryError(422, 42201, "Invalid schema: the request needs a 'schema' string")
    return schema


def make_handler(registry: Registry):
    class Handler(BaseHTTPRequestHandler):
        server_version = "vigil-schema-registry"

        def log_message(self, *args):  # access logs stay out of test output
            pass

        def _reply(self, status: int, payload) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            try:
                for route_method, pattern, name, has_body in _COMPILED:
                    match = pattern.match(url.path)
                    if route_method == method and match:
                        args = {k: unquote(v) for k, v in match.groupdict().items()}
                        if has_body:
                            self._reply(200, getattr(registry, name)(query, self._body(), **args))
                        else:
                            self._reply(200, getattr(registry, name)(query, **args))
                        return
                self._reply(404, {"error_code": 404, "message": f"HTTP 404 Not Found: {method} {url.path}"})
            except RegistryError as error:
                self._reply(error.http_status, {"error_code": error.error_code, "message": error.message})
            except Exception as error:  # noqa: BLE001 - a bug must answer 500, not kill the thread
                self._reply(500, {"error_code": 50001, "message": f"internal error: {type(error).__name__}"})

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                # Read what the client is sending (up to a bound) so that it can read our answer;
                # a client still writing into a closed socket only sees a broken pipe.
                self.close_connection = True
                remaining = min(length, DRAIN_LIMIT_BYTES)
                while remaining > 0 and (chunk := self.rfile.read(min(remaining, 65536))):
                    remaining -= len(chunk)
                raise RegistryError(413, 41301, f"request body of {length} bytes exceeds {MAX_BODY_BYTES}")
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise RegistryError(422, 42201, "Invalid schema: the request body is not JSON") from None
            if not isinstance(body, dict):
                raise RegistryError(422, 42201, "Invalid schema: the request body must be a JSON object")
            return body

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

        def do_PUT(self):
            self._handle("PUT")

        def do_DELETE(self):
            self._handle("DELETE")
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
