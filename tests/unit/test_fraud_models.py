"""The fraud job's models and decision step as scenarios in event time: River models per tenant,
their combination into a risk with reason codes, versioned snapshots, and the Decider's records.
No JVM, no Kafka; every random input is seeded."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from tests.scenarios import NOW_MS
from udfs.fraud_features import MODEL_INPUTS, model_vector
from udfs.fraud_models import ModelConfig, ModelState, SnapshotStore, combine
from udfs.fraud_scoring import OUTPUT_FIELDS, Decider

CONFIG = ModelConfig()
TENANT = "t1"
DECIDED_AT_MS = NOW_MS + 1_250          # the fake clock's "now" (exact in binary floating point)
DAY_MS = 24 * 3600_000


# --- builders -------------------------------------------------------------------------------

def payment_features(rng: random.Random, fraud: bool) -> dict:
    """A user's feature row: fraud spends a lot, fast; legit spends little, rarely."""
    if fraud:
        return {"amount_usd": rng.uniform(1500, 5000), "payments_1h": rng.randint(10, 40),
                "amount_usd_1h": rng.uniform(5000, 20000), "distinct_cards_1h": rng.randint(2, 8)}
    return {"amount_usd": rng.uniform(5, 80), "payments_1h": rng.randint(0, 2),
            "amount_usd_1h": rng.uniform(5, 150), "distinct_cards_1h": 1}


def item(kind: str, event_id: str, at_ms: int, **fields) -> dict:
    """One input row of the decision step, every column present as in the job's SQL union."""
    row = dict(kind=kind, tenant_id=TENANT, event_id=event_id, event_ms=at_ms, appended_ms=at_ms + 5,
               entity_type=None, entity_id=None, fraud_pattern=None, score=None, detail=None,
               rules_ms=NOW_MS - 60_000, is_fraud=None, label_ms=None)
    row.update(fields)
    return row


def pay(event_id: str = "e1", at_ms: int = NOW_MS, user: str = "u1", appended_ms: int | None = None,
        **features) -> dict:
    features.setdefault("amount_usd", 25.0)
    return item("payment", event_id, at_ms, entity_type="user", entity_id=user, detail=json.dumps(features),
                appended_ms=at_ms + 5 if appended_ms is None else appended_ms)


def hit(pattern: str, score: float, event_id: str = "e1", at_ms: int = NOW_MS,
        entity: tuple[str, str] = ("card", "c1"), **evidence) -> dict:
    return item("hit", event_id, at_ms, entity_type=entity[0], entity_id=entity[1], fraud_pattern=pattern,
                score=score, detail=json.dumps(evidence))


def label(event_id: str, is_fraud: bool, at_ms: int = NOW_MS + DAY_MS) -> dict:
    return item("label", event_id, NOW_MS, label_ms=at_ms, is_fraud=is_fraud,
                detail=json.dumps({"outcome": "chargeback" if is_fraud else "matured"}))


def decider(config: ModelConfig = CONFIG, store: SnapshotStore | None = None) -> Decider:
    return Decider(config, store, clock=lambda: DECIDED_AT_MS / 1000)


def decide(items: list[dict], models: ModelState | None = None, vectors: dict | None = None) -> list[dict]:
    """The records of one batch, each as {field: value}."""
    models = models if models is not None else ModelState.fresh(CONFIG)
    records = decider().decide(TENANT, models, items, {} if vectors is None else vectors)
    return [dict(zip(OUTPUT_FIELDS, record)) for record in records]


def history(seed: int, payments: int = 300) -> list[tuple]:
    """Payments ("pay", i, vector) and, now and then, the label of an earlier one ("label", i, vector, fraud)."""
    rng = random.Random(seed)
    steps, paid = [], []
    for i in range(payments):
        fraud = rng.random() < 0.3
        vector = model_vector(payment_features(rng, fraud))
        steps.append(("pay", i, vector))
        paid.append((i, vector, fraud))
        if rng.random() < 0.7:
            steps.append(("label",) + paid.pop(rng.randrange(len(paid))))
    return steps


def replay(steps: list[tuple], state: ModelState) -> dict[int, dict[str, float]]:
    """Scores of every payment by its index, after feeding `steps` in the order given."""
    scores = {}
    for step in steps:
        if step[0] == "pay":
            scores[step[1]] = state.score_and_learn(step[2])
        else:
            state.learn_label(step[2], step[3])
    return scores


def trained(config: ModelConfig = CONFIG, seed: int = 3) -> ModelState:
    state = ModelState.fresh(config)
    replay(history(seed), state)
    return state


def probe(state: ModelState) -> list[dict[str, float]]:
    """Scores of a fixed set of payments (they are learned, so compare states probed alike)."""
    rng = random.Random(99)
    return [state.score_and_learn(model_vector(payment_features(rng, n % 2 == 0))) for n in range(20)]


@pytest.fixture
def store(tmp_path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "models")


# --- 1. determinism -------------------------------------------------------------------------

def test_the_same_events_in_the_same_order_give_the_same_scores_and_another_order_does_not():
    steps = history(seed=1)
    first, second = replay(steps, ModelState.fresh(CONFIG)), replay(steps, ModelState.fresh(CONFIG))
    assert first == second
    assert any(s[CONFIG.anomaly] > 0 for s in first.values())           # past the first HST window
    assert len({round(s[CONFIG.supervised], 6) for s in first.values()}) > 100

    shuffled = list(steps)
    random.Random(2).shuffle(shuffled)
    other = replay(shuffled, ModelState.fresh(CONFIG))
    assert other.keys() == first.keys()
    assert sum(other[i] != first[i] for i in first) > 50   # order matters: hence event-time processing


# --- 2. supervised learning -----------------------------------------------------------------

def test_the_supervised_model_learns_from_labels_but_speaks_only_after_min_labels():
    rng = random.Random(11)
    state = ModelState.fresh(CONFIG)
    fraud_like, legit_like = (model_vector(payment_features(rng, fraud)) for fraud in (True, False))
    while state.labels_seen < 600:
        fraud = state.labels_seen % 3 == 0
        state.learn_label(model_vector(payment_features(rng, fraud)), fraud)
        if state.labels_seen == CONFIG.min_labels - 1:
            early = state.score_and_learn(fraud_like)
            assert early[CONFIG.supervised] > 0.9
            assert combine([], early, CONFIG, state.labels_seen) == (0.0, [])

    fraud_scores, legit_scores = state.score_and_learn(fraud_like), state.score_and_learn(legit_like)
    assert fraud_scores[CONFIG.supervised] > 0.7 and legit_scores[CONFIG.supervised] < 0.3
    risk, reasons = combine([], fraud_scores, CONFIG, state.labels_seen)
    assert reasons == ["model_supervised"] and risk == pytest.approx(fraud_scores[CONFIG.supervised])
    assert combine([], legit_scores, CONFIG, state.labels_seen) == (0.0, [])


# --- 3. combine -----------------------------------------------------------------------------

def models(anomaly: float = 0.1, supervised: float = 0.2) -> dict[str, float]:
    return {CONFIG.anomaly: anomaly, CONFIG.supervised: supervised}


@pytest.mark.parametrize("hits, expected_risk, expected_reasons", [
    ([], 0.0, []),
    ([("card_testing", 0.8)], 0.8, ["card_testing"]),
    ([("velocity_1m", 0.5), ("card_testing", 0.5)], 0.75, ["velocity_1m", "card_testing"]),
    ([("velocity_1m", 0.5), ("card_testing", 0.5), ("velocity_1m", 0.0)], 0.75, ["velocity_1m", "card_testing"]),
])
def test_pattern_hits_combine_as_independent_signals_with_one_reason_each(hits, expected_risk, expected_reasons):
    risk, reasons = combine(hits, models(), CONFIG, labels_seen=10_000)
    assert risk == pytest.approx(expected_risk) and reasons == expected_reasons


@pytest.mark.parametrize("anomaly", [CONFIG.anomaly_threshold, 0.9, 0.99, 1.0])
def test_an_anomaly_above_its_threshold_adds_at_most_its_weight(anomaly):
    risk, reasons = combine([], models(anomaly=anomaly), CONFIG, labels_seen=0)
    assert reasons == ["model_anomaly"] and 0.0 < risk <= CONFIG.anomaly_weight
    assert combine([], models(anomaly=CONFIG.anomaly_threshold - 0.01), CONFIG, 0) == (0.0, [])


def test_risk_stays_within_0_and_1_whatever_the_inputs():
    rng = random.Random(4)
    for _ in range(500):
        hits = [(rng.choice(["a", "b", "c"]), rng.uniform(-1.0, 2.0)) for _ in range(rng.randint(0, 4))]
        risk, reasons = combine(hits, models(rng.random(), rng.random()), CONFIG, rng.choice([0, 10_000]))
        assert 0.0 <= risk <= 1.0
        assert len(reasons) == len(set(reasons))


# --- 4. the decision step -------------------------------------------------------------------

def test_a_payment_with_two_hits_gives_one_score_and_one_alert_with_a_deterministic_id():
    records = decide([hit("velocity_1m", 0.5, count=12), pay(amount_usd=900.0),
                      hit("card_testing", 0.9, entity=("card", "c9"), declines=7)])
    assert [r["output"] for r in records] == ["score", "alert"]
    assert records[0] | {"output": "alert"} == records[1]
    alert = records[1]
    assert alert["alert_id"] == hashlib.sha256(b"t1|e1").hexdigest()
    assert (alert["fraud_pattern"], alert["entity_type"], alert["entity_id"]) == ("card_testing", "card", "c9")
    assert set(alert["reason_codes"]) == {"card_testing", "velocity_1m"}
    assert alert["score"] == pytest.approx(1 - 0.1 * 0.5)
    evidence = json.loads(alert["evidence"])
    assert [p["pattern"] for p in evidence["patterns"]] == ["card_testing", "velocity_1m"]
    assert evidence["patterns"][0]["evidence"] == {"declines": 7}
    assert sorted(evidence["models"]) == ["hst-v1", "logreg-v1"] and evidence["features"] == {"amount_usd": 900.0}
    assert alert["model_versions"] == "hst-v1,logreg-v1" and alert["supervised_score"] == 0.5


def test_a_low_risk_payment_alone_is_only_scored():
    [record] = decide([pay(user="u7")])
    assert record["output"] == "score" and record["score"] == 0.0 and record["reason_codes"] == []
    assert (record["fraud_pattern"], record["entity_type"], record["entity_id"]) == (None, "user", "u7")


def test_a_hit_without_a_payment_is_an_alert_on_the_hit_entity_without_model_scores():
    [record] = decide([hit("refund_abuse", 0.8, event_id="r1", entity=("user", "u3"), refunds=4)])
    assert record["output"] == "alert" and record["event_id"] == "r1" and record["score"] == pytest.approx(0.8)
    assert (record["fraud_pattern"], record["entity_type"], record["entity_id"]) == ("refund_abuse", "user", "u3")
    assert (record["anomaly_score"], record["supervised_score"], record["shadow_score"]) == (None, None, None)
    assert record["model_versions"] is None and json.loads(record["evidence"])["models"] == {}


def test_a_label_trains_on_the_vector_its_payment_was_scored_with_and_releases_it():
    state, vectors = ModelState.fresh(CONFIG), {}
    decide([pay("e1", amount_usd=4000.0)], state, vectors)
    assert set(vectors) == {"e1"}
    # A batch's labels are older news: learned before its payments are scored.
    records = decide([pay("e2", at_ms=NOW_MS + DAY_MS), label("e1", is_fraud=True)], state, vectors)
    assert state.labels_seen == 1 and state.steps[CONFIG.supervised] == 1
    assert set(vectors) == {"e2"}
    assert [json.loads(r["evidence"])["labels_seen"] for r in records] == [1]


def test_a_label_for_an_unknown_payment_is_ignored():
    state, vectors = ModelState.fresh(CONFIG), {"e1": model_vector({"amount_usd": 10.0})}
    assert decide([label("e404", is_fraud=True)], state, vectors) == []
    assert state.labels_seen == 0 and set(vectors) == {"e1"}


def test_detection_latency_counts_from_the_append_time_to_the_decision():
    [record] = decide([pay(appended_ms=NOW_MS + 250)])
    assert record["detection_latency_ms"] == 1_000 and record["decided_at"] == DECIDED_AT_MS


def test_records_of_a_batch_come_in_event_id_order():
    records = decide([pay("e3"), hit("velocity_1m", 0.6, event_id="e2"), pay("e1"), pay("e2")])
    assert [(r["event_id"], r["output"]) for r in records] == [
        ("e1", "score"), ("e2", "score"), ("e2", "alert"), ("e3", "score")]


# --- 5. snapshots ---------------------------------------------------------------------------

def test_only_the_last_three_snapshots_are_kept_and_the_newest_is_restored(store):
    for steps in range(1, 6):
        path = store.save("hst-v1", TENANT, steps, {"weights": steps})
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{s:012d}.pkl" for s in (3, 4, 5)]
    assert store.latest("hst-v1", TENANT)["model"] == {"weights": 5}


@pytest.mark.parametrize("corrupt", [lambda b: b[:len(b) // 2], lambda b: b"", lambda b: b"not a pickle"])
def test_a_corrupt_newest_snapshot_falls_back_to_the_previous_one(store, corrupt):
    store.save("hst-v1", TENANT, 1, {"weights": 1})
    newest = store.save("hst-v1", TENANT, 2, {"weights": 2})
    newest.write_bytes(corrupt(newest.read_bytes()))
    assert store.latest("hst-v1", TENANT)["steps"] == 1


def test_models_restored_from_snapshots_score_like_the_saved_ones(store):
    saved = trained()
    decider(store=store).snapshot(TENANT, saved)
    restored = decider(store=store).models_for(TENANT, None)
    assert restored.steps == saved.steps and restored.labels_seen == saved.labels_seen > 0
    assert restored.models[CONFIG.anomaly] is not saved.models[CONFIG.anomaly]
    assert probe(restored) == probe(saved)


@pytest.mark.parametrize("shadow_snapshot_steps", [None, 77])
def test_a_newly_configured_shadow_joins_the_stored_live_models(store, shadow_snapshot_steps):
    stored = trained()
    if shadow_snapshot_steps is not None:
        store.save("hst-v2", TENANT, shadow_snapshot_steps, trained(ModelConfig(anomaly="hst-v2")).models["hst-v2"])
    config = ModelConfig(shadow="hst-v2")
    models = decider(config, store).models_for(TENANT, stored)
    assert sorted(models.models) == sorted(config.versions())
    assert all(models.models[v] is stored.models[v] for v in (config.anomaly, config.supervised))
    assert models.labels_seen == stored.labels_seen
    assert models.steps["hst-v2"] == (shadow_snapshot_steps or 0)
    # Retiring the shadow again drops it and still keeps the live models.
    retired = decider(CONFIG, store).models_for(TENANT, models)
    assert sorted(retired.models) == sorted(CONFIG.versions())
    assert retired.models[CONFIG.supervised] is stored.models[CONFIG.supervised]


@pytest.mark.parametrize("key", ["t/../x", "../../etc", "..", ".", "a\\..\\b", "t:1"])
def test_a_key_never_leads_outside_its_own_directory_under_the_root(store, key):
    path = store.save("hst-v1", key, 1, {"weights": key}).resolve()
    assert path.parent.parent == (store.root / "hst-v1").resolve()
    assert store.latest("hst-v1", key)["model"] == {"weights": key}


def test_distinct_tenants_never_share_snapshots(store):
    keys = ["a@b", "a_b", "a/b", "a%40b", "a.b"]   # "a@b" and "a_b" are both valid tenant ids
    for key in keys:
        store.save("hst-v1", key, 1, key)
    assert [store.latest("hst-v1", key)["model"] for key in keys] == keys


# --- 6. configuration -----------------------------------------------------------------------

@pytest.mark.parametrize("fields, error", [
    (dict(anomaly="hst-v9"), "unknown model version 'hst-v9' for anomaly"),
    (dict(shadow="logreg-v0"), "unknown model version 'logreg-v0' for shadow"),
    (dict(anomaly="logreg-v1"), "'logreg-v1' is a supervised model, not anomaly"),
    (dict(supervised="hst-v2"), "'hst-v2' is a anomaly model, not supervised"),
])
def test_a_config_refuses_unknown_versions_and_versions_in_the_wrong_role(fields, error):
    with pytest.raises(ValueError, match=error):
        ModelConfig(**fields)


# --- 7. model inputs ------------------------------------------------------------------------

def test_model_inputs_are_bounded_and_missing_or_negative_values_count_as_zero():
    rng = random.Random(5)
    for _ in range(200):
        row = {name: rng.choice([None, 0, -rng.uniform(0, 1e6), rng.uniform(0, 1e7)]) for name in MODEL_INPUTS}
        vector = model_vector(row)
        assert vector.keys() == MODEL_INPUTS.keys()
        assert all(0.0 <= value <= 1.0 for value in vector.values())
        assert all(vector[name] == 0.0 for name, value in row.items() if value is None or value <= 0)
    assert model_vector({}) == dict.fromkeys(MODEL_INPUTS, 0.0)


def test_the_amount_input_grows_with_the_amount_up_to_its_cap():
    cap = MODEL_INPUTS["amount_usd"]
    amounts = [0.0, 0.01, 0.5, 1.0, 10.0, 99.99, 100.0, 1000.0, cap - 1, cap, cap * 2, 1e9]
    values = [model_vector({"amount_usd": amount})["amount_usd"] for amount in amounts]
    below_cap = values[:amounts.index(cap) + 1]
    assert all(a < b for a, b in zip(below_cap, below_cap[1:]))
    assert values[amounts.index(cap):] == [1.0, 1.0, 1.0]


def test_alerts_of_one_customer_become_one_incident_updated_after_each():
    from udfs.incidents import IncidentBook, incident_id

    book = IncidentBook({}, {}, window_ms=3600_000)
    models = ModelState.fresh(CONFIG)
    batches = [[pay("e1", NOW_MS, user="u7"), hit("card_testing", 0.95, "e1", NOW_MS, ("card", "c7"))],
               [pay("e2", NOW_MS + 60_000, user="u7"), hit("velocity", 0.7, "e2", NOW_MS + 60_000, ("device", "d7"))],
               [pay("e3", NOW_MS + 120_000, user="u8")]]  # no hit, low risk: no alert, no incident
    rows = []
    for batch in batches:
        records = decider().decide(TENANT, models, batch, {}, book)
        rows += [dict(zip(OUTPUT_FIELDS, record)) for record in records]
    incidents = [r for r in rows if r["output"] == "incident"]
    alerts = [r for r in rows if r["output"] == "alert"]
    assert [a["event_id"] for a in alerts] == ["e1", "e2"]
    opened = incident_id(TENANT, alerts[0]["alert_id"])
    assert [(i["alert_id"], i["alert_count"], i["status"]) for i in incidents] == [(opened, 1, "open"), (opened, 2, "open")]
    latest = incidents[-1]
    assert latest["alert_ids"] == [a["alert_id"] for a in alerts]
    assert latest["reason_codes"] == ["card_testing", "velocity"] and latest["fraud_pattern"] == "card_testing"
    assert set(latest["entities"]) == {"card:c7", "user:u7", "device:d7"}
    assert (latest["first_seen"], latest["event_time"], latest["severity"]) == (NOW_MS, NOW_MS + 60_000, "critical")
    # decisions carry no incident fields
    assert all(r["alert_count"] is None and r["entities"] == [] for r in rows if r["output"] != "incident")
