"""Counting the hostile cases tried at each door (issue 15, section 4: "record the number of cases
tried per door"). Each door's test module counts its cases by kind; at the end of the module the
counts are printed (`-s`) and merged into `<state>/test-reports/hostile-doors.json`, which
docs/benchmarks.md quotes."""

from __future__ import annotations

import collections
import fcntl
import json
import time

from vigil.paths import state_dir, sub


class Tally:
    def __init__(self, door: str):
        self.door = door
        self.kinds: collections.Counter[str] = collections.Counter()

    def add(self, kind: str, n: int = 1) -> None:
        self.kinds[kind] += n

    @property
    def total(self) -> int:
        return sum(self.kinds.values())

    def report(self) -> str:
        parts = ", ".join(f"{kind} {n}" for kind, n in sorted(self.kinds.items()))
        return f"hostile input at {self.door}: {self.total} cases ({parts})"

    def save(self) -> None:
        path = sub(state_dir(), "test-reports") / "hostile-doors.json"
        with open(path.with_suffix(".lock"), "a") as lock:    # two test workers may save at once
            fcntl.flock(lock, fcntl.LOCK_EX)
            known = json.loads(path.read_text()) if path.exists() else {}
            known[self.door] = {"cases": self.total, "by_kind": dict(self.kinds),
                                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            path.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
        print("\n" + self.report())
