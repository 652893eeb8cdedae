package vigil.flink.functions;

import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * count_late_event(tenant) -> 'late_event': counts one event of events.clean that reached the
 * fraud job behind its watermark, in vigil_fraud_late_events{tenant}, where the job routes it to
 * its dead-letter output (sql/queries/fraud_inputs.sql). Such an event cannot join the event-time
 * patterns and features; a payment among them is still scored, on its arrival-order features.
 *
 * <p>Tenant labels are bounded as in TenantCounters: the first `vigil.tenant-label-capacity`
 * tenants of a subtask (default 200) get their own series, the rest count as "other".
 * Non-deterministic: a side effect, one call per row.
 */
public final class CountLateEvent extends ScalarFunction {
    private transient LabelledCounters late;

    @Override
    public void open(FunctionContext context) throws Exception {
        late = new LabelledCounters(context.getMetricGroup(), "tenant", "vigil_fraud_late_events", null,
                TenantCounters.capacity(context));
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }

    public String eval(String tenant) {
        late.inc(tenant);
        return "late_event";
    }
}
