"""What `vigil demo` prints, from values already read (no I/O here: tests/unit/test_demo_report.py).

Four parts: ingest accounting (events.clean and events.dlq read back), fraud alerts by pattern
with one alert explained (reason codes, evidence), the analytics answers for the busiest tenant
(the HTTP API's JSON), and where to look further (dashboard URL, commands).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

RULE = "=" * 72


@dataclass
class Summary:
    raw: int = 0
    clean: int = 0
    rejected: Counter = field(default_factory=Counter)
    clean_by_tenant: Counter = field(default_factory=Counter)
    event_types: Counter = field(default_factory=Counter)
    schema_versions: Counter = field(default_factory=Counter)
    payment_methods: Counter = field(default_factory=Counter)
    positions: Counter = field(default_factory=Counter)  # (partition, offset) of raw -> times seen

    def add_clean(self, value: dict) -> None:
        self.clean += 1
        self.clean_by_tenant[value["tenant_id"]] += 1
        self.event_types[value["event_type"]] += 1
        self.schema_versions[value["schema_version"]] += 1
        if value.get("payment_method"):
            self.payment_methods[value["payment_method"]] += 1
        self.positions[(value["source_partition"], value["source_offset"])] += 1

    def add_rejected(self, value: dict) -> None:
        self.rejected[value["reason"]] += 1
        self.positions[(value["source_partition"], value["source_offset"])] += 1

    @property
    def accounted_once(self) -> bool:
        return len(self.positions) == self.raw and all(n == 1 for n in self.positions.values())

    @property
    def busiest_tenant(self) -> str | None:
        top = self.clean_by_tenant.most_common(1)
        return top[0][0] if top else None


def _title(text: str) -> list[str]:
    return ["", RULE, text, RULE]


def render_ingest(summary: Summary, labels: Counter) -> str:
    lines = _title("1. Ingest (events.clean and events.dlq read back with isolation.level=read_committed)")
    lines += [
        f"events in (events.raw)     {summary.raw:>10,}",
        f"clean (events.clean)       {summary.clean:>10,}",
        f"rejected (events.dlq)      {sum(summary.rejected.values()):>10,}",
        f"every input accounted for exactly once: {'YES' if summary.accounted_once else 'NO'}",
        "", "rejected by reason:",
    ]
    lines += [f"  {reason:<24} {n:>8,}" for reason, n in summary.rejected.most_common()]
    lines += ["", "busiest tenants (clean events):"]
    lines += [f"  {tenant:<24} {n:>8,}" for tenant, n in summary.clean_by_tenant.most_common(5)]
    lines += ["", "clean events by type:"]
    lines += [f"  {kind:<24} {n:>8,}" for kind, n in summary.event_types.most_common()]
    lines += ["", "clean events by the event schema version their producer wrote (v1 read as v2):"]
    lines += [f"  v{version:<23} {n:>8,}" for version, n in sorted(summary.schema_versions.items())]
    lines += ["  payment_method (a v2 field): " + ", ".join(f"{k} {n:,}" for k, n in summary.payment_methods.most_common())]
    lines += ["", "labelled fraud-scenario events generated (ground truth for the fraud job):"]
    lines += [f"  {scenario:<24} {n:>8,}" for scenario, n in labels.most_common()]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- fraud

def alert_pattern(alert: dict) -> str:
    """The alert's pattern; a model-only alert (no pattern hit) is counted as `model`."""
    return alert.get("fraud_pattern") or "model"


def alerts_by_pattern(alerts: list[dict]) -> Counter:
    return Counter(alert_pattern(a) for a in alerts)


def _evidence(alert: dict) -> dict:
    raw = alert.get("evidence")
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw or "{}")
    except ValueError:
        return {"text": raw}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def explained_alert(alerts: list[dict]) -> dict | None:
    """The alert to explain: the highest-scoring one with the most reason codes and some evidence."""
    if not alerts:
        return None
    return max(alerts, key=lambda a: (bool(_evidence(a)), len(a.get("reason_codes") or []), a.get("score") or 0.0,
                                      a.get("event_id") or ""))


def _short(value, limit: int = 100) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def render_fraud(alerts: list[dict], labels: Counter, incidents: int) -> str:
    lines = _title("2. Fraud detection (fraud.alerts of this run, read back read_committed)")
    by_pattern = alerts_by_pattern(alerts)
    lines += [f"alerts                     {len(alerts):>10,}",
              f"incidents                  {incidents:>10,}   (fraud.incidents: alerts grouped per user, card or device)",
              "", "alerts by pattern:"]
    lines += [f"  {pattern:<24} {n:>8,}" for pattern, n in by_pattern.most_common()]
    if labels:
        lines += ["  (generated scenarios: " + ", ".join(f"{s} {n:,}" for s, n in labels.most_common()) + " events)"]
    alert = explained_alert(alerts)
    if alert is None:
        lines += ["", "no alert to explain"]
        return "\n".join(lines)
    lines += ["", "one alert explained:",
              f"  alert_id      {alert.get('alert_id')}",
              f"  tenant        {alert.get('tenant_id')}   event {alert.get('event_id')} at {alert.get('event_time')}",
              f"  pattern       {alert_pattern(alert)} on {alert.get('entity_type')} {alert.get('entity_id')}",
              f"  score         {alert.get('score') or 0:.3f}   (anomaly {_num(alert.get('anomaly_score'))},"
              f" supervised {_num(alert.get('supervised_score'))})",
              f"  reason codes  {', '.join(alert.get('reason_codes') or []) or '-'}",
              "  evidence:"]
    evidence = _evidence(alert)
    for name, value in sorted(evidence.items()):
        if isinstance(value, list):
            lines += [f"    {name}:"] + [f"      - {_short(item)}" for item in value[:5]]
            if len(value) > 5:
                lines += [f"      ... {len(value) - 5} more"]
        else:
            lines += [f"    {name}: {_short(value)}"]
    if alert.get("detection_latency_ms") is not None:
        lines += [f"  detected {alert['detection_latency_ms']:,} ms after the event was appended to events.clean"]
    return "\n".join(lines)


def _num(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


# ------------------------------------------------------------------------------------ analytics

def render_analytics(tenant: str, answers: dict, api_url: str) -> str:
    """`answers`: the API's JSON per endpoint name (revenue, funnel, approval_rate, dlq_rate,
    alerts_by_pattern, incidents_by_pattern), for this run's minutes."""
    lines = _title(f"3. Analytics for the busiest tenant, {tenant} (HTTP API {api_url}, this run's minutes)")
    revenue = (answers.get("revenue") or {}).get("totals") or {}
    lines += [f"GMV (USD)                  {revenue.get('gmv_usd') or 0:>14,.2f}",
              f"orders                     {revenue.get('orders') or 0:>14,}",
              f"average basket (USD)       {revenue.get('avg_basket_usd') or 0:>14,.2f}"]
    funnel = answers.get("funnel") or {}
    steps = funnel.get("steps") or {}
    if steps:
        lines += ["", "funnel:"]
        lines += [f"  {step:<24} {n or 0:>8,}" for step, n in steps.items()]
        conversion = (funnel.get("conversion") or {}).get("page_views_to_payments_approved")
        lines += [f"  page views -> approved payments: {_pct(conversion)}"]
    approval = (answers.get("approval_rate") or {}).get("totals") or {}
    lines += ["", f"approval rate              {_pct(approval.get('approval_rate')):>14}"
                  f"   ({approval.get('payments_approved') or 0:,} approved,"
                  f" {approval.get('payments_declined') or 0:,} declined)"]
    dlq = (answers.get("dlq_rate") or {}).get("totals") or {}
    lines += [f"DLQ rate                   {_pct(dlq.get('dlq_rate')):>14}"
              f"   ({dlq.get('rejections') or 0:,} rejected of {(dlq.get('clean_events') or 0) + (dlq.get('rejections') or 0):,})"]
    for name, title in (("alerts_by_pattern", "fraud alerts by pattern"),
                        ("incidents_by_pattern", "fraud incidents by pattern")):
        totals = (answers.get(name) or {}).get("by_pattern") or {}
        lines += ["", f"{title}:"]
        lines += [f"  {pattern:<24} {n:>8,}" for pattern, n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]
        if not totals:
            lines += ["  none yet"]
    return "\n".join(lines)


def dashboard_url(api_url: str, key: str) -> str:
    """The dashboard with the key in the fragment: a fragment never leaves the browser
    (vigil/api/dashboard.py), so the key is in no request line."""
    return f"{api_url}/dashboard#key={key}"


def render_next(api_url: str, key: str, tenant: str, labels_file: str, flink_url: str) -> str:
    return "\n".join(_title("4. Look further") + [
        f"dashboard ({tenant}):  {dashboard_url(api_url, key)}",
        f"API, e.g.:  curl -H 'Authorization: Bearer {key}' '{api_url}/v1/revenue?grain=minute'",
        f"Flink web UI (ingest, fraud and analytics jobs running):  {flink_url}",
        "  .venv/bin/vigil infra status; .venv/bin/vigil cluster status; .venv/bin/vigil api --status",
        "  .venv/bin/python -m vigil.peek events.dlq 5     a few dead-letter records with their reasons",
        "  .venv/bin/vigil sql                             Flink SQL on Vigil's catalog",
        f"  {labels_file}  ground truth",
        "Everything keeps running (Kafka, schema registry, PostgreSQL, the Flink cluster and its jobs, the API).",
        "Stop everything with: make down",
    ])
