package vigil.flink.formats;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.metrics.Counter;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.util.Collector;

/**
 * Decodes with the wrapped format; any failure (or a null value) becomes an error row: physical
 * columns null, metadata "error" = what failed. "raw" is the record's bytes on every row (a
 * reference, not a copy): a record that decodes but that the SQL refuses keeps its bytes too;
 * queries project it away on the good path.
 */
final class DeadLetterDeserializationSchema implements DeserializationSchema<RowData> {

    private static final long serialVersionUID = 1L;
    static final int MAX_ERROR_CHARS = 1000;

    private final DeserializationSchema<RowData> inner;
    private final RowType physicalType;
    private final List<String> metadataKeys;
    private final TypeInformation<RowData> producedType;

    private transient List<RowData.FieldGetter> getters;
    private transient Counter deadLetters;
    private transient Buffer decoded; // the inner format's rows of the current record (reused)

    DeadLetterDeserializationSchema(DeserializationSchema<RowData> inner, LogicalType physicalType,
                                    List<String> metadataKeys, TypeInformation<RowData> producedType) {
        this.inner = inner;
        this.physicalType = (RowType) physicalType;
        this.metadataKeys = new ArrayList<>(metadataKeys);
        this.producedType = producedType;
    }

    @Override
    public void open(InitializationContext context) throws Exception {
        inner.open(context);
        getters = new ArrayList<>();
        for (int i = 0; i < physicalType.getFieldCount(); i++) {
            getters.add(RowData.createFieldGetter(physicalType.getTypeAt(i), i));
        }
        deadLetters = context.getMetricGroup().counter("vigil_undecodable_records");
        decoded = new Buffer();
    }

    @Override
    public RowData deserialize(byte[] message) throws IOException {
        throw new UnsupportedOperationException("use deserialize(byte[], Collector)");
    }

    @Override
    public void deserialize(byte[] message, Collector<RowData> out) throws IOException {
        if (message == null) {
            out.collect(errorRow("null value (a tombstone): no record to decode", null));
            return;
        }
        decoded.rows.clear();
        try {
            inner.deserialize(message, decoded);
        } catch (Throwable t) { // any bytes: a record never fails the job, whatever the decoder throws
            if (t instanceof Error && !(t instanceof StackOverflowError)) {
                throw (Error) t; // out of memory and the like are not the record's fault
            }
            if (isInfrastructureFailure(t)) {
                // The registry is down or refuses us: the record may be fine. Fail, so the job
                // restarts from its checkpoint and retries, instead of dead-lettering valid events.
                throw new IOException("schema registry unavailable, not a bad record: " + describe(t), t);
            }
            out.collect(errorRow(describe(t), message));
            return;
        }
        if (decoded.rows.isEmpty()) {
            // A decoder that skips a record (e.g. json with ignore-parse-errors) must not drop it silently.
            out.collect(errorRow("the format produced no row for this record", message));
        }
        for (RowData row : decoded.rows) {
            out.collect(withMetadata(row, null, message));
        }
    }

    private RowData errorRow(String error, byte[] raw) {
        if (deadLetters != null) {
            deadLetters.inc();
        }
        return withMetadata(null, error, raw);
    }

    private RowData withMetadata(RowData physical, String error, byte[] raw) {
        int arity = physicalType.getFieldCount();
        GenericRowData row = new GenericRowData(arity + metadataKeys.size());
        if (physical != null) {
            row.setRowKind(physical.getRowKind());
            for (int i = 0; i < arity; i++) {
                row.setField(i, getters.get(i).getFieldOrNull(physical));
            }
        }
        for (int i = 0; i < metadataKeys.size(); i++) {
            boolean isError = DeadLetterDecodingFormat.ERROR.equals(metadataKeys.get(i));
            Object value = isError ? (error == null ? null : StringData.fromString(error)) : raw;
            row.setField(arity + i, value);
        }
        return row;
    }

    /**
     * A failure of a dependency rather than of the bytes: the network (connection refused, timeout,
     * unknown host) or a schema registry answer other than "not found" (404: an unknown schema id
     * is the record's fault; 401/403/5xx are ours). The registry client is shaded, so it is
     * recognised by its simple class name and its getStatus().
     */
    static boolean isInfrastructureFailure(Throwable t) {
        for (Throwable cause = t; cause != null; cause = cause.getCause() == cause ? null : cause.getCause()) {
            if (cause instanceof java.net.SocketException || cause instanceof java.net.SocketTimeoutException
                    || cause instanceof java.net.UnknownHostException
                    || cause instanceof java.net.http.HttpTimeoutException) {
                return true;
            }
            if (cause.getClass().getSimpleName().equals("RestClientException")) {
                try {
                    Object status = cause.getClass().getMethod("getStatus").invoke(cause);
                    return !(status instanceof Integer && (Integer) status == 404);
                } catch (ReflectiveOperationException e) {
                    return true;
                }
            }
        }
        return false;
    }

    /** "IOException: Failed to deserialize Avro record. <- EOFException: ..." (cause chain, bounded). */
    static String describe(Throwable t) {
        StringBuilder text = new StringBuilder();
        for (Throwable cause = t; cause != null && text.length() < MAX_ERROR_CHARS; cause = cause.getCause()) {
            if (text.length() > 0) {
                text.append(" <- ");
            }
            String message = cause.getMessage() == null ? "" : cause.getMessage().split("\n", 2)[0];
            text.append(cause.getClass().getSimpleName()).append(": ").append(message);
            if (cause.getCause() == cause) {
                break;
            }
        }
        return text.length() <= MAX_ERROR_CHARS ? text.toString() : text.substring(0, MAX_ERROR_CHARS) + "...";
    }

    /** Collects what the inner format emits for one record, before the rows get their metadata. */
    private static final class Buffer implements Collector<RowData> {
        final List<RowData> rows = new ArrayList<>(1);

        @Override
        public void collect(RowData row) {
            rows.add(row);
        }

        @Override
        public void close() {}
    }

    @Override
    public boolean isEndOfStream(RowData nextElement) {
        return false;
    }

    @Override
    public TypeInformation<RowData> getProducedType() {
        return producedType;
    }
}
