"""Benchmark: `vigil backtest` of a rule change over recorded events, wall time and events/s.

Prepares --events generated events (bench/fraud_setup.py: fixed --seed, --rate events per second of
event time, labelled fraud scenarios and chargeback labels, through the real ingest job into fresh
topics, the "*" rules published), then runs `vigil backtest` over the whole recorded range with a
candidate rule set (default: card testing needs 6 small attempts instead of 4, velocity alerts at 8
payments a minute instead of 10: alerts removed and added), as a user would, and prints its output,
its wall time and events per second, and the machine's load (other work on the machine slows it).

    .venv/bin/python bench/backtest.py [--events 1000000] [--rate 20] [--at-once]
    .venv/bin/python bench/backtest.py --prepared /tmp/bench-backtest-XXXX.json   # the same events again

--prepared reuses the topics and labels of an earlier invocation (its path is printed), e.g. to time
the two runs one after the other and --at-once on the same events.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fraud_setup import prepare, start_services  # noqa: E402
from vigil.paths import PROJECT_ROOT, state_dir  # noqa: E402

DEFAULT_RULES = {"*": {"card_testing_min_small": 6, "velocity_1m": 8}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    # 20 events/s of event time, as the quality and state benchmarks: 1M events are 13.9 h, so the
    # hour and day windows turn over and most scenario instances complete inside the range.
    parser.add_argument("--rate", type=float, default=20.0, help="events per second of event time")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--fraud-fraction", type=float, default=0.02)
    parser.add_argument("--candidate-rules", default=json.dumps(DEFAULT_RULES), help="JSON, as in the rules file")
    parser.add_argument("--at-once", action="store_true", help="pass --at-once to vigil backtest")
    parser.add_argument("--prepared", help="a JSON file an earlier invocation wrote: reuse its events")
    parser.add_argument("--out", default=str(state_dir() / "bench-backtest"),
                        help="the backtest's report, chart and logs (default .vigil/bench-backtest, git-ignored)")
    args = parser.parse_args()

    if args.prepared:
        start_services()
        prepared = json.loads(Path(args.prepared).read_text())
        print(f"reusing {prepared['events']:,} events in {prepared['names']['clean']} ({args.prepared})", flush=True)
    else:
        started = time.monotonic()
        prep = prepare(args.events, args.seed, args.rate, args.fraud_fraction, prefix="bench-backtest")
        prepared = {"events": args.events, "seed": args.seed, "rate": args.rate, "names": prep.names,
                    "labels_file": str(prep.labels_file), "bootstrap": prep.bootstrap, "registry": prep.registry}
        path = Path(f"/tmp/{prep.names['prefix']}.json")
        path.write_text(json.dumps(prepared, indent=2))
        print(f"prepared {args.events:,} events (seed {args.seed}, {args.rate:g} events/s of event time) in "
              f"{time.monotonic() - started:.0f}s (ingest {prep.ingest_s:.0f}s); reuse with --prepared {path}",
              flush=True)

    names = prepared["names"]
    rules = Path(tempfile.mkstemp(suffix=".json", prefix="bench-backtest-rules-")[1])
    rules.write_text(args.candidate_rules)
    out = Path(args.out)
    command = [sys.executable, "-m", "vigil.cli", "backtest", "--candidate-rules", str(rules),
               "--scenario-labels", prepared["labels_file"], "--clean-topic", names["clean"],
               "--rules-topic", names["rules"], "--chargebacks-topic", names["chargebacks"],
               "--bootstrap", prepared["bootstrap"], "--schema-registry-url", prepared["registry"], "--out", str(out),
               *(["--at-once"] if args.at_once else [])]
    print("$ vigil " + " ".join(command[3:]), flush=True)
    load_before = os.getloadavg()
    started = time.monotonic()
    result = subprocess.run(command, cwd=PROJECT_ROOT, text=True, capture_output=True)
    wall_s = time.monotonic() - started
    load_after = os.getloadavg()
    print(result.stderr + result.stdout, flush=True)   # progress (stderr), then the report
    if result.returncode != 0:
        raise SystemExit(f"vigil backtest failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    report = json.loads((out / "report.json").read_text())
    events = report["range"]["events"]
    print(f"vigil backtest: {events:,} events, wall time {wall_s:.0f}s ({events / wall_s:,.0f} events/s), "
          f"runs {report['runs']} ({'at once' if args.at_once else 'one after the other'}), "
          f"{os.cpu_count()} cores; load average before {load_before[0]:.1f}, after {load_after[0]:.1f} "
          f"(1 min), {load_after[2]:.1f} (15 min)")
    print(f"report, chart and job logs in {out}")


if __name__ == "__main__":
    main()
