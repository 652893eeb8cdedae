package vigil.flink.functions;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.api.dataview.MapView;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;

/**
 * PAYMENT_VELOCITY_PROCESS(input => TABLE t PARTITION BY (tenant_id, entity_id), on_time =>
 * DESCRIPTOR(event_time)): an entity's payments in the last minute, ten minutes and hour
 * (PaymentVelocity) as of each payment, in event-time order (sql/queries/fraud_velocity.sql).
 * Output: the partition keys, the input's PASSED columns, `v` and `rowtime`.
 *
 * <p>State per entity: the times of its last hour, dropped once the watermark passes its newest
 * payment plus an hour (EventTimeOrder).
 */
@DataTypeHint("ROW<" + PaymentVelocityProcess.PASSED + ", v ROW<" + PaymentVelocity.FIELDS + ">>")
public final class PaymentVelocityProcess extends ProcessTableFunction<Row> {

    static final String PASSED = "event_id STRING, velocity_enabled BOOLEAN, velocity_1m INT, velocity_10m INT,"
            + " velocity_1h INT, rules_effective_from TIMESTAMP(3), appended_at TIMESTAMP_LTZ(3)";
    private static final String[] NAMES = EventTimeOrder.fieldNames(PASSED);
    private static final String TIMES = "times";
    private static final long RETAIN_MS = PaymentVelocity.WINDOWS_MS[PaymentVelocity.WINDOWS_MS.length - 1];

    public void eval(Context ctx,
            @StateHint(name = EventTimeOrder.CLEANUP, ttl = EventTimeOrder.NO_TTL) EventTimeOrder.Cleanup cleanup,
            @StateHint(name = TIMES, ttl = EventTimeOrder.NO_TTL,
                    type = @DataTypeHint("MAP<INT, " + AccumulatorSerializers.TIMES_TYPE + ">"))
                    MapView<Integer, PaymentVelocity.Times> times,
            @StateHint(name = EventTimeOrder.PENDING, ttl = EventTimeOrder.NO_TTL,
                    type = @DataTypeHint("MAP<BIGINT, ARRAY<ROW<" + PASSED + ">>>"))
                    MapView<Long, Row[]> pending,
            @ArgumentHint(name = "input", value = {ArgumentTrait.SET_SEMANTIC_TABLE, ArgumentTrait.REQUIRE_ON_TIME})
                    Row input) throws Exception {
        EventTimeOrder.hold(ctx, pending, EventTimeOrder.select(input, NAMES));
    }

    public void onTimer(OnTimerContext ctx, EventTimeOrder.Cleanup cleanup,
            MapView<Integer, PaymentVelocity.Times> times, MapView<Long, Row[]> pending) throws Exception {
        if (EventTimeOrder.cleanedUp(ctx, times, TIMES, null)) {
            return;
        }
        long ms = ctx.timeContext(Long.class).time();
        PaymentVelocity.Times kept = times.get(EventTimeOrder.ONLY);
        if (kept == null) {
            kept = new PaymentVelocity.Times();
        }
        for (Row row : EventTimeOrder.release(ctx, pending)) {
            PaymentVelocity.add(kept, ms);
            collect(EventTimeOrder.output(row, NAMES.length, PaymentVelocity.values(kept)));
        }
        times.put(EventTimeOrder.ONLY, kept);
        cleanup.forgetAt = EventTimeOrder.keepTimer(ctx, EventTimeOrder.FORGET, cleanup.forgetAt, ms, RETAIN_MS);
    }
}
