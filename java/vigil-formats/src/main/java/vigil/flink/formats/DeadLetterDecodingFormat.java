package vigil.flink.formats;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.format.DecodingFormat;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.utils.DataTypeUtils;

/** Wraps another format's decoder; adds the readable metadata "error" and "raw" (see DeadLetterFormatFactory). */
final class DeadLetterDecodingFormat implements DecodingFormat<DeserializationSchema<RowData>> {

    static final String ERROR = "error";
    static final String RAW = "raw";

    private final DecodingFormat<DeserializationSchema<RowData>> inner;
    private List<String> metadataKeys = new ArrayList<>();

    DeadLetterDecodingFormat(DecodingFormat<DeserializationSchema<RowData>> inner) {
        this.inner = inner;
    }

    @Override
    public Map<String, DataType> listReadableMetadata() {
        Map<String, DataType> metadata = new LinkedHashMap<>();
        metadata.put(ERROR, DataTypes.STRING());
        metadata.put(RAW, DataTypes.BYTES());
        return metadata;
    }

    @Override
    public void applyReadableMetadata(List<String> metadataKeys) {
        this.metadataKeys = new ArrayList<>(metadataKeys);
    }

    @Override
    public DeserializationSchema<RowData> createRuntimeDecoder(
            DynamicTableSource.Context context, DataType physicalDataType) {
        DeserializationSchema<RowData> decoder = inner.createRuntimeDecoder(context, physicalDataType);
        List<DataTypes.Field> metadataFields = new ArrayList<>();
        for (String key : metadataKeys) {
            metadataFields.add(DataTypes.FIELD(key, listReadableMetadata().get(key)));
        }
        DataType produced = DataTypeUtils.appendRowFields(physicalDataType, metadataFields);
        TypeInformation<RowData> producedType = context.createTypeInformation(produced);
        return new DeadLetterDeserializationSchema(
                decoder, physicalDataType.getLogicalType(), metadataKeys, producedType);
    }

    @Override
    public ChangelogMode getChangelogMode() {
        return inner.getChangelogMode();
    }
}
