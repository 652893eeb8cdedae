package vigil.flink.functions;

import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * count_internal_error(function) -> 'internal_error': counts one record a bug in `function` turned
 * into an `internal_error` dead letter (docs/adr/0006), in vigil_internal_errors{function}, where
 * the job routes it to its dead-letter output (jobs/fraud_sql.fast_path_errors_sql). The Python
 * function only logs its errors: in thread mode its own metric group is never reported.
 *
 * <p>Call sites pass a literal; should one pass row data, the first 16 distinct values keep their
 * label and the rest count as "other". Non-deterministic: a side effect, one call per row.
 */
public final class CountInternalError extends ScalarFunction {
    static final int MAX_FUNCTIONS = 16;

    private transient LabelledCounters errors;

    @Override
    public void open(FunctionContext context) throws Exception {
        errors = new LabelledCounters(context.getMetricGroup(), "function", "vigil_internal_errors", null,
                MAX_FUNCTIONS);
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }

    public String eval(String function) {
        errors.inc(function);
        return "internal_error";
    }
}
