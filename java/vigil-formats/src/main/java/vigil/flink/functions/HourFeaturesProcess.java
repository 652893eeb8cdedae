package vigil.flink.functions;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.api.dataview.MapView;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;

/**
 * HOUR_FEATURES_PROCESS(input => TABLE t PARTITION BY (tenant_id, entity_id), on_time =>
 * DESCRIPTOR(event_time)): an entity's hour features (HourFeatures) as of each of its events, in
 * event-time order, for the cards, devices and merchants (sql/queries/fraud_features.sql).
 * Output: the partition keys, the input's PASSED columns, `h` (HourFeatures' fields) and `rowtime`
 * (the event's time).
 *
 * <p>State per entity, bounded by event time (EventTimeOrder): the hour is dropped once the
 * watermark passes the newest event's minute plus an hour (no on-time event can count in it), the
 * rest (the previous event) once it passes the newest event plus HourFeatures.RETAIN_MS.
 */
@DataTypeHint("ROW<" + HourFeaturesProcess.PASSED + ", h ROW<" + HourFeatures.FIELDS + ">>")
public final class HourFeaturesProcess extends ProcessTableFunction<Row> {

    /** The input columns kept with each row and passed to the output. */
    static final String PASSED = "event_id STRING, event_type STRING, appended_at TIMESTAMP_LTZ(3), amount_usd DOUBLE,"
            + " user_id STRING, device_id STRING, card_fingerprint STRING, ip STRING, country STRING,"
            + " latitude DOUBLE, longitude DOUBLE";
    private static final String[] NAMES = EventTimeOrder.fieldNames(PASSED);
    private static final String HOUR = "hour";

    public void eval(Context ctx,
            @StateHint(name = EventTimeOrder.CLEANUP, ttl = EventTimeOrder.NO_TTL) EventTimeOrder.Cleanup cleanup,
            @StateHint(name = HOUR, ttl = EventTimeOrder.NO_TTL,
                    type = @DataTypeHint("MAP<INT, " + AccumulatorSerializers.HOUR_TYPE + ">"))
                    MapView<Integer, HourFeatures.Hour> hours,
            @StateHint(name = EventTimeOrder.PENDING, ttl = EventTimeOrder.NO_TTL,
                    type = @DataTypeHint("MAP<BIGINT, ARRAY<ROW<" + PASSED + ">>>"))
                    MapView<Long, Row[]> pending,
            @ArgumentHint(name = "input", value = {ArgumentTrait.SET_SEMANTIC_TABLE, ArgumentTrait.REQUIRE_ON_TIME})
                    Row input) throws Exception {
        EventTimeOrder.hold(ctx, pending, EventTimeOrder.select(input, NAMES));
    }

    public void onTimer(OnTimerContext ctx, EventTimeOrder.Cleanup cleanup, MapView<Integer, HourFeatures.Hour> hours,
            MapView<Long, Row[]> pending) throws Exception {
        if (EventTimeOrder.cleanedUp(ctx, hours, HOUR, HourFeatures::compact)) {
            return;
        }
        long ms = ctx.timeContext(Long.class).time();
        HourFeatures.Hour hour = hours.get(EventTimeOrder.ONLY);
        if (hour == null) {
            hour = new HourFeatures.Hour();
        }
        for (Row row : EventTimeOrder.release(ctx, pending)) {
            HourFeatures.add(hour, ms, (String) row.getField(1), (Double) row.getField(3),
                    new String[] {(String) row.getField(4), (String) row.getField(5), (String) row.getField(6),
                        (String) row.getField(7), (String) row.getField(8)},
                    (Double) row.getField(9), (Double) row.getField(10));
            collect(EventTimeOrder.output(row, NAMES.length, HourFeatures.values(hour)));
        }
        hours.put(EventTimeOrder.ONLY, hour);
        EventTimeOrder.keepTimers(ctx, cleanup, hour.lastMs, HourFeatures.RETAIN_MS);
    }
}
