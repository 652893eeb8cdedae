"""The registry's state: subjects, versions, global schema ids and compatibility settings.

Pure logic, no I/O. The state is a fold over records of a compacted log (the `_schemas` topic),
so every instance that replays the same log has the same state, and a restart loses nothing.
Commands (register, delete, set config) check the state and return the records to append; the
caller appends them to the log and applies them once read back, in log order.

Record keys and values (JSON, like Confluent's own `_schemas` layout in spirit):
  {"kind": "SCHEMA", "subject": s, "version": v} -> {"id", "schema", "deleted"}  (None: hard-deleted)
  {"kind": "CONFIG", "subject": s or None}       -> {"compatibility"}            (None: removed)
Ids are global and never reused: an identical schema gets the id it already has, a new one
gets max id + 1, also after hard deletes (the maximum is kept, not recomputed).

Two instances may claim the same id, or the same subject version, at the same time. The log
orders the claims and the first one wins: a later record that binds a taken id to another
schema, gives a schema with an id a second id, or puts other content under an existing
version is void when applied. The losing instance sees that its record did not take effect
and registers again against the new state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from vigil.registry import compatibility


class RegistryError(Exception):
    """An error the REST API returns with Confluent's error code and HTTP status."""

    def __init__(self, http_status: int, error_code: int, message: str):
        super().__init__(message)
        self.http_status, self.error_code, self.message = http_status, error_code, message


def subject_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(version) -> RegistryError:
    return RegistryError(404, 40402, f"Version {version} not found.")


def schema_not_found() -> RegistryError:
    return RegistryError(404, 40403, "Schema not found")


def canonical(schema_text: str) -> str:
    """A stable text for equality: parsed (so invalid schemas fail here) and re-serialised."""
    parsed = compatibility.parse(schema_text)
    return json.dumps(parsed.to_json(), sort_keys=True, separators=(",", ":"))


@dataclass
class Version:
    subject: str
    version: int
    schema_id: int
    schema: str          # canonical text
    deleted: bool = False


@dataclass
class RegistryState:
    versions: dict[str, dict[int, Version]] = field(default_factory=dict)
    schemas_by_id: dict[int, str] = field(default_factory=dict)
    ids_by_schema: dict[str, int] = field(default_factory=dict)
    config: dict[str | None, str] = field(default_factory=dict)
    max_id: int = 0

    # --- folding the log -----------------------------------------------------------------------
    def apply(self, key: dict, value: dict | None) -> None:
        if key["kind"] == "CONFIG":
            if value is None:
                self.config.pop(key["subject"], None)
            else:
                self.config[key["subject"]] = value["compatibility"]
            return
        subject, number = key["subject"], key["version"]
        if value is None:  # hard delete
            self.versions.get(subject, {}).pop(number, None)
            if not self.versions.get(subject):
                self.versions.pop(subject, None)
            return
        schema_id, text = value["id"], value["schema"]
        if self._loses_race(subject, number, schema_id, text):
            return
        self.versions.setdefault(subject, {})[number] = Version(
            subject, number, schema_id, value["schema"], value.get("deleted", False))
        self.schemas_by_id.setdefault(schema_id, value["schema"])
        self.ids_by_schema.setdefault(value["schema"], schema_id)
        self.max_id = max(self.max_id, schema_id)

    def _loses_race(self, subject: str, number: int, schema_id: int, text: str) -> bool:
        if self.schemas_by_id.get(schema_id, text) != text:
            return True
        if self.ids_by_schema.get(text, schema_id) != schema_id:
            return True
        existing = self.versions.get(subject, {}).get(number)
        return existing is not None and (existing.schema, existing.schema_id) != (text, schema_id)

    def took_effect(self, key: dict, value: dict | None) -> bool:
        """After applying: is `value` what the state now holds for `key`? (False: a lost race.)"""
        if key["kind"] == "CONFIG":  # last write wins: a config record always takes effect
            return True
        current = self.versions.get(key["subject"], {}).get(key["version"])
        if value is None:
            return current is None
        return current is not None and (current.schema_id, current.schema, current.deleted) == (
            value["id"], value["schema"], value.get("deleted", False))

    # --- queries -------------------------------------------------------------------------------
    def subjects(self, include_deleted: bool = False) -> list[str]:
        return sorted(s for s, vs in self.versions.items()
                      if include_deleted or any(not v.deleted for v in vs.values()))

    def live_versions(self, subject: str, include_deleted: bool = False) -> list[Version]:
        found = [v for _, v in sorted(self.versions.get(subject, {}).items())
                 if include_deleted or not v.deleted]
        if not found:
            raise subject_not_found(subject)
        return found

    def version(self, subject: str, version: str | int, include_deleted: bool = False) -> Version:
        versions = self.live_versions(subject, include_deleted)
        if version in ("latest", -1):
            return versions[-1]
        try:
            number = int(version)
        except (TypeError, ValueError):
            raise RegistryError(422, 42202, f"The specified version '{version}' is not a valid version id. "
                                "Allowed values are between [1, 2^31-1] and the string \"latest\"") from None
        for v in versions:
            if v.version == number:
                return v
        raise version_not_found(number)

    def schema_by_id(self, schema_id: int) -> str:
        if schema_id not in self.schemas_by_id:
            raise schema_not_found()
        return self.schemas_by_id[schema_id]

    def lookup(self, subject: str, schema_text: str) -> Version:
        text = canonical_or_422(schema_text)
        for v in self.live_versions(subject):
            if v.schema == text:
                return v
        raise schema_not_found()

    def compatibility_of(self, subject: str | None) -> str:
        return self.config.get(subject) or self.config.get(None) or compatibility.DEFAULT_MODE

    # --- commands: validate against the state, return the records to append ----------------------
    def register(self, subject: str, schema_text: str) -> tuple[int, list[tuple[dict, dict]]]:
        """(schema id, records to append); no records when this subject already has the schema."""
        text = canonical_or_422(schema_text)
        live = [v for _, v in sorted(self.versions.get(subject, {}).items()) if not v.deleted]
        for v in live:
            if v.schema == text:
                return v.schema_id, []
        mode = self.compatibility_of(subject)
        problems = compatibility.incompatibilities(text, [v.schema for v in live], mode)
        if problems:
            raise RegistryError(409, 409, f"Schema being registered is incompatible with an earlier schema "
                                f"for subject \"{subject}\", details: {problems}")
        schema_id = self.ids_by_schema.get(text, self.max_id + 1)
        number = 1 + max(self.versions.get(subject, {}) or [0])
        key = {"kind": "SCHEMA", "subject": subject, "version": number}
        return schema_id, [(key, {"id": schema_id, "schema": text, "deleted": False})]

    def delete_version(self, subject: str, version: str | int, permanent: bool) -> tuple[int, list]:
        v = self.version(subject, version, include_deleted=permanent)
        key = {"kind": "SCHEMA", "subject": subject, "version": v.version}
        if permanent:
            if not v.deleted:
                raise RegistryError(404, 40407, f"Subject '{subject}' Version {v.version} was not deleted first "
                                    "before being permanently deleted")
            return v.version, [(key, None)]
        return v.version, [(key, {"id": v.schema_id, "schema": v.schema, "deleted": True})]

    def delete_subject(self, subject: str, permanent: bool) -> tuple[list[int], list]:
        versions = self.live_versions(subject, include_deleted=permanent)
        if permanent and any(not v.deleted for v in versions):
            raise RegistryError(404, 40405, f"Subject '{subject}' was not deleted first before being "
                                "permanently deleted")
        records = []
        for v in versions:
            key = {"kind": "SCHEMA", "subject": subject, "version": v.version}
            records.append((key, None) if permanent else
                           (key, {"id": v.schema_id, "schema": v.schema, "deleted": True}))
        return [v.version for v in versions], records

    def set_config(self, subject: str | None, mode: str) -> tuple[str, list]:
        if mode not in compatibility.MODES:
            raise RegistryError(422, 42203, "Invalid compatibility level. Valid values are none, backward, "
                                "forward, full, backward_transitive, forward_transitive, and full_transitive")
        return mode, [({"kind": "CONFIG", "subject": subject}, {"compatibility": mode})]


def canonical_or_422(schema_text: str) -> str:
    try:
        return canonical(schema_text)
    except compatibility.InvalidSchema as exc:
        raise RegistryError(422, 42201, str(exc)[:500]) from None
