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
    private static final String COMPACT = "compact";
    private static final String FORGET = "forget";

    /** The user's activity and the times of its two cleanup timers. */
    public static final class UserState {
        @DataTypeHint(value = "RAW", bridgedTo = UserActivity.Activity.class,
                rawSerializer = AccumulatorSerializers.ActivitySerializer.class)
        public UserActivity.Activity activity;
        public long compactAt;
        public long forgetAt;
    }

    public void eval(Context ctx, @StateHint(name = "user") UserState user,
            @StateHint(name = EventTimeOrder.PENDING, type = @DataTypeHint("MAP<BIGINT, ARRAY<ROW<" + HELD + ">>>"))
                    MapView<Long, Row[]> pending,
            @ArgumentHint(name = "input", value = {ArgumentTrait.SET_SEMANTIC_TABLE, ArgumentTrait.REQUIRE_ON_TIME})
                    Row input) throws Exception {
        EventTimeOrder.hold(ctx, pending, EventTimeOrder.select(input, NAMES));
    }

    public void onTimer(OnTimerContext ctx, UserState user, MapView<Long, Row[]> pending) throws Exception {
        String timer = ctx.currentTimer();
        if (COMPACT.equals(timer)) {
            if (user.activity != null) {
                HourFeatures.compact(user.activity.hour);
            }
            return;
        }
        if (FORGET.equals(timer)) {
            ctx.clearState("user");
            return;
        }
        long ms = ctx.timeContext(Long.class).time();
        if (user.activity == null) {
            user.activity = new UserActivity.Activity();
        }
        UserActivity.Activity activity = user.activity;
        for (Row row : EventTimeOrder.release(ctx, pending)) {
            // HELD: 0 merchant, 1 event id, 2 type, 3 status, 4 device, 5 ip, 6 card, 7 country,
            // 8 latitude, 9 longitude, 10 amount_usd, 11 appended_at, 12 default_key, 13 user
            UserActivity.add(activity, ms, (String) row.getField(2), (Double) row.getField(10),
                    (String) row.getField(13),
                    (String) row.getField(4), (String) row.getField(6), (String) row.getField(5),
                    (String) row.getField(7), (Double) row.getField(8), (Double) row.getField(9),
                    (String) row.getField(1));
            collect(EventTimeOrder.output(row, NAMES.length - 1, UserActivity.values(activity)));
        }
        user.compactAt = EventTimeOrder.keepTimer(ctx, COMPACT, user.compactAt, activity.hour.lastMs,
                HourFeatures.HOUR_MS - HourFeatures.MINUTE_MS);
        user.forgetAt = EventTimeOrder.keepTimer(ctx, FORGET, user.forgetAt, activity.hour.lastMs,
                UserActivity.RETAIN_MS);
    }
}
