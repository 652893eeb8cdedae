package vigil.flink.sinks;

import org.apache.flink.connector.kafka.sink.KafkaPartitioner;
import org.apache.flink.table.data.RowData;

/**
 * The ingest job's partitioner for events.clean ('sink.partitioner' in sql/ddl/ingest_tables.sql):
 * a clean event goes to the partition number its raw record came from (the `source_partition`
 * column), not to the partition its key hashes to.
 *
 * <p>Why: the fraud job keeps a watermark per clean partition, so each clean partition must keep
 * the event-time order of one raw partition. Hashing the key gave the same partition only when
 * every producer of events.raw hashed keys as Kafka's Java client does (murmur2); a producer with
 * another partitioner (librdkafka's default, say) put a user's records in another raw partition,
 * ingest read that partition at its own pace, and its newer events pushed the clean partition's
 * watermark past the older events still to come from the partition ingest was catching up on:
 * found by the DR drill (1,587 late clean events after a restore, all behind 4 such records).
 * A raw topic with more partitions than events.clean wraps around (modulo).
 */
public final class SourcePartitionPartitioner implements KafkaPartitioner<RowData> {

    private static final long serialVersionUID = 1L;

    /** Position of `source_partition` among clean_events' columns (tests/unit check the DDL). */
    public static final int SOURCE_PARTITION_FIELD = 22;

    @Override
    public int partition(RowData record, byte[] key, byte[] value, String targetTopic, int[] partitions) {
        if (record.getArity() <= SOURCE_PARTITION_FIELD || record.isNullAt(SOURCE_PARTITION_FIELD)) {
            // Not a clean event row (the DDL changed; the unit test catches that): a stable hash of the key.
            return partitions[Math.floorMod(java.util.Arrays.hashCode(key), partitions.length)];
        }
        return partitions[Math.floorMod(record.getInt(SOURCE_PARTITION_FIELD), partitions.length)];
    }
}
