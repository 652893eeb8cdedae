"""`vigil schema ...`: the platform team's view of the schema registry.

  vigil schema list [--subject S]                 subjects, their versions and global ids
  vigil schema register --subject S FILE.avsc     register (idempotent); prints the id
  vigil schema check --subject S FILE.avsc        would it be accepted? names the fields at fault
  vigil schema config [--subject S] [--set MODE]  read or set the compatibility mode

Exit codes: 0 done / compatible, 1 refused / incompatible, 2 bad usage or unreadable file,
3 registry unreachable. `--url` (default: VIGIL_SCHEMA_REGISTRY_URL, else the local registry).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
                print(f"{args.subject or 'global'}: compatibility set to {client.set_config(args.mode, args.subject)}", file=out)
            else:
                print(f"{args.subject or 'global'}: {client.get_config(args.subject)}", file=out)
            return 0
        schema = _read_schema(args.file)
        if args.action == "register":
            print(f"{args.subject}: registered, id {client.register(args.subject, schema)}", file=out)
            return 0
        return _check(client, args.subject, schema, args.version, out)
    except _BadFile as error:
        print(f"vigil schema: {error}", file=sys.stderr)
        return 2
    except RegistryUnavailable as error:
        print(f"vigil schema: {error}", file=sys.stderr)
        return 3
    except RegistryResponseError as error:
        print(f"vigil schema {args.action}: refused, {error.status} (error {error.error_code}): {error.message}",
              file=sys.stderr)
        return 1


class _BadFile(Exception):
    pass


def _read_schema(path: str) -> str:
    try:
        text = Path(path).read_text()
        json.loads(text)
    except OSError as error:
        raise _BadFile(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise _BadFile(f"{path} is not JSON: {error}") from None
    return text


def _list(client: RegistryClient, subject: str | None, out) -> int:
    subjects = [subject] if subject else client.subjects()
    if not subjects:
        print("no subjects registered", file=out)
    for name in subjects:
        mode = client.get_config(name)
        print(f"{name}  ({mode})", file=out)
        for version in client.versions(name):
            entry = client.version(name, version)
            fields = [f["name"] for f in json.loads(entry["schema"]).get("fields", [])]
            print(f"  version {version}: id {entry['id']}, {len(fields)} fields", file=out)
    return 0


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
