"""Benchmark: does the fraud job's state stay bounded? State size against events processed.

Runs the fraud job (unbounded, heap state, full checkpoints to a temporary directory) over
--events generated events (event time at --rate events/s, so event-time windows turn over as in
production) and samples, every few seconds, the events the job has committed (its consumer
group's offsets, committed on each checkpoint) and the size of its newest checkpoint (the whole
state: heap snapshots are full). Prints a row each time another tenth of the events is done.

    .venv/bin/python bench/fraud_state.py [--events 200000] [--rate 20] [--clean-topic EXISTING]
                                          [--history-ttl '3 min'] [--baseline-rev REV]

--baseline-rev runs the same measurement a second time, on the same events, with the fraud job of
git revision REV (exported with `git archive`): a change's state size against the code before it.

Flink's state TTL (the job's --history-ttl, 30 days by default) counts processing time: a run that
replays days of event time in minutes never reaches the default TTL, so it shows the growth with
new keys; --history-ttl shorter than the run shows where TTL-bounded state levels off.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fraud_setup import options_known_to, prepare, start_services  # noqa: E402
from bench.memory import tree_rss_bytes  # noqa: E402
from bench.source_tree import exported_tree, short_rev  # noqa: E402
from jobs import fraud_config  # noqa: E402
from vigil import fraud_rules  # noqa: E402
from vigil import kafka_io, procs, topics  # noqa: E402
from vigil.paths import PROJECT_ROOT  # noqa: E402
from vigil.rules_cli import publish  # noqa: E402


def committed(bootstrap: str, group: str, topic: str, known: dict[int, int]) -> int:
    """The job's committed offsets, summed. A partition the broker answers without an offset (an
    error under load) keeps its last known value: a partial answer must not read as the job going
    backwards."""
    from confluent_kafka import KafkaException
    try:
        for partition, offset in kafka_io.committed_offsets(bootstrap, group, topic).items():
            known[partition] = max(known.get(partition, 0), offset)
    except KafkaException as error:  # e.g. NOT_COORDINATOR while the broker is loaded: ask again later
        print(f"  (committed offsets not read this time: {error})", file=sys.stderr)
    return sum(known.values())


def newest_checkpoint_bytes(root: Path) -> int:
    # Completed checkpoints only (a checkpoint's _metadata is written last).
    checkpoints = sorted((p for p in root.glob("*/chk-*") if (p / "_metadata").exists()),
                         key=lambda p: int(p.name.split("-")[1]))
    if not checkpoints:
        return 0
    return sum(f.stat().st_size for f in checkpoints[-1].rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=20.0, help="events per second of event time")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--clean-topic", help="reuse a filled events.clean topic (e.g. a quality run's)")
    parser.add_argument("--history-ttl", help="the job's --history-ttl (table.exec.state.ttl), e.g. '3 min': "
                        "the TTL counts processing time, so only a short one expires within a run")
    parser.add_argument("--baseline-rev", help="also measure the job of this git revision on the same events")
    args = parser.parse_args()
    if args.clean_topic:
        bootstrap, _ = start_services()
        names = {**topics.create_fraud_topics(bootstrap, f"state-{int(time.time())}"), "clean": args.clean_topic}
        publish(bootstrap, names["rules"], fraud_rules.default_message(0))
        total = sum(kafka_io.end_offsets(bootstrap, args.clean_topic).values())  # offsets, markers included
    else:
        prepared = prepare(args.events, args.seed, args.rate, fraud_fraction=0.02, prefix="state")
        bootstrap, names, total = prepared.bootstrap, prepared.names, prepared.events
    print(f"{total:,} events in {names['clean']}")
    measure("working tree", PROJECT_ROOT, bootstrap, names, total, args)
    if args.baseline_rev:
        # Same events, the job of REV, outputs and consumer group of its own.
        baseline = {**topics.create_fraud_topics(bootstrap, f"{names['prefix']}-base"), "clean": names["clean"]}
        publish(bootstrap, baseline["rules"], fraud_rules.default_message(0))
        measure(f"{args.baseline_rev} ({short_rev(args.baseline_rev)})", exported_tree(args.baseline_rev, "vigil-state"),
                bootstrap, baseline, total, args)


def measure(label: str, tree: Path, bootstrap: str, names: dict, total: int, args) -> None:
    """Run the fraud job of `tree` over names['clean'] and print its state size as it goes."""
    work = Path(tempfile.mkdtemp(prefix="bench-state-"))
    cmd = fraud_config.command(names, "--checkpoint-dir", (work / "checkpoints").as_uri(),
                               "--model-snapshot-dir", str(work / "models"),
                               *(("--history-ttl", args.history_ttl) if args.history_ttl else ()))
    cmd = cmd[:3] + options_known_to(tree, cmd[3:])
    log = open(work / "job.log", "w")
    job = subprocess.Popen(cmd, cwd=tree, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    print(f"\n{label}: job log {log.name}")
    print(f"{'offsets done':>12} {'state (newest checkpoint)':>26} {'job RSS':>9} {'elapsed':>8}")
    started, next_row, done, unchanged, known = time.monotonic(), 0.1, 0, 0, {}
    try:
        # Ends when every offset is committed or nothing moved for 2 minutes (the last transaction
        # markers of a topic written with transactions are never "consumed"; offsets move once per
        # checkpoint, and on a loaded machine a checkpoint of ~1 GB of heap state took 35 s).
        while done < total and unchanged < 24 and job.poll() is None and time.monotonic() - started < 7200:
            time.sleep(5)
            previous, done = done, committed(bootstrap, names["prefix"], names["clean"], known)
            unchanged = unchanged + 1 if done == previous and done > 0 else 0
            if done >= next_row * total or done >= total or unchanged == 24:
                print(f"{done:>12,} {newest_checkpoint_bytes(work / 'checkpoints') / 2**20:>23.1f} MB "
                      f"{tree_rss_bytes(job.pid) / 2**30:>6.2f} GB {time.monotonic() - started:>7.0f}s", flush=True)
                while next_row * total <= done:
                    next_row += 0.1
    finally:
        procs.kill_tree(job.pid)
        job.wait(timeout=30)
        log.close()


if __name__ == "__main__":
    main()
