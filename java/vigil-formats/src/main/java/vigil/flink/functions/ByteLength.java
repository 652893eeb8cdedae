package vigil.flink.functions;

import org.apache.flink.table.functions.ScalarFunction;

/** BYTE_LENGTH(BYTES) -> INT: the size of a payload (Flink SQL has no length function for BYTES). */
public final class ByteLength extends ScalarFunction {
    public Integer eval(byte[] bytes) {
        return bytes == null ? null : bytes.length;
    }
}
