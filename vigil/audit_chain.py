"""The audit trail's hash chain (SOX-style: who changed what, when, and proof nothing was altered).

Each entry names an actor, an action, a target, the state before and after, and a time; it
carries its sequence number, the hash of the entry before it, and its own hash, a SHA-256 over
the previous hash and the entry's canonical JSON. Changing any entry changes its hash; removing,
adding or moving one breaks the link of the entry after it (and the sequence numbers). Only
truncation of the oldest entries, or of the newest ones after the last check, leaves a valid
chain: anchors (the newest sequence number and hash, written periodically to a store other than
the log) catch those.

Pure logic: vigil/audit_log.py reads and writes the log (a Kafka topic) and the anchors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

GENESIS = "0" * 64
FIELDS = ("seq", "at", "actor", "action", "target", "before", "after", "prev_hash")


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    at: str


def canonical(entry: dict) -> bytes:
    """The bytes an entry's hash covers: its fields but the hash, as sorted, compact UTF-8 JSON.

    >>> canonical({"seq": 1, "actor": "é", "hash": "x"})
    b'{"actor":"\\xc3\\xa9","seq":1}'
    """
    body = {k: v for k, v in entry.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def entry_hash(entry: dict) -> str:
    return hashlib.sha256(str(entry.get("prev_hash", "")).encode() + b"\n" + canonical(entry)).hexdigest()


def _shape_problem(entry) -> str | None:
    """Why a log record cannot be an entry (a missing or wrongly typed field), or None."""
    if not isinstance(entry, dict):
        return "not an object"
    missing = [name for name in (*FIELDS, "hash") if name not in entry]
    if missing:
        return f"missing {', '.join(missing)}"
    if type(entry["seq"]) is not int or not all(isinstance(entry[k], str) for k in ("prev_hash", "hash", "at")):
        return "seq must be an integer, at, prev_hash and hash text"
    return None


def next_entry(previous: dict | None, actor: str, action: str, target: str, before=None, after=None,
               at: datetime | None = None) -> dict:
    """The entry that follows `previous` (None: the first of the log)."""
    entry = {
        "seq": (previous["seq"] + 1) if previous else 1,
        "at": (at or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="milliseconds"),
        "actor": actor, "action": action, "target": target, "before": before, "after": after,
        "prev_hash": previous["hash"] if previous else GENESIS,
    }
    entry["hash"] = entry_hash(entry)
    return entry


def verify(entries: list[dict], anchors: list[Anchor] = ()) -> list[str]:
    """What is wrong with the log `entries` (in log order), checked against `anchors`; [] if
    nothing. Each problem names the entry (sequence number, position in the log) and what its
    evidence shows: modified, deleted, inserted or moved entries, a truncated log."""
    problems: list[str] = []
    previous: dict | None = None
    for position, entry in enumerate(entries):
        where = f"entry #{position} (seq {entry.get('seq')!r})" if isinstance(entry, dict) else f"entry #{position}"
        shape = _shape_problem(entry)
        if shape:
            problems.append(f"{where}: not an audit entry ({shape})")
            continue                                 # the chain is checked across it
        if entry_hash(entry) != entry["hash"]:
            problems.append(f"{where}: modified (its hash does not match its content)")
        if previous is None:
            if entry["seq"] != 1 or entry["prev_hash"] != GENESIS:
                problems.append(f"{where}: the log does not start at the first entry (seq 1): "
                                "entries before it were removed")
        else:
            if entry["prev_hash"] != previous["hash"]:
                problems.append(f"{where}: does not follow the entry before it (seq {previous['seq']}): "
                                "an entry was deleted, inserted or moved here")
            if entry["seq"] != previous["seq"] + 1:
                kind = "missing" if entry["seq"] > previous["seq"] + 1 else "out of order or repeated"
                problems.append(f"{where}: sequence {kind} after seq {previous['seq']}")
        previous = entry
    valid = [e for e in entries if _shape_problem(e) is None]
    by_seq = {e["seq"]: e for e in valid}
    newest = max((e["seq"] for e in valid), default=0)
    for anchor in anchors:
        found = by_seq.get(anchor.seq)
        if found is None:
            cut = "newest" if anchor.seq > newest else "oldest"
            problems.append(f"anchor of {anchor.at} (seq {anchor.seq}): the log no longer holds that entry "
                            f"(the {cut} entries were removed)")
        elif found.get("hash") != anchor.hash:
            problems.append(f"anchor of {anchor.at} (seq {anchor.seq}): the log's entry has another hash "
                            "(the log was rewritten)")
    return problems
