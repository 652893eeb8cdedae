package vigil.flink.functions;

import java.math.BigDecimal;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.AggregateFunction;
import org.apache.flink.types.Row;

/**
 * HOUR_FEATURES(time, event_type, amount_usd, user_id, device_id, card_fingerprint, ip, country,
 * latitude, longitude): the real-time features of one entity over its last hour, as an aggregate
 * for an unbounded OVER window (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) partitioned
 * by the entity (definitions: udfs/fraud_features.py). ROWS: each event's value is read right
 * after it is added, so it is "as of this event" even among events of the same millisecond
 * (which Flink orders as they arrived).
 *
 * <p>Why not a RANGE 1-hour OVER: Flink keeps every row of the hour and, on each timer, walks
 * all of them to retract the expired ones, so the cost of an event grows with its entity's
 * traffic; a busy merchant holds millions of rows per hour. Here the hour is the current minute
 * and the 59 before it: per-minute counters and exact sums (BigDecimal, so a replay in another
 * order gives the same bits), and for each distinct-count dimension the minute each value was
 * last seen. Cost per event is constant (amortised: stale values are swept when they outnumber
 * the live ones), state is bounded by the entity's distinct values in one hour, not its rows.
 *
 * <p>Events normally arrive in time order (event-time OVER). In processing time (the
 * low-latency path) a late event still counts in its own minute if that minute is in the hour.
 * The accumulator is RAW: on the heap state backend it stays a Java object between events
 * (no conversion per event); it is serialised by checkpoints (and by RocksDB on each access) with
 * AccumulatorSerializers, not Kryo.
 */
@FunctionHint(
        input = {
            @DataTypeHint("TIMESTAMP(3)"), @DataTypeHint("STRING"), @DataTypeHint("DOUBLE"),
            @DataTypeHint("STRING"), @DataTypeHint("STRING"), @DataTypeHint("STRING"),
            @DataTypeHint("STRING"), @DataTypeHint("STRING"), @DataTypeHint("DOUBLE"), @DataTypeHint("DOUBLE")
        },
        accumulator = @DataTypeHint(value = "RAW", bridgedTo = HourFeatures.Hour.class,
                rawSerializer = AccumulatorSerializers.HourSerializer.class),
        output = @DataTypeHint("ROW<" + HourFeatures.FIELDS + ">"))
public final class HourFeatures extends AggregateFunction<Row, HourFeatures.Hour> {

    /** The output's fields (UserActivity's output starts with them). */
    static final String FIELDS = "events_1h BIGINT, payments_1h BIGINT, amount_usd_1h DOUBLE, log_usd_sum DOUBLE,"
            + " log_usd_sq_sum DOUBLE, distinct_users_1h BIGINT, distinct_devices_1h BIGINT,"
            + " distinct_cards_1h BIGINT, distinct_ips_1h BIGINT, distinct_countries_1h BIGINT,"
            + " prev_event_time TIMESTAMP(3), prev_latitude DOUBLE, prev_longitude DOUBLE";

    static final long MINUTE_MS = 60_000L;
    static final int MINUTES = 60;
    static final int DIMENSIONS = 5; // users, devices, cards, ips, countries
    static final double MIN_USD = 0.01;
    /** How long an entity's previous event is remembered (udfs/fraud_features.py: RETAIN_MS). */
    static final long RETAIN_MS = 24 * 3_600_000L;
    static final long HOUR_MS = MINUTES * MINUTE_MS;

    /** One minute of an entity's events. */
    public static final class Minute {
        public long minute;
        public long events;
        public long payments;
        public BigDecimal amountUsd = BigDecimal.ZERO;
        public BigDecimal logUsd = BigDecimal.ZERO;
        public BigDecimal logUsdSquared = BigDecimal.ZERO;
        /** Per dimension: values whose newest sighting is in this minute. */
        public long[] newest = new long[DIMENSIONS];

        public Minute() {}

        Minute(long minute) {
            this.minute = minute;
        }
    }

    /** The accumulator: the minutes of the hour, running totals over them, the last events. */
    public static final class Hour {
        public long newestMinute = Long.MIN_VALUE;
        public ArrayList<Minute> minutes = new ArrayList<>(); // ascending, all within the hour
        public long events;
        public long payments;
        public BigDecimal amountUsd = BigDecimal.ZERO;
        public BigDecimal logUsd = BigDecimal.ZERO;
        public BigDecimal logUsdSquared = BigDecimal.ZERO;
        public long[] distinct = new long[DIMENSIONS];
        public ArrayList<HashMap<String, Long>> lastSeenMinute = new ArrayList<>();
        public boolean hasLast;
        public long lastMs;
        public Double lastLatitude;
        public Double lastLongitude;
        public boolean hasPrevious;
        public long previousMs;
        public Double previousLatitude;
        public Double previousLongitude;

        public Hour() {
            for (int d = 0; d < DIMENSIONS; d++) {
                lastSeenMinute.add(new HashMap<>());
            }
        }
    }

    @Override
    public Hour createAccumulator() {
        return new Hour();
    }

    public void accumulate(Hour hour, LocalDateTime time, String eventType, Double amountUsd, String userId,
            String deviceId, String cardFingerprint, String ip, String country, Double latitude, Double longitude) {
        if (time != null) {
            add(hour, epochMs(time), eventType, amountUsd, new String[] {userId, deviceId, cardFingerprint, ip, country},
                    latitude, longitude);
        }
    }

    static long epochMs(LocalDateTime time) {
        return time.toInstant(ZoneOffset.UTC).toEpochMilli();
    }

    static LocalDateTime timeOf(long ms) {
        return LocalDateTime.ofEpochSecond(Math.floorDiv(ms, 1000L), (int) Math.floorMod(ms, 1000L) * 1_000_000,
                ZoneOffset.UTC);
    }

    /**
     * One event into the hour; `values` are its user, device, card, ip and country. An entity quiet
     * for more than RETAIN_MS starts afresh: its previous event is forgotten too (so the state of a
     * quiet entity can go, HourFeaturesProcess, and the definition does not depend on when it went).
     */
    static void add(Hour hour, long ms, String eventType, Double amountUsd, String[] values, Double latitude,
            Double longitude) {
        if (hour.hasLast && ms - hour.lastMs > RETAIN_MS) {
            forget(hour);
        }
        long minute = Math.floorDiv(ms, MINUTE_MS);
        if (minute > hour.newestMinute) {
            advance(hour, minute);
        }
        if (minute > hour.newestMinute - MINUTES) {
            Minute bucket = bucket(hour, minute);
            bucket.events++;
            hour.events++;
            if ("payment_attempt".equals(eventType)) {
                addPayment(hour, bucket, amountUsd == null ? 0.0 : amountUsd);
            }
            for (int d = 0; d < DIMENSIONS; d++) {
                if (values[d] != null) {
                    see(hour, d, values[d], bucket);
                }
            }
        }
        remember(hour, ms, latitude, longitude);
    }

    private static void addPayment(Hour hour, Minute bucket, double amountUsd) {
        BigDecimal amount = new BigDecimal(amountUsd);
        double ln = Math.log(Math.max(amountUsd, MIN_USD));
        BigDecimal log = new BigDecimal(ln);
        BigDecimal squared = new BigDecimal(ln * ln);
        bucket.payments++;
        bucket.amountUsd = bucket.amountUsd.add(amount);
        bucket.logUsd = bucket.logUsd.add(log);
        bucket.logUsdSquared = bucket.logUsdSquared.add(squared);
        hour.payments++;
        hour.amountUsd = hour.amountUsd.add(amount);
        hour.logUsd = hour.logUsd.add(log);
        hour.logUsdSquared = hour.logUsdSquared.add(squared);
    }

    /** The newest minute moves: minutes that left the hour leave the totals. */
    private static void advance(Hour hour, long minute) {
        hour.newestMinute = minute;
        long oldest = minute - MINUTES + 1;
        Iterator<Minute> it = hour.minutes.iterator();
        while (it.hasNext()) {
            Minute m = it.next();
            if (m.minute >= oldest) {
                break;
            }
            hour.events -= m.events;
            hour.payments -= m.payments;
            hour.amountUsd = hour.amountUsd.subtract(m.amountUsd);
            hour.logUsd = hour.logUsd.subtract(m.logUsd);
            hour.logUsdSquared = hour.logUsdSquared.subtract(m.logUsdSquared);
            for (int d = 0; d < DIMENSIONS; d++) {
                hour.distinct[d] -= m.newest[d];
            }
            it.remove();
        }
        for (int d = 0; d < DIMENSIONS; d++) {
            HashMap<String, Long> seen = hour.lastSeenMinute.get(d);
            if (seen.size() > 2 * hour.distinct[d] + 64) {
                seen.values().removeIf(m -> m < oldest);
            }
        }
    }

    /** Everything of the hour dropped, the last events kept: once no event can count in it. */
    static void compact(Hour hour) {
        hour.minutes.clear();
        hour.events = 0;
        hour.payments = 0;
        hour.amountUsd = BigDecimal.ZERO;
        hour.logUsd = BigDecimal.ZERO;
        hour.logUsdSquared = BigDecimal.ZERO;
        for (int d = 0; d < DIMENSIONS; d++) {
            hour.distinct[d] = 0;
            hour.lastSeenMinute.get(d).clear();
        }
    }

    /** The entity as if never seen. */
    static void forget(Hour hour) {
        compact(hour);
        hour.newestMinute = Long.MIN_VALUE;
        hour.hasLast = false;
        hour.lastLatitude = null;
        hour.lastLongitude = null;
        hour.hasPrevious = false;
        hour.previousLatitude = null;
        hour.previousLongitude = null;
    }

    private static Minute bucket(Hour hour, long minute) {
        ArrayList<Minute> minutes = hour.minutes;
        int i = minutes.size();
        while (i > 0 && minutes.get(i - 1).minute > minute) {
            i--;
        }
        if (i > 0 && minutes.get(i - 1).minute == minute) {
            return minutes.get(i - 1);
        }
        Minute created = new Minute(minute);
        minutes.add(i, created);
        return created;
    }

    private static Minute find(Hour hour, long minute) {
        for (int i = hour.minutes.size() - 1; i >= 0; i--) {
            Minute m = hour.minutes.get(i);
            if (m.minute == minute) {
                return m;
            }
            if (m.minute < minute) {
                return null;
            }
        }
        return null;
    }

    /** A value seen in `bucket`: it counts in the minute of its newest sighting only. */
    private static void see(Hour hour, int dimension, String value, Minute bucket) {
        HashMap<String, Long> seen = hour.lastSeenMinute.get(dimension);
        Long before = seen.get(value);
        if (before != null && before >= bucket.minute) {
            return; // already counted in this minute, or in a newer one (a late event)
        }
        seen.put(value, bucket.minute);
        Minute previous = before == null ? null : find(hour, before);
        if (previous != null) {
            previous.newest[dimension]--;
        } else {
            hour.distinct[dimension]++;
        }
        bucket.newest[dimension]++;
    }

    /** The event read before this one becomes the previous event. */
    private static void remember(Hour hour, long ms, Double latitude, Double longitude) {
        hour.hasPrevious = hour.hasLast;
        hour.previousMs = hour.lastMs;
        hour.previousLatitude = hour.lastLatitude;
        hour.previousLongitude = hour.lastLongitude;
        hour.hasLast = true;
        hour.lastMs = ms;
        hour.lastLatitude = latitude;
        hour.lastLongitude = longitude;
    }

    @Override
    public Row getValue(Hour hour) {
        return Row.of(values(hour));
    }

    /** The output fields, in the order of the declared ROW. */
    static Object[] values(Hour hour) {
        return new Object[] {
            hour.events, hour.payments, hour.amountUsd.doubleValue(), hour.logUsd.doubleValue(),
            hour.logUsdSquared.doubleValue(), hour.distinct[0], hour.distinct[1], hour.distinct[2],
            hour.distinct[3], hour.distinct[4],
            hour.hasPrevious ? timeOf(hour.previousMs) : null,
            hour.hasPrevious ? hour.previousLatitude : null,
            hour.hasPrevious ? hour.previousLongitude : null
        };
    }
}
