package vigil.flink.functions;

import java.io.IOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.HashMap;
import java.util.Map;

import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.core.memory.DataOutputView;

/**
 * Compact serializers of the feature accumulators (HourFeatures.Hour, UserActivity.Activity,
 * PaymentVelocity.Times, AmountHistory.Payments).
 *
 * <p>Why not Kryo, Flink's default for a RAW type: state backends serialise an accumulator on
 * every checkpoint (heap) or on every access (RocksDB), and Kryo writes class tags, boxed values
 * and BigDecimals as strings of digits. These write plain longs, doubles, UTF strings and
 * unscaled BigDecimal bytes. The layout is versioned by the snapshot classes below: changing it
 * needs a new version and a migration (savepoints/README.md).
 */
public final class AccumulatorSerializers {

    private AccumulatorSerializers() {}

    // The accumulators as SQL RAW types, for state declared by a type string (the process table
    // functions keep them in a MapView, EventTimeOrder). Each is what
    // DataTypes.RAW(cls, XSerializer.INSTANCE).getLogicalType().asSerializableString() prints: the
    // base64 part names the serializer's snapshot class and version, so a new snapshot version
    // changes it (EventTimeOrder checks them when it loads: a stale one fails every PTF job).
    static final String HOUR_TYPE = "RAW('vigil.flink.functions.HourFeatures$Hour', "
            + "'ADl2aWdpbC5mbGluay5mdW5jdGlvbnMuQWNjdW11bGF0b3JTZXJpYWxpemVycyRIb3VyU25hcHNob3QAAAAD')";
    static final String ACTIVITY_TYPE = "RAW('vigil.flink.functions.UserActivity$Activity', "
            + "'AD12aWdpbC5mbGluay5mdW5jdGlvbnMuQWNjdW11bGF0b3JTZXJpYWxpemVycyRBY3Rpdml0eVNuYXBzaG90AAAAAw==')";
    static final String TIMES_TYPE = "RAW('vigil.flink.functions.PaymentVelocity$Times', "
            + "'ADp2aWdpbC5mbGluay5mdW5jdGlvbnMuQWNjdW11bGF0b3JTZXJpYWxpemVycyRUaW1lc1NuYXBzaG90AAAAAw==')";

    static void writeHour(HourFeatures.Hour h, DataOutputView out) throws IOException {
        out.writeLong(h.newestMinute);
        out.writeInt(h.minutes.size());
        for (HourFeatures.Minute m : h.minutes) {
            out.writeLong(m.minute);
            out.writeLong(m.events);
            out.writeLong(m.payments);
            writeDecimal(m.amountUsd, out);
            writeDecimal(m.logUsd, out);
            writeDecimal(m.logUsdSquared, out);
            for (long n : m.newest) {
                out.writeLong(n);
            }
        }
        out.writeLong(h.events);
        out.writeLong(h.payments);
        writeDecimal(h.amountUsd, out);
        writeDecimal(h.logUsd, out);
        writeDecimal(h.logUsdSquared, out);
        for (long n : h.distinct) {
            out.writeLong(n);
        }
        for (HashMap<String, Long> seen : h.lastSeenMinute) {
            writeCounts(seen, out);
        }
        out.writeBoolean(h.hasLast);
        out.writeLong(h.lastMs);
        writeNullableDouble(h.lastLatitude, out);
        writeNullableDouble(h.lastLongitude, out);
        out.writeBoolean(h.hasPrevious);
        out.writeLong(h.previousMs);
        writeNullableDouble(h.previousLatitude, out);
        writeNullableDouble(h.previousLongitude, out);
    }

    static HourFeatures.Hour readHour(DataInputView in) throws IOException {
        HourFeatures.Hour h = new HourFeatures.Hour();
        h.newestMinute = in.readLong();
        int minutes = in.readInt();
        for (int i = 0; i < minutes; i++) {
            HourFeatures.Minute m = new HourFeatures.Minute();
            m.minute = in.readLong();
            m.events = in.readLong();
            m.payments = in.readLong();
            m.amountUsd = readDecimal(in);
            m.logUsd = readDecimal(in);
            m.logUsdSquared = readDecimal(in);
            for (int d = 0; d < m.newest.length; d++) {
                m.newest[d] = in.readLong();
            }
            h.minutes.add(m);
        }
        h.events = in.readLong();
        h.payments = in.readLong();
        h.amountUsd = readDecimal(in);
        h.logUsd = readDecimal(in);
        h.logUsdSquared = readDecimal(in);
        for (int d = 0; d < h.distinct.length; d++) {
            h.distinct[d] = in.readLong();
        }
        for (int d = 0; d < h.lastSeenMinute.size(); d++) {
            h.lastSeenMinute.set(d, readCounts(in));
        }
        h.hasLast = in.readBoolean();
        h.lastMs = in.readLong();
        h.lastLatitude = readNullableDouble(in);
        h.lastLongitude = readNullableDouble(in);
        h.hasPrevious = in.readBoolean();
        h.previousMs = in.readLong();
        h.previousLatitude = readNullableDouble(in);
        h.previousLongitude = readNullableDouble(in);
        return h;
    }

    static void writeActivity(UserActivity.Activity a, DataOutputView out) throws IOException {
        writeHour(a.hour, out);
        writeCounts(a.deviceUses, out);
        writeCounts(a.countryUses, out);
        out.writeLong(a.currentDeviceUses);
        out.writeLong(a.currentCountryUses);
        writePlace(a.lastLocated, out);
        writePlace(a.previousLocated, out);
    }

    static UserActivity.Activity readActivity(DataInputView in) throws IOException {
        UserActivity.Activity a = new UserActivity.Activity();
        a.hour = readHour(in);
        a.deviceUses = readCounts(in);
        a.countryUses = readCounts(in);
        a.currentDeviceUses = in.readLong();
        a.currentCountryUses = in.readLong();
        a.lastLocated = readPlace(in);
        a.previousLocated = readPlace(in);
        return a;
    }

    private static void writeDecimal(BigDecimal value, DataOutputView out) throws IOException {
        byte[] unscaled = value.unscaledValue().toByteArray();
        out.writeInt(value.scale());
        out.writeInt(unscaled.length);
        out.write(unscaled);
    }

    private static BigDecimal readDecimal(DataInputView in) throws IOException {
        int scale = in.readInt();
        byte[] unscaled = new byte[in.readInt()];
        in.readFully(unscaled);
        return new BigDecimal(new BigInteger(unscaled), scale);
    }

    private static void writeCounts(HashMap<String, Long> counts, DataOutputView out) throws IOException {
        out.writeInt(counts.size());
        for (Map.Entry<String, Long> e : counts.entrySet()) {
            out.writeUTF(e.getKey());
            out.writeLong(e.getValue());
        }
    }

    private static HashMap<String, Long> readCounts(DataInputView in) throws IOException {
        int n = in.readInt();
        HashMap<String, Long> counts = new HashMap<>(Math.max(16, n * 2));
        for (int i = 0; i < n; i++) {
            counts.put(in.readUTF(), in.readLong());
        }
        return counts;
    }

    private static void writeNullableDouble(Double value, DataOutputView out) throws IOException {
        out.writeBoolean(value != null);
        if (value != null) {
            out.writeDouble(value);
        }
    }

    private static Double readNullableDouble(DataInputView in) throws IOException {
        return in.readBoolean() ? in.readDouble() : null;
    }

    private static void writePlace(UserActivity.Place place, DataOutputView out) throws IOException {
        out.writeBoolean(place != null);
        if (place != null) {
            out.writeLong(place.ms);
            writeNullableString(place.eventId, out);
            writeNullableString(place.country, out);
            out.writeDouble(place.latitude);
            out.writeDouble(place.longitude);
        }
    }

    private static UserActivity.Place readPlace(DataInputView in) throws IOException {
        if (!in.readBoolean()) {
            return null;
        }
        UserActivity.Place place = new UserActivity.Place();
        place.ms = in.readLong();
        place.eventId = readNullableString(in);
        place.country = readNullableString(in);
        place.latitude = in.readDouble();
        place.longitude = in.readDouble();
        return place;
    }

    private static void writeNullableString(String value, DataOutputView out) throws IOException {
        out.writeBoolean(value != null);
        if (value != null) {
            out.writeUTF(value);
        }
    }

    private static String readNullableString(DataInputView in) throws IOException {
        return in.readBoolean() ? in.readUTF() : null;
    }

    /** A mutable value written field by field; copies go through the serialised form (heap
     * snapshots copy a value before it changes, so the copy must be deep). */
    abstract static class FieldSerializer<T> extends TypeSerializerSingleton<T> {
        abstract void write(T value, DataOutputView out) throws IOException;

        abstract T read(DataInputView in) throws IOException;

        @Override
        public boolean isImmutableType() {
            return false;
        }

        @Override
        public T copy(T from) {
            try {
                DataOutputSerializer out = new DataOutputSerializer(256);
                write(from, out);
                return read(new DataInputDeserializer(out.getSharedBuffer(), 0, out.length()));
            } catch (IOException e) {
                throw new IllegalStateException("cannot copy an accumulator", e);
            }
        }

        @Override
        public T copy(T from, T reuse) {
            return copy(from);
        }

        @Override
        public int getLength() {
            return -1;
        }

        @Override
        public void serialize(T record, DataOutputView target) throws IOException {
            write(record, target);
        }

        @Override
        public T deserialize(DataInputView source) throws IOException {
            return read(source);
        }

        @Override
        public T deserialize(T reuse, DataInputView source) throws IOException {
            return read(source);
        }

        @Override
        public void copy(DataInputView source, DataOutputView target) throws IOException {
            write(read(source), target);
        }
    }

    public static final class HourSerializer extends FieldSerializer<HourFeatures.Hour> {
        public static final HourSerializer INSTANCE = new HourSerializer();

        @Override
        void write(HourFeatures.Hour value, DataOutputView out) throws IOException {
            writeHour(value, out);
        }

        @Override
        HourFeatures.Hour read(DataInputView in) throws IOException {
            return readHour(in);
        }

        @Override
        public HourFeatures.Hour createInstance() {
            return new HourFeatures.Hour();
        }

        @Override
        public TypeSerializerSnapshot<HourFeatures.Hour> snapshotConfiguration() {
            return new HourSnapshot();
        }
    }

    public static final class HourSnapshot extends SimpleTypeSerializerSnapshot<HourFeatures.Hour> {
        public HourSnapshot() {
            super(() -> HourSerializer.INSTANCE);
        }
    }

    public static final class ActivitySerializer extends FieldSerializer<UserActivity.Activity> {
        public static final ActivitySerializer INSTANCE = new ActivitySerializer();

        @Override
        void write(UserActivity.Activity value, DataOutputView out) throws IOException {
            writeActivity(value, out);
        }

        @Override
        UserActivity.Activity read(DataInputView in) throws IOException {
            return readActivity(in);
        }

        @Override
        public UserActivity.Activity createInstance() {
            return new UserActivity.Activity();
        }

        @Override
        public TypeSerializerSnapshot<UserActivity.Activity> snapshotConfiguration() {
            return new ActivitySnapshot();
        }
    }

    public static final class ActivitySnapshot extends SimpleTypeSerializerSnapshot<UserActivity.Activity> {
        public ActivitySnapshot() {
            super(() -> ActivitySerializer.INSTANCE);
        }
    }

    public static final class TimesSerializer extends FieldSerializer<PaymentVelocity.Times> {
        public static final TimesSerializer INSTANCE = new TimesSerializer();

        @Override
        void write(PaymentVelocity.Times value, DataOutputView out) throws IOException {
            out.writeInt(value.size);
            for (int i = 0; i < value.size; i++) {
                out.writeLong(value.at(i));
            }
            for (long count : value.counts) {
                out.writeLong(count);
            }
        }

        @Override
        PaymentVelocity.Times read(DataInputView in) throws IOException {
            PaymentVelocity.Times times = new PaymentVelocity.Times();
            int size = in.readInt();
            times.ms = new long[Math.max(8, Integer.highestOneBit(Math.max(1, size)) * 2)];
            for (int i = 0; i < size; i++) {
                times.ms[i] = in.readLong();
            }
            times.size = size;
            for (int w = 0; w < times.counts.length; w++) {
                times.counts[w] = in.readLong();
            }
            return times;
        }

        @Override
        public PaymentVelocity.Times createInstance() {
            return new PaymentVelocity.Times();
        }

        @Override
        public TypeSerializerSnapshot<PaymentVelocity.Times> snapshotConfiguration() {
            return new TimesSnapshot();
        }
    }

    public static final class TimesSnapshot extends SimpleTypeSerializerSnapshot<PaymentVelocity.Times> {
        public TimesSnapshot() {
            super(() -> TimesSerializer.INSTANCE);
        }
    }

    public static final class PaymentsSerializer extends FieldSerializer<AmountHistory.Payments> {
        public static final PaymentsSerializer INSTANCE = new PaymentsSerializer();

        @Override
        void write(AmountHistory.Payments value, DataOutputView out) throws IOException {
            double[] values = value.all();
            out.writeInt(values.length);
            for (double v : values) {
                out.writeDouble(v);
            }
        }

        @Override
        AmountHistory.Payments read(DataInputView in) throws IOException {
            AmountHistory.Payments payments = new AmountHistory.Payments();
            int size = in.readInt();
            for (int i = 0; i < size; i++) {
                payments.add(in.readDouble());
            }
            return payments;
        }

        @Override
        public AmountHistory.Payments createInstance() {
            return new AmountHistory.Payments();
        }

        @Override
        public TypeSerializerSnapshot<AmountHistory.Payments> snapshotConfiguration() {
            return new PaymentsSnapshot();
        }
    }

    public static final class PaymentsSnapshot extends SimpleTypeSerializerSnapshot<AmountHistory.Payments> {
        public PaymentsSnapshot() {
            super(() -> PaymentsSerializer.INSTANCE);
        }
    }
}
