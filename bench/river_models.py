"""Benchmark: per-event cost of the fraud job's River models, with whatever River is importable.

The risk scorer scores and learns every payment with the anomaly model and learns every
chargeback label with the supervised one (udfs/fraud_models.py): this times exactly those calls,
per model version, over synthetic feature vectors (udfs/fraud_features.model_vector), and prints
the River and numpy versions it ran with, so two River releases can be compared in one sitting:

    .venv/bin/python bench/river_models.py [--events 20000]
    # a newer River beside the pinned one, without touching .venv (its numpy stays 2.1.3):
    .venv/bin/pip install --no-deps --target /tmp/river-new river==0.26.1
    PYTHONPATH=/tmp/river-new .venv/bin/python bench/river_models.py

It also checks that both give the same kind of answer: the mean anomaly score and the supervised
model's accuracy on the last quarter of the events (a different River may score differently).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from udfs.fraud_features import model_vector  # noqa: E402
from udfs.fraud_models import MODEL_VERSIONS  # noqa: E402


def vectors(n: int, seed: int = 7) -> list[tuple[dict, bool]]:
    """Payments: mostly ordinary, 5 % fraud-like (larger amounts, more velocity, farther, newer devices)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        fraud = rng.random() < 0.05
        scale = 6.0 if fraud else 1.0
        features = {"amount_usd": rng.lognormvariate(3.5, 1.0) * scale, "events_1h": rng.randint(1, 30) * scale,
                    "payments_1h": rng.randint(1, 3) * scale, "amount_usd_1h": rng.lognormvariate(4, 1) * scale,
                    "distinct_devices_1h": 1 + fraud * rng.randint(1, 4), "distinct_cards_1h": 1 + fraud * rng.randint(1, 4),
                    "distinct_ips_1h": 1 + fraud * rng.randint(0, 3), "distinct_countries_1h": 1,
                    "km_per_hour_since_last": rng.random() * (1500 if fraud else 40), "amount_z_1h": rng.gauss(3 if fraud else 0, 1)}
        out.append((model_vector(features), fraud))
    return out


def run(version: str, data: list[tuple[dict, bool]]) -> float:
    """Score and learn every event as the risk scorer does; the quality on the last quarter."""
    kind, recipe = MODEL_VERSIONS[version]
    model = recipe()
    quality, judged = 0.0, 0
    for i, (vector, fraud) in enumerate(data):
        if kind == "anomaly":
            score = model.score_one(vector)
            model.learn_one(vector)
        else:
            score = model.predict_proba_one(vector).get(True, 0.0)
            model.learn_one(vector, fraud)
        if i >= len(data) * 3 // 4:
            quality += score if kind == "anomaly" else float((score >= 0.5) == fraud)
            judged += 1
    return quality / max(judged, 1)


def time_model(version: str, data: list[tuple[dict, bool]]) -> tuple[float, float, float]:
    """(us per event, best of 3 runs; peak MiB allocated by a run, traced separately: tracing
    slows Python down; quality on the last quarter)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        quality = run(version, data)
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    run(version, data[: len(data) // 4])
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return min(times) / len(data) * 1e6, peak, quality


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    import numpy
    import river
    data = vectors(args.events)
    print(f"river {river.__version__} (from {Path(river.__file__).parent}), numpy {numpy.__version__}, "
          f"python {sys.version.split()[0]}; {args.events:,} events per model")
    print(f"{'model':<10} {'us/event':>9} {'peak MiB':>9}  quality on the last quarter (us/event: best of 3; MiB: a quarter of the events)")
    for version in MODEL_VERSIONS:
        us, peak, quality = time_model(version, data)
        what = "mean anomaly score" if MODEL_VERSIONS[version][0] == "anomaly" else "accuracy"
        print(f"{version:<10} {us:>9.1f} {peak:>9.2f}  {what} {quality:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
