package vigil.flink.functions;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.api.dataview.MapView;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;

/**
 * USER_ACTIVITY_PROCESS(input => TABLE t PARTITION BY (tenant_id, user_id), on_time =>
 * DESCRIPTOR(event_time)): everything the fraud job keeps per user (UserActivity) as of each of
 * the user's events, in event-time order (sql/queries/fraud_events.sql). Output: the partition
 * keys, the input's PASSED columns, `a` (UserActivity's fields) and `rowtime`.
 *
 * <p>State per user, bounded by event time (EventTimeOrder): the hour is dropped once the
 * watermark passes the newest event's minute plus an hour, the rest (devices and countries used,
 * the last place) once it passes the newest event plus UserActivity.RETAIN_MS (30 days).
 */
@DataTypeHint("ROW<" + UserActivityProcess.PASSED + ", a ROW<" + UserActivity.FIELDS + ">>")
public final class UserActivityProcess extends ProcessTableFunction<Row> {

    static final String PASSED = "merchant_id STRING, event_id STRING, event_type STRING, status STRING,"
            + " device_id STRING, ip STRING, card_fingerprint STRING, country STRING, latitude DOUBLE,"
            + " longitude DOUBLE, amount_usd DOUBLE, appended_at TIMESTAMP_LTZ(3), default_key STRING";
    /** What is held of a row until the watermark: the passed columns and the user (a partition key). */
    static final String HELD = PASSED + ", user_id STRING";
    private static final String[] NAMES = EventTimeOrder.fieldNames(HELD);
    private static final String ACTIVITY = "activity";

    public void eval(Context ctx,
            @StateHint(name = EventTimeOrder.CLEANUP, ttl = EventTimeOrder.NO_TTL) EventTimeOrder.Cleanup cleanup,
            @StateHint(name = ACTIVITY, ttl = EventTimeOrder.NO_TTL,
                    type = @DataTypeHint("MAP<INT, " + AccumulatorSerializers.ACTIVITY_TYPE + ">"))
                    MapView<Integer, UserActivity.Activity> activities,
            @StateHint(name = EventTimeOrder.PENDING, ttl = EventTimeOrder.NO_TTL,
                    type = @DataTypeHint("MAP<BIGINT, ARRAY<ROW<" + HELD + ">>>"))
                    MapView<Long, Row[]> pending,
            @ArgumentHint(name = "input", value = {ArgumentTrait.SET_SEMANTIC_TABLE, ArgumentTrait.REQUIRE_ON_TIME})
                    Row input) throws Exception {
        EventTimeOrder.hold(ctx, pending, EventTimeOrder.select(input, NAMES));
    }

    public void onTimer(OnTimerContext ctx, EventTimeOrder.Cleanup cleanup,
            MapView<Integer, UserActivity.Activity> activities, MapView<Long, Row[]> pending) throws Exception {
        if (EventTimeOrder.cleanedUp(ctx, activities, ACTIVITY, kept -> HourFeatures.compact(kept.hour))) {
            return;
        }
        long ms = ctx.timeContext(Long.class).time();
        UserActivity.Activity activity = activities.get(EventTimeOrder.ONLY);
        if (activity == null) {
            activity = new UserActivity.Activity();
        }
        for (Row row : EventTimeOrder.release(ctx, pending)) {
            // HELD: 0 merchant, 1 event id, 2 type, 3 status, 4 device, 5 ip, 6 card, 7 country,
            // 8 latitude, 9 longitude, 10 amount_usd, 11 appended_at, 12 default_key, 13 user
            UserActivity.add(activity, ms, (String) row.getField(2), (Double) row.getField(10),
                    (String) row.getField(13), (String) row.getField(4), (String) row.getField(6),
                    (String) row.getField(5), (String) row.getField(7), (Double) row.getField(8),
                    (Double) row.getField(9), (String) row.getField(1));
            collect(EventTimeOrder.output(row, NAMES.length - 1, UserActivity.values(activity)));
        }
        activities.put(EventTimeOrder.ONLY, activity);
        EventTimeOrder.keepTimers(ctx, cleanup, activity.hour.lastMs, UserActivity.RETAIN_MS);
    }
}
