package vigil.flink.formats;

import org.apache.flink.formats.avro.registry.confluent.RegistryAvroFormatFactory;

/** "dlq-avro-confluent": Flink's avro-confluent format that routes undecodable records instead of failing. */
public final class DeadLetterAvroConfluentFormatFactory extends DeadLetterFormatFactory {
    public DeadLetterAvroConfluentFormatFactory() {
        super(new RegistryAvroFormatFactory());
    }
}
