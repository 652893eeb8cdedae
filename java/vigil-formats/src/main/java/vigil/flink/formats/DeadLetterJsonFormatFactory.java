package vigil.flink.formats;

import org.apache.flink.formats.json.JsonFormatFactory;

/** "dlq-json": Flink's json format that routes unparseable records instead of failing or dropping them. */
public final class DeadLetterJsonFormatFactory extends DeadLetterFormatFactory {
    public DeadLetterJsonFormatFactory() {
        super(new JsonFormatFactory());
    }
}
