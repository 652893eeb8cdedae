"""`RegistrySchemaCatalog`: vigil.serde's SchemaCatalog backed by a schema registry.

Writer schemas are fetched by id (`GET /schemas/ids/{id}`) the first time a record carries that id
and kept for the life of the process (ids are immutable). The reader schema is the job's own,
from a local .avsc file: each record is resolved from its writer schema to it, so a job keeps
running while producers move from v1 to v2 (and reads v2's fields if its reader schema has them).

- unknown id (registry answers 404): `KeyError`, which serde turns into the DLQ reason
  `unknown_schema_id`; remembered for `negative_ttl_s` so hostile input cannot flood the registry.
- registry unreachable: `RegistryUnavailable` propagates (an answer without a schema:
  `serde.CatalogUnavailable`). The job fails and restarts from its checkpoint: valid events are
  never sent to the DLQ because of an outage.
- a schema that is not Avro (Protobuf or JSON Schema in a Confluent registry): `serde.UnreadableSchema`,
  which serde turns into `schema_mismatch`.
"""

from __future__ import annotations

import json
import time
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from vigil.registry.client import RegistryClient, RegistryResponseError
from vigil import serde
from vigil.serde import load_schema

SUBJECT_NOT_FOUND_CODES = (40401, 40403)
MAX_NEGATIVE_ENTRIES = 10_000


class RegistrySchemaCatalog:
    def __init__(self, url: str, reader_file: str = "event-v2.avsc", negative_ttl_s: float = 30.0):
        self.client = RegistryClient(url)
        self._reader_raw = load_schema(reader_file)
        self._reader = fastavro.parse_schema(self._reader_raw)
        self._reader_form = to_parsing_canonical_form(self._reader_raw)
        self._parsed: dict[int, Any] = {}
        self._unknown_until: dict[int, float] = {}
        self.negative_ttl_s = negative_ttl_s

    # --- SchemaCatalog ---------------------------------------------------------------------------
    def writer_schema(self, schema_id: int) -> Any:
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            parsed = self._fetch(schema_id)
        return parsed

    def reader_schema(self) -> Any:
        return self._reader

    def id_of_reader(self) -> int:
        # Ids belong to subjects: producers encode with the id `register` returned for theirs.
        raise LookupError("pass the schema id that register() returned for your subject")

    # --- producers -------------------------------------------------------------------------------
    def register(self, subject: str, schema: dict) -> int:
        """Register `schema` under `subject` (idempotent) and return its id, ready to encode with."""
        schema_id = self.client.register(subject, schema)
        self._parsed[schema_id] = self._same_as_reader(schema) or fastavro.parse_schema(schema)
        return schema_id

    # --- internals ---------------------------------------------------------------------------------
    def _fetch(self, schema_id: int) -> Any:
        if self._unknown_until.get(schema_id, 0.0) > time.monotonic():
            raise KeyError(schema_id)
        try:
            text = self.client.schema_text(schema_id)
        except RegistryResponseError as error:
            if error.status == 404 and error.error_code in SUBJECT_NOT_FOUND_CODES:
                if len(self._unknown_until) >= MAX_NEGATIVE_ENTRIES:
                    self._unknown_until.clear()
                self._unknown_until[schema_id] = time.monotonic() + self.negative_ttl_s
                raise KeyError(schema_id) from None
            raise
        except (KeyError, TypeError, ValueError) as error:  # a 200 without a schema string: not the record's fault
            raise serde.CatalogUnavailable(f"the registry answered schema id {schema_id} without a schema "
                                           f"({type(error).__name__})") from error
        try:
            raw = json.loads(text)
            parsed = self._same_as_reader(raw) or fastavro.parse_schema(raw)
        except Exception as error:  # noqa: BLE001 - e.g. a Protobuf or JSON schema in a Confluent registry
            raise serde.UnreadableSchema(f"schema id {schema_id} is not an Avro schema "
                                         f"({type(error).__name__}: {str(error)[:100]})") from None
        self._parsed[schema_id] = parsed
        return parsed

    def _same_as_reader(self, raw: dict) -> Any | None:
        """The reader's own object when `raw` writes the same bytes: serde then skips resolution."""
        try:
            return self._reader if to_parsing_canonical_form(raw) == self._reader_form else None
        except Exception:  # noqa: BLE001 - a schema fastavro cannot canonicalise is simply not the reader
            return None


def read_values(bootstrap: str, url: str, topic: str) -> list[dict]:
    """Every committed record of an Avro (wire format) topic, decoded (tools, tests, benchmarks)."""
    from vigil import kafka_io
    decode = value_decoder(url)
    return [decode(m.value()) for m in kafka_io.read(bootstrap, topic, idle_timeout_s=3)]


def value_decoder(url: str):
    """payload -> dict, each record with its own writer schema from the registry (tools, tests)."""
    catalog = RegistrySchemaCatalog(url)
    return lambda payload: serde.decode_as_written(payload, catalog)
