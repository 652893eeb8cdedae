package vigil.flink.functions;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * count_decision_latency(path, latency_ms) -> latency_ms: counts one decision in
 * vigil_decision_latency_ms_bucket{path, le_ms}, cumulative like a Prometheus histogram's buckets
 * (in every bucket whose bound is at or above the latency, and in "inf"). Called where the fast
 * path's decisions are written (jobs/fraud_sql.fast_decisions_output_sql); the exact path counts
 * the same series in its Python process function (udfs/decision_metrics.py), whose metrics are
 * reported. The fast path decides in a Python scalar function, whose metric group is not
 * reported in thread mode: hence this function.
 *
 * <p>BOUNDS_MS must equal udfs/decision_metrics.LATENCY_BOUNDS_MS (a unit test compares them).
 * Labels are bounded: paths other than fast/exact count as "other", 11 buckets each. A null
 * latency (append time unknown) is not counted; a negative one (clocks apart) counts everywhere.
 */
public final class CountDecisionLatency extends ScalarFunction {
    static final long[] BOUNDS_MS = {50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000};
    static final Set<String> PATHS = Set.of("fast", "exact");

    private transient MetricGroup group;
    private transient Map<String, Counter[]> buckets;

    @Override
    public void open(FunctionContext context) throws Exception {
        group = context.getMetricGroup();
        buckets = new HashMap<>();
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }

    /** Index of the smallest bound at or above `latencyMs` (BOUNDS_MS.length: "inf" alone). */
    static int firstBucket(long latencyMs) {
        int found = Arrays.binarySearch(BOUNDS_MS, latencyMs);
        return found >= 0 ? found : -found - 1;
    }

    // All of a path's buckets at once, at its first decision: every series exists, zeros included.
    private Counter[] bucketsOf(String path) {
        return buckets.computeIfAbsent(PATHS.contains(path) ? path : LabelledCounters.OTHER, p -> {
            MetricGroup pathGroup = group.addGroup("path", p);
            Counter[] counters = new Counter[BOUNDS_MS.length + 1];
            for (int i = 0; i < BOUNDS_MS.length; i++) {
                counters[i] = pathGroup.addGroup("le_ms", Long.toString(BOUNDS_MS[i]))
                        .counter("vigil_decision_latency_ms_bucket");
            }
            counters[BOUNDS_MS.length] = pathGroup.addGroup("le_ms", "inf").counter("vigil_decision_latency_ms_bucket");
            return counters;
        });
    }

    public Long eval(String path, Long latencyMs) {
        if (latencyMs != null) {
            Counter[] counters = bucketsOf(path);
            for (int i = firstBucket(latencyMs); i < counters.length; i++) {
                counters[i].inc();
            }
        }
        return latencyMs;
    }
}
