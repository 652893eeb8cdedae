package vigil.flink.functions;

import java.util.Arrays;
import java.util.function.Consumer;

import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.table.api.DataTypes;

import org.apache.flink.table.api.dataview.MapView;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;

/**
 * What the fraud job's process table functions (HourFeaturesProcess, UserActivityProcess,
 * PaymentVelocityProcess) share: the rows of one partition held until the watermark passes their
 * time and then handed over in event-time order (rows of one millisecond in arrival order), as
 * an event-time OVER window does; and timers that reclaim a quiet partition's state by event time.
 *
 * <p>Why these functions exist: an unbounded OVER window keeps a key's accumulator until the
 * processing-time TTL (table.exec.state.ttl, 30 days for the users' history) expires it, so every
 * card, device and IP seen in the last 30 days of wall-clock time keeps its hour of features, and a
 * replay or a backfill keeps everything it read. Here the state of a key goes when the watermark
 * passes its newest event plus the function's retention: an event-time bound (ADR 0007).
 * The retention is also part of each definition (an entity quiet for longer starts afresh), so the
 * results do not depend on when a timer fired.
 */
final class EventTimeOrder {

    static final String PENDING = "pending";
    static final String CLEANUP = "cleanup";
    static final String COMPACT = "compact";
    static final String FORGET = "forget";
    /**
     * The functions' state has no processing-time TTL: their event-time timers bound it, and
     * Flink's TTL on map state costs a copy of every entry it checks (on the heap backend, a
     * serialisation of the accumulator each time the incremental cleanup visits it).
     */
    static final String NO_TTL = "0 ms";
    /** The one key of a function's accumulator map (see Cleanup). */
    static final Integer ONLY = 0;

    /**
     * When a key's cleanup timers are set (value state: two longs). The accumulator itself lives in
     * a one-entry MapView: Flink 2.2 hashes a PTF's value state after every call to see whether it
     * changed, and hashing a RAW value serialises it, which for a busy merchant's hour cost more
     * than everything else the function does; a map entry is read and written only when asked.
     */
    public static final class Cleanup {
        public long compactAt;
        public long forgetAt;
    }

    private static final Row[] NONE = new Row[0];

    static {
        // The RAW type strings of the state hints must be what the serializers' snapshots print:
        // a stale one fails here, at class load, instead of restoring state with the wrong snapshot.
        requireRawType(AccumulatorSerializers.HOUR_TYPE, HourFeatures.Hour.class,
                AccumulatorSerializers.HourSerializer.INSTANCE);
        requireRawType(AccumulatorSerializers.ACTIVITY_TYPE, UserActivity.Activity.class,
                AccumulatorSerializers.ActivitySerializer.INSTANCE);
        requireRawType(AccumulatorSerializers.TIMES_TYPE, PaymentVelocity.Times.class,
                AccumulatorSerializers.TimesSerializer.INSTANCE);
    }

    private EventTimeOrder() {}

    private static <T> void requireRawType(String declared, Class<T> type, TypeSerializer<T> serializer) {
        String actual = DataTypes.RAW(type, serializer).getLogicalType().asSerializableString();
        if (!actual.equals(declared)) {
            throw new IllegalStateException("a RAW type string in AccumulatorSerializers is stale: it is "
                    + declared + ", the serializer gives " + actual);
        }
    }

    /** The field names of a ROW body such as "a STRING, b DOUBLE" (fields of simple types only). */
    static String[] fieldNames(String rowFields) {
        String[] parts = rowFields.split(",");
        String[] names = new String[parts.length];
        for (int i = 0; i < parts.length; i++) {
            names[i] = parts[i].trim().split("\\s+")[0];
        }
        return names;
    }

    /** `input`'s fields named `names`, in that order: what the function keeps of a row. */
    static Row select(Row input, String[] names) {
        Object[] values = new Object[names.length];
        for (int i = 0; i < names.length; i++) {
            values[i] = input.getField(names[i]);
        }
        return Row.of(values);
    }

    /** Hold `row` until the watermark passes its time (the input row's on_time). */
    static void hold(ProcessTableFunction.Context ctx, MapView<Long, Row[]> pending, Row row) throws Exception {
        ProcessTableFunction.TimeContext<Long> time = ctx.timeContext(Long.class);
        long t = time.time();
        Row[] held = pending.get(t);
        if (held == null) {
            held = new Row[] {row};
            time.registerOnTime(t); // unnamed: one per distinct time, fires when the watermark reaches it
        } else {
            held = Arrays.copyOf(held, held.length + 1);
            held[held.length - 1] = row;
        }
        pending.put(t, held);
    }

    /** The rows held for the time of the firing (unnamed) timer, in arrival order; none left held. */
    static Row[] release(ProcessTableFunction.OnTimerContext ctx, MapView<Long, Row[]> pending) throws Exception {
        long t = ctx.timeContext(Long.class).time();
        Row[] held = pending.get(t);
        if (held == null) {
            return NONE;
        }
        pending.remove(t);
        return held;
    }

    /**
     * Keep the named timer `name` at the first minute boundary after `newestMs + retentionMs`:
     * re-registered at most once a minute of event time per key (each registration replaces the
     * last), not on every row. Returns the time now registered, which the caller keeps in its state.
     */
    static long keepTimer(ProcessTableFunction.OnTimerContext ctx, String name, long registered, long newestMs,
            long retentionMs) {
        long at = (Math.floorDiv(newestMs + retentionMs, HourFeatures.MINUTE_MS) + 1) * HourFeatures.MINUTE_MS;
        if (at != registered) {
            ctx.timeContext(Long.class).registerOnTime(name, at);
        }
        return at;
    }

    /**
     * The two cleanup timers of a key with an hour: COMPACT when the watermark passes the newest
     * event's minute plus an hour (no on-time event can count in that hour any more), FORGET when it
     * passes the newest event plus `retainMs`.
     */
    static void keepTimers(ProcessTableFunction.OnTimerContext ctx, Cleanup cleanup, long newestMs, long retainMs) {
        cleanup.compactAt = keepTimer(ctx, COMPACT, cleanup.compactAt, newestMs,
                HourFeatures.HOUR_MS - HourFeatures.MINUTE_MS);
        cleanup.forgetAt = keepTimer(ctx, FORGET, cleanup.forgetAt, newestMs, retainMs);
    }

    /**
     * Handles the firing timer if it is a cleanup timer, and says so. FORGET drops the key's
     * accumulator (state `name`) and its cleanup times, rows still held stay; COMPACT applies
     * `compact` to the accumulator (a function without COMPACT timers passes null).
     */
    static <A> boolean cleanedUp(ProcessTableFunction.OnTimerContext ctx, MapView<Integer, A> accumulators,
            String name, Consumer<A> compact) throws Exception {
        String timer = ctx.currentTimer();
        if (FORGET.equals(timer)) {
            ctx.clearState(name);
            ctx.clearState(CLEANUP);
            return true;
        }
        if (COMPACT.equals(timer)) {
            A accumulator = accumulators.get(ONLY);
            if (accumulator != null) {
                compact.accept(accumulator);
                accumulators.put(ONLY, accumulator);
            }
            return true;
        }
        return false;
    }

    /** The first `passed` fields of a held row followed by the computed row. */
    static Row output(Row held, int passed, Object[] computed) {
        Object[] values = new Object[passed + 1];
        for (int i = 0; i < passed; i++) {
            values[i] = held.getField(i);
        }
        values[passed] = Row.of(computed);
        return Row.of(values);
    }
}
