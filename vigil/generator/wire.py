"""How the generator writes events in Confluent wire format: which schema ids it uses.

`EventWriter.offline()` uses the offline catalog's ids (unit tests, no registry). `registered()`
registers the schemas it writes in the schema registry first, as every real producer must, and
writes the ids the registry gave:
- the event schema v1 (and v2 when v2 events are asked for) under `<topic>-value`;
- the foreign "legacy" schema under its own subject, standing for another team's topic whose
  records land in events.raw by mistake (ingest must reject them as `schema_mismatch`);
- `UNKNOWN_SCHEMA_ID`, never allocated by a registry that counts from 1, for `unknown_schema_id`.
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil import serde

UNKNOWN_SCHEMA_ID = 2_000_000_000
FOREIGN_SUBJECT = "legacy.orders-value"


@dataclass(frozen=True)
class EventWriter:
    catalog: serde.SchemaCatalog
    v1_id: int
    v2_id: int | None
    foreign_id: int
    unknown_id: int = UNKNOWN_SCHEMA_ID

    def event(self, event: dict) -> bytes:
        """v2 when the event says so (schema_version 2), else v1."""
        if event.get("schema_version") == 2:
            if self.v2_id is None:
                raise ValueError("this writer has no v2 schema id: register v2 first")
            return serde.encode(event, self.v2_id, self.catalog)
        return serde.encode(event, self.v1_id, self.catalog)

    def foreign(self, record: dict) -> bytes:
        return serde.encode(record, self.foreign_id, self.catalog)

    @classmethod
    def offline(cls) -> "EventWriter":
        return cls(serde.default_catalog(), v1_id=1, v2_id=2, foreign_id=9001)

    @classmethod
    def registered(cls, registry_url: str, topic: str, with_v2: bool) -> "EventWriter":
        from vigil.registry.catalog import RegistrySchemaCatalog
        catalog = RegistrySchemaCatalog(registry_url)
        subject = f"{topic}-value"
        v1_id = catalog.register(subject, serde.load_schema("event-v1.avsc"))
        v2_id = catalog.register(subject, serde.load_schema("event-v2.avsc")) if with_v2 else None
        foreign_id = catalog.register(FOREIGN_SUBJECT, serde.load_schema("foreign/event-legacy-typed.avsc"))
        return cls(catalog, v1_id, v2_id, foreign_id)
