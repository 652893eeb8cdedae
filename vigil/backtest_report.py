"""What `vigil backtest` compares: the fraud job's alerts and incidents from two runs over the same
recorded range (the rules and models in force, and a candidate), per pattern, against ground
truth where there is some. Pure functions of the records read back (no Kafka, no Flink).

A *hit* is one pattern naming one entity at one triggering event: an alert (one per event)
carries one hit per pattern and entity in its evidence, and one per model reason code
(`model_anomaly`, `model_supervised`) on the payment itself (entity `payment:<event id>`: a model
scores payments, whatever entity the alert's strongest pattern names). Two runs are diffed by hit:
(tenant, triggering event, pattern, entity type, entity id); a removed hit and an added one of the
same pattern and entity at most an hour apart count as *moved* too (a lower threshold alerts the
same burst at an earlier event). Incidents are diffed by incident id (the same id on every replay:
a hash of tenant and opening alert), with "changed" for an id in both runs whose alerts or
patterns differ; an incident counts for the patterns of its alerts' hits.

Ground truth, each optional:
- scenario labels (the generator's JSON lines: event_id, scenario, instance, event_time): a hit is
  right when its triggering event belongs to the scenario its pattern is meant to catch (`TARGET`;
  any scenario for a pattern without one); recall counts the scenario's instances, complete within
  the range, with at least one hit; latency is the time from an instance's first event to the
  event of its first hit (event time);
- chargebacks (fraud labels of payments in the range): a hit is confirmed when the user or the card
  of its triggering event (or the entity it names, if a user or card) has a fraud chargeback;
  recall counts the charged-back payments whose user or card the pattern alerted on.
Without labels, the latency columns show the alerts' detection_latency_ms (processing time of
the replay, not live latency).

>>> alert = {"tenant_id": "t1", "event_id": "e9", "event_time": 5_000, "detection_latency_ms": 40,
...          "entity_type": "card", "entity_id": "c1", "reason_codes": ["card_testing"],
...          "evidence": '{"patterns": [{"pattern": "card_testing", "entity_type": "card", "entity_id": "c1"}]}'}
>>> report = compare([alert], [], [], [])
>>> row = report["patterns"]["card_testing"]
>>> row["current"]["hits"], row["candidate"]["hits"], row["removed"], row["added"]
(1, 0, 1, 0)
>>> report["removed_hits"][0]["event_id"]
'e9'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

# The scenario (vigil/generator) each pattern is meant to catch; patterns not named here are
# scored against any scenario (bench/fraud_quality.py uses it too).
TARGET = {"card_testing": "card_testing", "account_takeover": "account_takeover",
          "impossible_travel": "impossible_travel", "velocity": "velocity_burst",
          "shared_device": "shared_device", "refund_abuse": "refund_abuse",
          "amount_anomaly": "amount_anomaly"}
MODEL_CODES = ("model_anomaly", "model_supervised")
ALL = "all alerts"          # the summary row: alerts (events), not hits
RUNS = ("current", "candidate")


def epoch_ms(value) -> int | None:
    """A TIMESTAMP(3) as read back (datetime, naive = UTC) or already epoch ms."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return round(moment.timestamp() * 1000)
    return int(value)


MOVE_WINDOW_MS = 3_600_000


@dataclass(frozen=True)
class Hit:
    alert_id: str
    tenant_id: str
    event_id: str
    pattern: str
    entity_type: str
    entity_id: str
    event_ms: int
    latency_ms: int | None       # the alert's detection_latency_ms

    @property
    def key(self) -> tuple:
        return (self.tenant_id, self.event_id, self.pattern, self.entity_type, self.entity_id)


def hits_of(alerts: list[dict]) -> list[Hit]:
    """Every hit of every alert: its evidence's patterns, then its model reason codes.

    >>> hit = hits_of([{"alert_id": "a", "tenant_id": "t", "event_id": "e", "event_time": 1, "detection_latency_ms": None,
    ...                 "reason_codes": ["model_anomaly"], "evidence": '{"patterns": []}'}])[0]
    >>> hit.pattern, hit.entity_type, hit.entity_id
    ('model_anomaly', 'payment', 'e')
    """
    out = []
    for alert in alerts:
        evidence = json.loads(alert.get("evidence") or "{}")
        at, latency = epoch_ms(alert["event_time"]), alert.get("detection_latency_ms")
        common = (alert.get("alert_id"), alert["tenant_id"], alert["event_id"])
        for p in evidence.get("patterns") or []:
            out.append(Hit(*common, p["pattern"], p["entity_type"], str(p["entity_id"]), at, latency))
        for code in alert.get("reason_codes") or []:
            if code in MODEL_CODES:
                out.append(Hit(*common, code, "payment", alert["event_id"], at, latency))
    return out


def moved(removed: list[Hit], added: list[Hit], window_ms: int = MOVE_WINDOW_MS) -> int:
    """How many removed hits have an added hit of the same tenant, pattern and entity at most
    `window_ms` of event time away (each added hit pairs once, nearest first).

    >>> h = lambda event, ms: Hit("a", "t", event, "velocity", "card", "c1", ms, None)
    >>> moved([h("e10", 100_000), h("e30", 9_000_000)], [h("e8", 90_000)])
    1
    """
    by_entity: dict[tuple, list[int]] = {}
    for hit in added:
        by_entity.setdefault(hit.key[:1] + hit.key[2:], []).append(hit.event_ms)
    count = 0
    for hit in sorted(removed, key=lambda h: h.event_ms):
        times = by_entity.get(hit.key[:1] + hit.key[2:])
        if times:
            nearest = min(times, key=lambda t: abs(t - hit.event_ms))
            if abs(nearest - hit.event_ms) <= window_ms:
                times.remove(nearest)
                count += 1
    return count


def latest_incidents(records: list[dict]) -> dict[str, dict]:
    """The last version of each incident, from fraud.incidents' records in topic order (one key
    is one partition, so topic order is version order per incident)."""
    latest = {}
    for record in records:
        if record is not None:
            latest[record["incident_id"]] = record
    return latest


@dataclass
class Truth:
    """Ground truth over the range, prepared by the caller from labels and events.clean."""
    # scenario labels: event id -> (scenario, instance); instance -> first event time; the
    # instances complete within the range, by scenario
    scenario_of: dict = field(default_factory=dict)
    instance_start: dict = field(default_factory=dict)
    complete: dict = field(default_factory=dict)
    # chargebacks: (tenant, "user"|"card", id) with a fraud chargeback; the charged-back payments
    # in the range, event id -> (tenant, user, card); the user and card of alerts' events
    fraud_entities: set = field(default_factory=set)
    charged_back: dict = field(default_factory=dict)
    event_entities: dict = field(default_factory=dict)

    @property
    def has_scenarios(self) -> bool:
        return bool(self.scenario_of)

    @property
    def has_chargebacks(self) -> bool:
        return bool(self.charged_back)

    @staticmethod
    def from_labels(labels: list[dict], in_range) -> "Truth":
        """Scenario truth from the generator's labels; `in_range(event_id, event_ms)` says whether a
        labelled event is in the replayed range. An instance counts for recall when all of its
        labelled events are (one started before the range or cut off at its end cannot be caught
        whole).

        >>> labels = [{"event_id": "a", "scenario": "card_testing", "instance": "i1", "event_time": 10},
        ...           {"event_id": "b", "scenario": "card_testing", "instance": "i1", "event_time": 20},
        ...           {"event_id": "c", "scenario": "card_testing", "instance": "i2", "event_time": 30}]
        >>> truth = Truth.from_labels(labels, lambda event_id, ms: event_id != "c")
        >>> truth.complete, truth.instance_start["i1"]
        ({'card_testing': {'i1'}}, 10)
        """
        truth, outside = Truth(), set()
        for label in labels:
            at = epoch_ms(label["event_time"])
            truth.scenario_of[label["event_id"]] = (label["scenario"], label["instance"])
            start = truth.instance_start.get(label["instance"])
            truth.instance_start[label["instance"]] = at if start is None else min(start, at)
            if not in_range(label["event_id"], at):
                outside.add(label["instance"])
        for scenario, instance in set(truth.scenario_of.values()):
            if instance not in outside:
                truth.complete.setdefault(scenario, set()).add(instance)
        return truth


def _incident_shape(incident: dict) -> tuple:
    """What makes two versions of one incident id differ for an analyst: its alerts and patterns."""
    return (sorted(incident.get("alert_ids") or []), sorted(incident.get("patterns") or []))


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values).

    >>> percentile([5, 1, 3], 0.5), percentile([], 0.5)
    (3, None)
    """
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _alerted_entities(hits: list[Hit], truth: Truth) -> set:
    """(tenant, user|card, id) an alert was raised on: the user and card of its event, and the
    entity it names when that is a user or a card."""
    out = set()
    for hit in hits:
        tenant, user, card = truth.event_entities.get(hit.event_id, (hit.tenant_id, None, None))
        out.update((tenant, kind, value) for kind, value in (("user", user), ("card", card)) if value)
        if hit.entity_type in ("user", "card"):
            out.add((hit.tenant_id, hit.entity_type, hit.entity_id))
    return out


def _stats(hits: list[Hit], incidents: list[dict], truth: Truth | None, target_scenario, summary: bool) -> dict:
    """One run's figures for one pattern (or, `summary`, for all alerts: counted by event)."""
    units = list({(h.tenant_id, h.event_id): h for h in hits}.values()) if summary else hits
    out = {"hits": len(units), "incidents": len(incidents)}
    latencies = []
    if truth is not None and truth.has_scenarios:
        def right(hit: Hit) -> bool:
            scenario = truth.scenario_of.get(hit.event_id)
            return scenario is not None and (target_scenario is None or scenario[0] == target_scenario)
        wanted = (set().union(*truth.complete.values()) if target_scenario is None
                  else truth.complete.get(target_scenario, set()))
        first_hit: dict[str, int] = {}
        for hit in units:
            if right(hit):
                instance = truth.scenario_of[hit.event_id][1]
                first_hit[instance] = min(first_hit.get(instance, hit.event_ms), hit.event_ms)
        caught = set(first_hit) & wanted
        out["precision_scenarios"] = _ratio(sum(1 for h in units if right(h)), len(units))
        if summary or target_scenario is not None:  # a pattern without a scenario of its own has no recall
            out.update(recall_scenarios=_ratio(len(caught), len(wanted)), instances_caught=len(caught),
                       instances=len(wanted))
        latencies = [first_hit[i] - truth.instance_start[i] for i in caught]
        out["latency_basis"] = "event time from the scenario's first event"
    elif units:
        latencies = [h.latency_ms for h in units if h.latency_ms is not None]
        out["latency_basis"] = "detection_latency_ms (replay processing time)"
    if truth is not None and truth.has_chargebacks:
        confirmed = sum(1 for h in units if _alerted_entities([h], truth) & truth.fraud_entities)
        alerted = _alerted_entities(hits, truth)
        recalled = sum(1 for tenant, user, card in truth.charged_back.values()
                       if (tenant, "user", user) in alerted or (card and (tenant, "card", card) in alerted))
        out.update(precision_chargebacks=_ratio(confirmed, len(units)),
                   recall_chargebacks=_ratio(recalled, len(truth.charged_back)))
    out.update(latency_p50_ms=percentile(latencies, 0.5), latency_p99_ms=percentile(latencies, 0.99))
    return out


def compare(current_alerts: list[dict], candidate_alerts: list[dict], current_incidents: list[dict],
            candidate_incidents: list[dict], truth: Truth | None = None, examples: int = 20) -> dict:
    """The comparison of two runs (alerts as read from fraud.alerts, incidents as their latest
    versions), per pattern and for all alerts: a JSON-ready dict."""
    hits = {"current": hits_of(current_alerts), "candidate": hits_of(candidate_alerts)}
    keys = {run: {h.key for h in hits[run]} for run in RUNS}
    # an incident's patterns: those of its alerts' hits in its run (its own `patterns` field says
    # "model" for model-only alerts)
    incidents = {}
    for run, records in (("current", current_incidents), ("candidate", candidate_incidents)):
        patterns_of: dict[str, set] = {}
        for hit in hits[run]:
            patterns_of.setdefault(hit.alert_id, set()).add(hit.pattern)
        incidents[run] = [{**i, "patterns": sorted(set().union(*(patterns_of.get(a, set()) for a in i.get("alert_ids") or []))
                                                   or set(i.get("patterns") or []))} for i in records]
    patterns = sorted({h.pattern for run in RUNS for h in hits[run]}
                      | {p for run in RUNS for i in incidents[run] for p in i["patterns"]})
    rows = {}
    for pattern in patterns + [ALL]:
        summary = pattern == ALL
        row = {}
        for run in RUNS:
            run_hits = hits[run] if summary else [h for h in hits[run] if h.pattern == pattern]
            run_incidents = incidents[run] if summary else [i for i in incidents[run] if pattern in i["patterns"]]
            row[run] = _stats(run_hits, run_incidents, truth, None if summary else TARGET.get(pattern), summary)
        mine = {run: [h for h in hits[run] if summary or h.pattern == pattern] for run in RUNS}
        added = [h for h in mine["candidate"] if h.key not in keys["current"]]
        removed = [h for h in mine["current"] if h.key not in keys["candidate"]]
        if summary:
            events = {run: {(h.tenant_id, h.event_id) for h in hits[run]} for run in RUNS}
            row["added"], row["removed"] = (len(events["candidate"] - events["current"]),
                                            len(events["current"] - events["candidate"]))
        else:
            row["added"], row["removed"] = len(added), len(removed)
        row["moved"] = None if summary else moved(removed, added)   # hits, not alerts: not for the summary
        by_id = {run: {i["incident_id"]: i for i in (incidents[run] if summary else [
            i for i in incidents[run] if pattern in i["patterns"]])} for run in RUNS}
        row["incidents_added"] = len(by_id["candidate"].keys() - by_id["current"].keys())
        row["incidents_removed"] = len(by_id["current"].keys() - by_id["candidate"].keys())
        row["incidents_changed"] = sum(
            1 for i in by_id["current"].keys() & by_id["candidate"].keys()
            if _incident_shape(by_id["current"][i]) != _incident_shape(by_id["candidate"][i]))
        rows[pattern] = row

    def listed(which: set) -> list[dict]:
        fields = ("tenant_id", "event_id", "pattern", "entity_type", "entity_id")
        return [dict(zip(fields, key)) for key in sorted(which)[:examples]]
    return {"patterns": rows,
            "added_hits": listed(keys["candidate"] - keys["current"]),
            "removed_hits": listed(keys["current"] - keys["candidate"]),
            "truth": {"scenario_labels": bool(truth and truth.has_scenarios),
                      "chargebacks": len(truth.charged_back) if truth else 0}}


def changed(report: dict) -> bool:
    """Whether the candidate changed any alert or incident."""
    row = report["patterns"][ALL]
    return any(row[k] for k in ("added", "removed", "incidents_added", "incidents_removed", "incidents_changed"))


def _pair(row: dict, name: str, form) -> str:
    a, b = (row[run].get(name) for run in RUNS)
    shown = [form(v) if v is not None else "-" for v in (a, b)]
    return shown[0] if a == b else f"{shown[0]} -> {shown[1]}"


def _ms(value: float) -> str:
    return f"{value / 1000:.1f}s" if value >= 1000 else f"{value:.0f}ms"


def table(report: dict) -> str:
    """The report as text: alerts and incidents per pattern, then quality where truth was given."""
    rows = report["patterns"]
    width = max(len(p) for p in rows) + 1
    lines = [f"{'pattern':<{width}} {'hits: current':>13} {'candidate':>9} {'added':>6} {'removed':>7} {'moved':>6}   "
             f"{'incidents: current':>18} {'candidate':>9} {'added':>6} {'removed':>7} {'changed':>7}"]
    for pattern, row in rows.items():
        cur, cand = row["current"], row["candidate"]
        lines.append(f"{pattern:<{width}} {cur['hits']:>13,} {cand['hits']:>9,} {row['added']:>6,} "
                     f"{row['removed']:>7,} {'-' if row['moved'] is None else format(row['moved'], ','):>6}   "
                     f"{cur['incidents']:>18,} {cand['incidents']:>9,} "
                     f"{row['incidents_added']:>6,} {row['incidents_removed']:>7,} {row['incidents_changed']:>7,}")
    lines.append(f"(hits: one per pattern, entity and triggering event; the '{ALL}' row counts alerts, one per event; "
                 "moved: removed hits with an added one of the same pattern and entity within an hour)")
    truth = report["truth"]
    percent = lambda v: f"{v:.3f}"  # noqa: E731
    columns = []
    if truth["scenario_labels"]:
        columns += [("precision (scenarios)", "precision_scenarios", percent),
                    ("recall (scenarios)", "recall_scenarios", percent)]
    if truth["chargebacks"]:
        columns += [("precision (chargebacks)", "precision_chargebacks", percent),
                    ("recall (chargebacks)", "recall_chargebacks", percent)]
    columns += [("latency p50", "latency_p50_ms", _ms), ("latency p99", "latency_p99_ms", _ms)]
    cells = {p: [_pair(row, key, form) for _, key, form in columns] for p, row in rows.items()}
    widths = [max([len(title)] + [len(c[i]) for c in cells.values()]) for i, (title, _, _) in enumerate(columns)]
    lines.append("")
    lines.append(f"{'pattern':<{width}} " + "  ".join(f"{t:>{w}}" for (t, _, _), w in zip(columns, widths)))
    for pattern, values in cells.items():
        lines.append(f"{pattern:<{width}} " + "  ".join(f"{v:>{w}}" for v, w in zip(values, widths)))
    basis = next((row[run].get("latency_basis") for row in rows.values() for run in RUNS
                  if row[run].get("latency_basis")), None)
    notes = ["a -> b: current -> candidate where they differ"]
    if basis:
        notes.append(f"latency: {basis}")
    if truth["chargebacks"]:
        notes.append(f"{truth['chargebacks']:,} charged-back payments in the range")
    lines.append("(" + "; ".join(notes) + ")")
    for title, name in (("removed", "removed_hits"), ("added", "added_hits")):
        if report[name]:
            lines.append(f"\nfirst {len(report[name])} {title} hits:")
            lines.extend(f"  {h['pattern']} {h['entity_type']}:{h['entity_id']} tenant {h['tenant_id']} "
                         f"event {h['event_id']}" for h in report[name])
    return "\n".join(lines)


def chart(report: dict, path, title: str = "") -> None:
    """Per pattern bars, current beside candidate: hits, incidents, and precision and recall where
    truth was given (PNG; matplotlib, in requirements.lock)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["patterns"]
    patterns = [p for p in rows if p != ALL]
    panels = [("the candidate's change: hits added (+) and removed (-)", None),
              ("hits (alerts: one per pattern, entity, event)", "hits"), ("incidents", "incidents")]
    if report["truth"]["scenario_labels"]:
        panels += [("precision (scenario labels)", "precision_scenarios"), ("recall (scenario labels)", "recall_scenarios")]
    elif report["truth"]["chargebacks"]:
        panels += [("precision (chargebacks)", "precision_chargebacks"), ("recall (chargebacks)", "recall_chargebacks")]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(8, 1.1 * len(patterns) + 3), 2.8 * len(panels)),
                             squeeze=False)
    xs = range(len(patterns))
    for ax, (label, key) in zip(axes[:, 0], panels):
        if key is None:
            for offset, name, sign, color in ((-0.2, "added", 1, "tab:green"), (0.2, "removed", -1, "tab:red")):
                values = [sign * rows[p][name] for p in patterns]
                bars = ax.bar([x + offset for x in xs], values, width=0.4, label=name, color=color)
                ax.bar_label(bars, labels=[f"{abs(v):,}" if v else "" for v in values], fontsize=7)
            ax.axhline(0, color="black", linewidth=0.8)
        for offset, run in ((-0.2, "current"), (0.2, "candidate")) if key is not None else ():
            values = [rows[p][run].get(key) or 0 for p in patterns]
            bars = ax.bar([x + offset for x in xs], values, width=0.4, label=run)
            if key in ("hits", "incidents"):
                ax.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(patterns, rotation=20, ha="right", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
