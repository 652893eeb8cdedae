package vigil.flink.functions;

/**
 * count_verdict(reason, tenant) -> reason: counts one record for its tenant, and its rejection
 * when reason is not NULL (TenantCounters). Called once per validated record.
 */
public final class CountVerdict extends TenantCounters {
    public String eval(String reason, String tenant) {
        String label = label(tenant);
        countRecord(label);
        if (reason != null) {
            countRejection(reason, label);
        }
        return reason;
    }
}
