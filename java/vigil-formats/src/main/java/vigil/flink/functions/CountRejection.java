package vigil.flink.functions;

/**
 * count_rejection(reason, tenant) -> reason: counts a rejection decided after validation (late,
 * duplicate) for its tenant (TenantCounters); the record was counted by count_verdict already.
 */
public final class CountRejection extends TenantCounters {
    public String eval(String reason, String tenant) {
        countRejection(reason == null ? "unknown" : reason, label(tenant));
        return reason;
    }
}
