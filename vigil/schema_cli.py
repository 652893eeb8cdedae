"""`vigil schema ...`: the platform team's view of the schema registry.

  vigil schema list [--subject S]                 subjects, their versions and global ids
  vigil schema register --subject S FILE.avsc     register (idempotent); prints the id
  vigil schema check --subject S FILE.avsc        would it be accepted? names the fields at fault
  vigil schema config [--subject S] [--set MODE]  read or set the compatibility mode

Exit codes: 0 done / compatible, 1 refused / incompatible, 2 bad usage or unreadable file,
3 registry unreachable. `--url` (default: VIGIL_SCHEMA_REGISTRY_URL, else the local registry).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys

from vigil import audit_log
from vigil.registry.client import RegistryClient, RegistryResponseError, RegistryUnavailable

MODES = ("BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE")


def add_parser(sub, default_url: str) -> None:
    p = sub.add_parser("schema", help="schema registry: list, register, check, config")
    actions = p.add_subparsers(dest="action", required=True)
    for name, text in (("list", "subjects, versions and ids"), ("register", "register a schema"),
                       ("check", "test a schema against a subject"), ("config", "compatibility mode")):
        a = actions.add_parser(name, help=text)
        if name in ("register", "check"):
            a.add_argument("file", help="an .avsc file")
            a.add_argument("--subject", required=True, help="e.g. events.raw-value (TopicNameStrategy: <topic>-value)")
        else:
            a.add_argument("--subject", help="one subject (default: all / the global setting)")
        if name == "check":
            a.add_argument("--version", default="latest", help="check against this version (default latest)")
        if name == "config":
            a.add_argument("--set", dest="mode", type=str.upper, choices=MODES, help="the mode to set")
        a.add_argument("--url", default=default_url, help=f"registry URL (default {default_url})")
        a.set_defaults(func=run)


def run(args, out=None) -> int:
    out = out or sys.stdout
    client = RegistryClient(args.url, attempts=2)
    try:
        if args.action == "list":
            return _list(client, args.subject, out)
        if args.action == "config":
            if args.mode:
                before = _config_or_none(client, args.subject)
                after = client.set_config(args.mode, args.subject)
                print(f"{args.subject or 'global'}: compatibility set to {after}", file=out)
                audit_log.record("schema.compatibility", args.subject or "global", before=before, after=after)
            else:
                print(f"{args.subject or 'global'}: {client.get_config(args.subject)}", file=out)
            return 0
        schema = read_schema_file(args.file)
        if args.action == "register":
            schema_id = client.register(args.subject, schema)
            print(f"{args.subject}: registered, id {schema_id}", file=out)
            audit_log.record("schema.register", args.subject,
                             after={"id": schema_id, "sha256": hashlib.sha256(schema.encode()).hexdigest()})
            return 0
        return _check(client, args.subject, schema, args.version, out)
    except BadFile as error:
        print(f"vigil schema: {error}", file=sys.stderr)
        return 2
    except RegistryUnavailable as error:
        print(f"vigil schema: {error}", file=sys.stderr)
        return 3
    except RegistryResponseError as error:
        print(f"vigil schema {args.action}: refused, {error.status} (error {error.error_code}): {error.message}",
              file=sys.stderr)
        return 1


def _config_or_none(client: RegistryClient, subject: str | None) -> str | None:
    """The compatibility before a change (None when the subject has none of its own)."""
    try:
        return client.get_config(subject)
    except RegistryResponseError:
        return None


MAX_SCHEMA_BYTES = 1024 * 1024  # the registry refuses larger requests; real schemas have a few KiB


class BadFile(Exception):
    """A schema file that cannot be used; its message is one line."""


def read_schema_file(path: str) -> str:
    """The schema text of the file at `path`, or BadFile."""
    try:
        if stat.S_ISFIFO(os.stat(path).st_mode):   # open() would wait for a writer forever
            raise BadFile(f"cannot read {_shown(path)}: a FIFO, not a schema file")
        with open(path, "rb") as file:
            data = file.read(MAX_SCHEMA_BYTES + 1)  # no further: /dev/zero or a 10 GB log is no schema
    except (OSError, ValueError) as error:  # ValueError: a NUL in the path
        reason = getattr(error, "strerror", None) or str(error)
        raise BadFile(f"cannot read {_shown(path)}: {reason}") from None
    return parse_schema(data, path)


def parse_schema(data: bytes, name: str = "the file") -> str:
    """The schema text in `data` (a file's bytes), or BadFile with a one-line reason. Pure: no
    file, no registry. Only the shape is checked here; whether the types are valid Avro is for
    the registry to say (its 42201, exit 1), as it may be Confluent's and not ours.

    >>> parse_schema(b'{"type": "string"}')
    '{"type": "string"}'
    >>> try:
    ...     parse_schema(b'[1, 2]')
    ... except BadFile as error:
    ...     print(error)
    the file is JSON but not an Avro schema (a type name, an object with a "type", or a list of those)
    """
    shown = _shown(name)
    if len(data) > MAX_SCHEMA_BYTES:
        raise BadFile(f"{shown} is larger than {MAX_SCHEMA_BYTES // 1024} KiB: not a schema file")
    try:
        text = data.decode("utf-8-sig")  # a BOM, as some editors write, is fine
    except UnicodeDecodeError as error:
        raise BadFile(f"{shown} is not UTF-8 text (invalid byte at offset {error.start})") from None
    try:
        schema = json.loads(text)
    except RecursionError:
        raise BadFile(f"{shown} is not JSON: nested too deeply") from None
    except ValueError as error:  # one line: "Expecting value: line 1 column 1 (char 0)"
        raise BadFile(f"{shown} is not JSON: {error}") from None
    if not (_avro_shaped(schema) or isinstance(schema, list) and schema and all(map(_avro_shaped, schema))):
        raise BadFile(f"{shown} is JSON but not an Avro schema (a type name, an object with a \"type\", "
                      "or a list of those)")
    return text


def _avro_shaped(value) -> bool:
    return isinstance(value, str) and value != "" or isinstance(value, dict) and "type" in value


def _shown(path: str) -> str:
    """A path as one printable line (repr when it holds newlines or other control characters)."""
    return path if path.isprintable() else repr(path)


def _list(client: RegistryClient, subject: str | None, out) -> int:
    subjects = [subject] if subject else client.subjects()
    if not subjects:
        print("no subjects registered", file=out)
    for name in subjects:
        mode = client.get_config(name)
        print(f"{name}  ({mode})", file=out)
        for version in client.versions(name):
            entry = client.version(name, version)
            print(f"  version {version}: id {entry['id']}, {_fields(entry['schema'])}", file=out)
    return 0


def _fields(schema_text: str) -> str:
    """"3 fields" for a record, else the schema itself, shortened (a registry also holds
    "string", unions, or another registry's Protobuf)."""
    try:
        schema = json.loads(schema_text)
    except ValueError:
        return schema_text[:60]
    if isinstance(schema, dict) and isinstance(schema.get("fields"), list):
        return f"{len(schema['fields'])} fields"
    return json.dumps(schema)[:60]


def _check(client: RegistryClient, subject: str, schema: str, version: str, out) -> int:
    try:
        result = client.check(subject, schema, version)
    except RegistryResponseError as error:
        if error.error_code == 40401:  # nothing to be compatible with yet
            print(f"{subject}: no versions yet, the schema would be version 1", file=out)
            return 0
        raise
    if result.get("is_compatible"):
        print(f"{subject}: compatible with version {version} ({client.get_config(subject)})", file=out)
        return 0
    print(f"{subject}: NOT compatible ({client.get_config(subject)}):", file=out)
    for message in result.get("messages", []):
        print(f"  - {message}", file=out)
    return 1
