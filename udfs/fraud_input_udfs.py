"""PyFlink adapter of the fraud job's rule reader: vigil/fraud_rules.parse_rule_message as a
Table API scalar function over fraud.rules' raw bytes (sql/queries/fraud_inputs.sql).

`check_rule(key, value, effective_from_ok)` returns ROW<reason, detail, tenant_id, parameters...>:
reason is null for an accepted rule. Integer parameters cross as BIGINT (a null INT result fails
in the JVM in thread mode) and the SQL casts them back; numbers are always floats for DOUBLE.
Metrics: none here. In thread mode PyFlink never reports a scalar function's metric group, so
the job counts vigil_rules_refused{reason} and vigil_internal_errors{function="check_rule"} in
Java where refused rules are routed to its dead-letter output (count_rule_refusal in
sql/queries/fraud_inputs.sql, docs/adr/0005).
"""

from __future__ import annotations

from pyflink.common import Row
from pyflink.table import DataTypes
from pyflink.table.udf import FunctionContext, ScalarFunction, udf

from vigil import fraud_rules
from udfs.guard import InternalErrors

_KIND = fraud_rules.SQL_KINDS  # parameter -> "bool" | "int" | "float"
_FLINK_TYPES = {"bool": DataTypes.BOOLEAN(), "int": DataTypes.BIGINT(), "float": DataTypes.DOUBLE()}
_PYTHON_TYPES = {"bool": bool, "int": int, "float": float}
RULE_VERDICT_TYPE = DataTypes.ROW(
    [DataTypes.FIELD("reason", DataTypes.STRING()), DataTypes.FIELD("detail", DataTypes.STRING()),
     DataTypes.FIELD("tenant_id", DataTypes.STRING())]
    + [DataTypes.FIELD(name, _FLINK_TYPES[_KIND[name]]) for name in fraud_rules.PARAMETERS])
_REFUSED_VALUES = [None] * len(fraud_rules.PARAMETERS)


def rule_fields_sql(alias: str = "r") -> str:
    """The UDF's row as columns, with INT parameters cast back (for fraud_inputs.sql)."""
    columns = [f"{alias}.reason AS reason", f"{alias}.detail AS detail", f"{alias}.tenant_id AS tenant_id"]
    for name in fraud_rules.PARAMETERS:
        kind = fraud_rules.SQL_TYPES[_KIND[name]]
        columns.append(f"CAST({alias}.{name} AS {kind}) AS {name}" if kind == "INT" else f"{alias}.{name} AS {name}")
    return ", ".join(columns)


class CheckRule(ScalarFunction):
    def open(self, function_context: FunctionContext):
        self._errors = InternalErrors("check_rule")  # counted in Java (module docstring); logs here

    def eval(self, key, value, effective_from_ok):
        return self._errors.guard(lambda: self._verdict_row(key, value, effective_from_ok),
                                  lambda detail: Row("internal_error", detail, None, *_REFUSED_VALUES))

    def _verdict_row(self, key, value, effective_from_ok):
        verdict = fraud_rules.parse_rule_message(key, value, bool(effective_from_ok))
        if verdict.reason is not None:
            return Row(verdict.reason, verdict.detail, None, *_REFUSED_VALUES)
        values = [None if verdict.values[name] is None else _PYTHON_TYPES[_KIND[name]](verdict.values[name])
                  for name in fraud_rules.PARAMETERS]
        return Row(None, None, verdict.tenant_id, *values)


def check_rule_udf():
    return udf(CheckRule(), input_types=[DataTypes.BYTES(), DataTypes.BYTES(), DataTypes.BOOLEAN()],
               result_type=RULE_VERDICT_TYPE)
