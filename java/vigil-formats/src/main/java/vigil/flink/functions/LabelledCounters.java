package vigil.flink.functions;

import java.util.HashMap;
import java.util.Map;
import java.util.Set;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;

/**
 * One metric's counters by the value of one label, each registered on first use: the fraud job's
 * vigil_rules_refused{reason} and vigil_internal_errors{function} (CountRuleRefusal,
 * CountInternalError). Counted in Java for the reason TenantCounters gives: in thread mode the
 * metric groups of Python scalar functions are never reported.
 *
 * <p>The label set stays bounded whatever the rows hold: a value outside `known` (or, with no
 * `known` set, beyond the first `capacity` distinct values) is counted as "other", a null as
 * "unknown".
 */
final class LabelledCounters {
    static final String OTHER = "other";
    static final String UNKNOWN = "unknown";

    private final MetricGroup group;
    private final String labelKey;
    private final String metricName;
    private final Set<String> known;
    private final int capacity;
    private final Map<String, Counter> counters = new HashMap<>();

    LabelledCounters(MetricGroup group, String labelKey, String metricName, Set<String> known, int capacity) {
        this.group = group;
        this.labelKey = labelKey;
        this.metricName = metricName;
        this.known = known;
        this.capacity = capacity;
    }

    String label(String value) {
        if (value == null) {
            return UNKNOWN;
        }
        if (known != null) {
            return known.contains(value) ? value : OTHER;
        }
        return counters.containsKey(value) || counters.size() < capacity ? value : OTHER;
    }

    void inc(String value) {
        counters.computeIfAbsent(label(value), l -> group.addGroup(labelKey, l).counter(metricName)).inc();
    }
}
