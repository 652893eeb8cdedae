package vigil.flink.functions;


/**
 * How many payments of an entity fell in the last minute, ten minutes and hour, as of each payment
 * and that one included (the velocity pattern: sql/queries/fraud_velocity.sql, through
 * PaymentVelocityProcess). "The last minute" of a payment at t is [t - 1 min, t], the range a
 * RANGE OVER with INTERVAL '1' MINUTE PRECEDING covers.
 *
 * <p>Why: velocity was three RANGE OVER operators per entity (12 in all), each keeping its rows
 * and sorting every payment again. One state keeps the times of the last hour and answers the
 * three windows with two binary searches.
 *
 * <p>Payments at the same millisecond count in the order they were read: each sees a count of
 * its own, so a threshold is met by exactly one payment. (A RANGE window gives all of them the
 * same count, which can step over a threshold and alert on none, or alert twice.)
 */
public final class PaymentVelocity {

    /** The output's fields. */
    static final String FIELDS = "attempts_1m BIGINT, attempts_10m BIGINT, attempts_1h BIGINT";

    private PaymentVelocity() {}

    static final long[] WINDOWS_MS = {60_000L, 600_000L, 3_600_000L};

    /** The times of the rows of the last hour, oldest first, in a ring; counts as of the newest. */
    public static final class Times {
        public long[] ms = new long[8];
        public int head;
        public int size;
        public long[] counts = new long[WINDOWS_MS.length];

        public Times() {}

        long at(int i) {
            return ms[(head + i) % ms.length];
        }

        void dropOlderThan(long bound) {
            while (size > 0 && ms[head] < bound) {
                head = (head + 1) % ms.length;
                size--;
            }
        }

        void append(long time) {
            if (size == ms.length) {
                long[] grown = new long[ms.length * 2];
                for (int i = 0; i < size; i++) {
                    grown[i] = at(i);
                }
                ms = grown;
                head = 0;
            }
            ms[(head + size) % ms.length] = time;
            size++;
        }

        /** How many kept times are >= bound (the times are in order). */
        long atOrAfter(long bound) {
            int low = 0;
            int high = size;
            while (low < high) {
                int mid = (low + high) >>> 1;
                if (at(mid) < bound) {
                    low = mid + 1;
                } else {
                    high = mid;
                }
            }
            return size - low;
        }
    }

    /** One payment at `now` (epoch ms); the counts become those as of it. */
    static void add(Times times, long now) {
        times.dropOlderThan(now - WINDOWS_MS[WINDOWS_MS.length - 1]);
        times.append(now);
        for (int w = 0; w < WINDOWS_MS.length; w++) {
            times.counts[w] = times.atOrAfter(now - WINDOWS_MS[w]);
        }
    }

    static Object[] values(Times times) {
        return new Object[] {times.counts[0], times.counts[1], times.counts[2]};
    }
}
