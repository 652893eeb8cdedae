package vigil.flink.functions;

import java.util.Arrays;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.AggregateFunction;
import org.apache.flink.types.Row;

/**
 * AMOUNT_HISTORY(log_usd): robust statistics of a customer's previous payments, for the
 * amount-anomaly pattern (sql/queries/fraud_patterns.sql), as an aggregate for an unbounded
 * OVER window (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) partitioned by the customer.
 *
 * <p>Each row gets, for the customer's last {@link #HISTORY} payments before it (the current
 * one excluded, so a payment is never compared with itself): how many there are, their median
 * their largest, and their spread, 1.4826 times the median absolute deviation (the standard deviation's robust
 * estimate: equal to it for normally distributed values). Why median/MAD rather than mean and
 * standard deviation: one earlier outlier moves a mean and inflates a deviation for the next 20
 * payments, and a customer whose amounts always varied widely has a wide spread, so a purchase
 * a few times their median is not an anomaly for them.
 *
 * <p>State per customer: the last {@value #HISTORY} values (a ring), not the window's rows.
 * Non-finite inputs are ignored. The accumulator is RAW with a compact serializer
 * (AccumulatorSerializers), as the other feature aggregates.
 */
@FunctionHint(
        input = @DataTypeHint("DOUBLE"),
        accumulator = @DataTypeHint(value = "RAW", bridgedTo = AmountHistory.Payments.class,
                rawSerializer = AccumulatorSerializers.PaymentsSerializer.class),
        output = @DataTypeHint("ROW<history INT, median_log DOUBLE, spread_log DOUBLE, max_log DOUBLE>"))
public final class AmountHistory extends AggregateFunction<Row, AmountHistory.Payments> {

    /** Payments compared against (the previous 20, as the mean/deviation version had). */
    public static final int HISTORY = 20;
    /** MAD to standard deviation for normally distributed values. */
    static final double MAD_TO_SIGMA = 1.4826;

    /** The customer's last HISTORY + 1 values, oldest first in ring order; the newest is the
     * current row's. */
    public static final class Payments {
        final double[] ring = new double[HISTORY + 1];
        int size;
        int next;

        void add(double value) {
            ring[next] = value;
            next = (next + 1) % ring.length;
            size = Math.min(size + 1, ring.length);
        }

        /** The values before the newest, oldest first. */
        double[] previous() {
            int n = Math.max(0, size - 1);
            double[] out = new double[n];
            int oldest = (next - size + ring.length) % ring.length;
            for (int i = 0; i < n; i++) {
                out[i] = ring[(oldest + i) % ring.length];
            }
            return out;
        }

        /** All values, oldest first (the serialised form). */
        double[] all() {
            double[] out = new double[size];
            int oldest = (next - size + ring.length) % ring.length;
            for (int i = 0; i < size; i++) {
                out[i] = ring[(oldest + i) % ring.length];
            }
            return out;
        }
    }

    @Override
    public Payments createAccumulator() {
        return new Payments();
    }

    public void accumulate(Payments acc, Double logUsd) {
        if (logUsd != null && Double.isFinite(logUsd)) {
            acc.add(logUsd);
        }
    }

    @Override
    public Row getValue(Payments acc) {
        double[] previous = acc.previous();
        if (previous.length == 0) {
            return Row.of(0, null, null, null);
        }
        double median = median(previous);   // sorts `previous`: its largest is last
        double max = previous[previous.length - 1];
        double[] deviations = new double[previous.length];
        for (int i = 0; i < previous.length; i++) {
            deviations[i] = Math.abs(previous[i] - median);
        }
        return Row.of(previous.length, median, MAD_TO_SIGMA * median(deviations), max);
    }

    /** Median of `values` (sorted in place). */
    static double median(double[] values) {
        Arrays.sort(values);
        int mid = values.length / 2;
        return values.length % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
    }
}
