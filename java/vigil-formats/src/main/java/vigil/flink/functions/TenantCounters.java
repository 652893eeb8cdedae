package vigil.flink.functions;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * The ingest job's per-tenant counters as Flink metrics (what the data-quality alert reads):
 * vigil_ingest_records{tenant} and vigil_ingest_rejected{reason,tenant}.
 *
 * <p>In Java because a Python table function cannot publish metrics in thread mode: PyFlink
 * gives its scalar functions a Beam-backed metric group whose values nothing collects there, so
 * counters registered from Python never reach the reporter (docs/adr/0013).
 *
 * <p>Tenant labels are bounded per subtask, as udfs/metric_labels.py explains: the first
 * `vigil.tenant-label-capacity` tenants (a global job parameter, default 200) get their own
 * series, the rest are "_other", a missing tenant is "_unknown". Non-deterministic: it has a
 * side effect, so the planner calls it once per row and never folds or duplicates it.
 */
public abstract class TenantCounters extends ScalarFunction {
    public static final String CAPACITY_PARAMETER = "vigil.tenant-label-capacity";
    static final String OTHER = "_other";
    static final String UNKNOWN = "_unknown";

    private transient MetricGroup group;
    private transient int capacity;
    private transient Set<String> labelled;
    private transient Map<String, Counter> records;
    private transient Map<String, Counter> rejections;

    @Override
    public void open(FunctionContext context) throws Exception {
        group = context.getMetricGroup();
        capacity = capacity(context);
        labelled = new HashSet<>();
        records = new HashMap<>();
        rejections = new HashMap<>();
    }

    /** The per-subtask tenant label cap: the `vigil.tenant-label-capacity` job parameter, default 200. */
    static int capacity(FunctionContext context) {
        return Integer.parseInt(context.getJobParameter(CAPACITY_PARAMETER, "200").trim());
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }

    final String label(String tenant) {
        if (tenant == null) {
            return UNKNOWN;
        }
        if (labelled.contains(tenant)) {
            return tenant;
        }
        if (labelled.size() < capacity) {
            labelled.add(tenant);
            return tenant;
        }
        return OTHER;
    }

    final void countRecord(String label) {
        records.computeIfAbsent(label, l -> group.addGroup("tenant", l).counter("vigil_ingest_records")).inc();
    }

    final void countRejection(String reason, String label) {
        rejections.computeIfAbsent(reason + '\u0000' + label,
                k -> group.addGroup("reason", reason).addGroup("tenant", label).counter("vigil_ingest_rejected"))
                .inc();
    }
}
