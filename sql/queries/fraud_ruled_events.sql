-- The events the fraud patterns test against rules (jobs/fraud_detection.py), each with the
-- parameters in force at its event time: the tenant's row, then the "*" row (fraud_inputs.sql:
-- fraud_rules, default_rules), then the defaults compiled in from vigil/fraud_rules.py.
-- Inputs: user_activity (fraud_events.sql). Output: ruled_events_query, which the job plans once
-- and registers as ruled_events (plan_once). Every pattern reads that one joined stream: left to
-- itself, the planner pushed each pattern's columns and filters into a join of its own, 19 pairs
-- of temporal joins each buffering its rows until the watermark (ADR 0007).

CREATE TEMPORARY VIEW account_history AS
SELECT tenant_id, user_id, event_id, event_time, event_type, status, device_id, ip, card_fingerprint, country,
       amount_usd, appended_at, default_key, a.device_uses AS device_uses, a.country_uses AS country_uses
FROM user_activity;

-- The events some pattern tests against the tenant's rules: payments, logins, password changes,
-- checkouts, refunds, chargebacks and approved payment results (about a fifth of the traffic;
-- page views and searches never reach the rules join, which buffers every row it gets until
-- the watermark passes it). Impossible travel joins its own candidates (ruled_travel_legs).
CREATE TEMPORARY VIEW ruled_events_query AS
SELECT e.*, ${effective_rules},
       COALESCE(t.effective_from, d.effective_from) AS rules_effective_from
FROM (SELECT * FROM account_history
      WHERE event_type IN ('payment_attempt', 'login', 'password_change', 'checkout', 'refund', 'chargeback')
         OR (event_type = 'payment_result' AND status = 'approved')) AS e
LEFT JOIN fraud_rules FOR SYSTEM_TIME AS OF e.event_time AS t ON e.tenant_id = t.tenant_id
LEFT JOIN default_rules FOR SYSTEM_TIME AS OF e.event_time AS d ON e.default_key = d.shard_key;
