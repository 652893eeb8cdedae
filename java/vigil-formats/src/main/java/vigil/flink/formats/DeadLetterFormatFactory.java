package vigil.flink.formats;

import java.util.Set;

import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.connector.format.DecodingFormat;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.factories.DeserializationFormatFactory;
import org.apache.flink.table.factories.DynamicTableFactory;

/**
 * A decoding format "dlq-X" that reads like format X but never fails on a record: a record X
 * cannot decode becomes a row whose physical columns are null and whose metadata columns
 * {@code error} (what went wrong) and {@code raw} (the record's bytes) are set, so the SQL routes
 * it to a dead-letter topic instead of failing the job (Flink's formats either throw, which
 * restarts the job on the same record forever, or, with ignore-parse-errors, drop it silently).
 *
 * <p>Options are X's own, under the "dlq-X." prefix, e.g. {@code 'value.format' = 'dlq-avro-confluent',
 * 'value.dlq-avro-confluent.url' = '...'}. Declare the metadata in the table:
 * {@code decode_error STRING METADATA FROM 'value.error' VIRTUAL, raw_value BYTES METADATA FROM 'value.raw' VIRTUAL}.
 */
public abstract class DeadLetterFormatFactory implements DeserializationFormatFactory {

    private final DeserializationFormatFactory inner;

    protected DeadLetterFormatFactory(DeserializationFormatFactory inner) {
        this.inner = inner;
    }

    @Override
    public String factoryIdentifier() {
        return "dlq-" + inner.factoryIdentifier();
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return inner.requiredOptions();
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        return inner.optionalOptions();
    }

    @Override
    public Set<ConfigOption<?>> forwardOptions() {
        return inner.forwardOptions();
    }

    @Override
    public DecodingFormat<DeserializationSchema<RowData>> createDecodingFormat(
            DynamicTableFactory.Context context, ReadableConfig formatOptions) {
        return new DeadLetterDecodingFormat(inner.createDecodingFormat(context, formatOptions));
    }
}
