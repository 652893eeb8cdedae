package vigil.flink.functions;

import java.util.Set;

import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * count_rule_refusal(reason) -> reason: counts one fraud.rules record the job refused, where it
 * is routed to the dead-letter output (sql/queries/fraud_inputs.sql). The reasons of
 * vigil/fraud_rules.parse_rule_message count in vigil_rules_refused{reason} ("other" for any
 * other value); "internal_error" (a bug in check_rule, udfs/fraud_input_udfs.py) counts in
 * vigil_internal_errors{function="check_rule"} instead, as the Python guard counted it.
 * Non-deterministic: a side effect, so the planner calls it once per row.
 */
public final class CountRuleRefusal extends ScalarFunction {
    static final Set<String> REASONS = Set.of("json_parse_error", "invalid_rule");
    static final String INTERNAL_ERROR = "internal_error";

    private transient LabelledCounters refused;
    private transient LabelledCounters internalErrors;

    @Override
    public void open(FunctionContext context) throws Exception {
        refused = new LabelledCounters(context.getMetricGroup(), "reason", "vigil_rules_refused", REASONS, 0);
        internalErrors = new LabelledCounters(context.getMetricGroup(), "function", "vigil_internal_errors",
                Set.of("check_rule"), 0);
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }

    public String eval(String reason) {
        if (INTERNAL_ERROR.equals(reason)) {
            internalErrors.inc("check_rule");
        } else {
            refused.inc(reason);
        }
        return reason;
    }
}
