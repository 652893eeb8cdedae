"""A small client of the Confluent Schema Registry REST API (ours, Confluent's or Apicurio's
ccompat endpoint), standard library only so that Flink's Python workers need nothing more.

Errors the registry answers (unknown subject, incompatible schema, ...) raise `RegistryResponseError`
with Confluent's error code; a registry that cannot be reached raises `RegistryUnavailable` after
a few retries. Callers must keep the two apart: an unknown schema id is bad input, an unreachable
registry is an outage (the job must fail and restart, never route valid events to the DLQ).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryResponseError(Exception):
    def __init__(self, status: int, error_code: int, message: str):
        super().__init__(f"{status} (error {error_code}): {message}")
        self.status = status
        self.error_code = error_code
        self.message = message


class RegistryUnavailable(ConnectionError):
    pass


class RegistryClient:
    def __init__(self, url: str, timeout_s: float = 5.0, attempts: int = 4):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.attempts = attempts

    # --- the REST calls ---------------------------------------------------------------------------
    def register(self, subject: str, schema: dict | str) -> int:
        return self._call("POST", f"/subjects/{_q(subject)}/versions", {"schema": _text(schema)})["id"]

    def schema_text(self, schema_id: int) -> str:
        return self._call("GET", f"/schemas/ids/{int(schema_id)}")["schema"]

    def subjects(self) -> list[str]:
        return self._call("GET", "/subjects")

    def versions(self, subject: str) -> list[int]:
        return self._call("GET", f"/subjects/{_q(subject)}/versions")

    def version(self, subject: str, version: int | str = "latest") -> dict:
        return self._call("GET", f"/subjects/{_q(subject)}/versions/{version}")

    def check(self, subject: str, schema: dict | str, version: int | str = "latest") -> dict:
        return self._call("POST", f"/compatibility/subjects/{_q(subject)}/versions/{version}?verbose=true",
                          {"schema": _text(schema)})

    def get_config(self, subject: str | None = None) -> str:
        path = "/config" if subject is None else f"/config/{_q(subject)}?defaultToGlobal=true"
        return self._call("GET", path)["compatibilityLevel"]

    def set_config(self, mode: str, subject: str | None = None) -> str:
        path = "/config" if subject is None else f"/config/{_q(subject)}"
        return self._call("PUT", path, {"compatibility": mode.upper()})["compatibility"]

    # --- transport ----------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE})
        delay = 0.2
        for attempt in range(1, self.attempts + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as error:
                payload = _json_or_none(error.read())
                if error.code >= 500 and attempt < self.attempts:
                    time.sleep(delay)
                    delay *= 2
                    continue
                if isinstance(payload, dict):
                    raise RegistryResponseError(error.code, payload.get("error_code", error.code),
                                                payload.get("message", "")) from None
                raise RegistryResponseError(error.code, error.code, str(error)) from None
            except (urllib.error.URLError, OSError) as error:
                if attempt == self.attempts:
                    raise RegistryUnavailable(f"schema registry {self.url} unreachable: {error}") from None
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")


def _q(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")


def _text(schema: dict | str) -> str:
    return schema if isinstance(schema, str) else json.dumps(schema)


def _json_or_none(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return None
