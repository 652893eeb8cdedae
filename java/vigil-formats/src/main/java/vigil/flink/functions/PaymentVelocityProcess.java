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
    private static final String FORGET = "forget";
    private static final long RETAIN_MS = PaymentVelocity.WINDOWS_MS[PaymentVelocity.WINDOWS_MS.length - 1];

    /** The entity's payment times and the time of its cleanup timer. */
    public static final class EntityState {
        @DataTypeHint(value = "RAW", bridgedTo = PaymentVelocity.Times.class,
                rawSerializer = AccumulatorSerializers.TimesSerializer.class)
        public PaymentVelocity.Times times;
        public long forgetAt;
    }

    public void eval(Context ctx, @StateHint(name = "entity") EntityState entity,
            @StateHint(name = EventTimeOrder.PENDING, type = @DataTypeHint("MAP<BIGINT, ARRAY<ROW<" + PASSED + ">>>"))
                    MapView<Long, Row[]> pending,
            @ArgumentHint(name = "input", value = {ArgumentTrait.SET_SEMANTIC_TABLE, ArgumentTrait.REQUIRE_ON_TIME})
                    Row input) throws Exception {
        EventTimeOrder.hold(ctx, pending, EventTimeOrder.select(input, NAMES));
    }

    public void onTimer(OnTimerContext ctx, EntityState entity, MapView<Long, Row[]> pending) throws Exception {
        if (FORGET.equals(ctx.currentTimer())) {
            ctx.clearState("entity");
            return;
        }
        long ms = ctx.timeContext(Long.class).time();
        if (entity.times == null) {
            entity.times = new PaymentVelocity.Times();
        }
        for (Row row : EventTimeOrder.release(ctx, pending)) {
            PaymentVelocity.add(entity.times, ms);
            collect(EventTimeOrder.output(row, NAMES.length, PaymentVelocity.values(entity.times)));
        }
        entity.forgetAt = EventTimeOrder.keepTimer(ctx, FORGET, entity.forgetAt, ms, RETAIN_MS);
    }
}
