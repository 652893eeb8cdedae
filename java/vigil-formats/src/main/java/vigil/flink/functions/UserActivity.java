package vigil.flink.functions;

import java.util.HashMap;

/**
 * Everything the fraud job keeps per user, as of each of the user's events in event-time order
 * (through UserActivityProcess, partitioned by tenant and user):
 * <ul>
 *   <li>the user's hour features (HourFeatures' fields, same definitions);</li>
 *   <li>device_uses / country_uses: events of the user on this event's device / in its country so
 *       far, this one included (1 = first time; account takeover's "new device or country");</li>
 *   <li>the previous located event (time, id, country, place): impossible travel's last leg.</li>
 * </ul>
 * Why one aggregate: each of these was its own keyed operator over every event (three OVER
 * windows and the features' window), and every operator re-keys, serialises and re-sorts each
 * event by time. A null device or country counts as a value of its own, as a COUNT(*) partitioned
 * by it did. A user quiet for more than RETAIN_MS (30 days) starts afresh: the history of account
 * takeover's "new device or country" is 30 days of event time.
 */
public final class UserActivity {

    /** The output's fields: HourFeatures' and the user's own. */
    static final String FIELDS = HourFeatures.FIELDS + ", device_uses BIGINT, country_uses BIGINT,"
            + " prev_located_time TIMESTAMP(3), prev_located_event_id STRING, prev_located_country STRING,"
            + " prev_located_latitude DOUBLE, prev_located_longitude DOUBLE";

    static final long RETAIN_MS = 30 * 24 * 3_600_000L;

    private static final String NULL_KEY = "\u0000";

    /** The place of an event. */
    public static final class Place {
        public long ms;
        public String eventId;
        public String country;
        public double latitude;
        public double longitude;

        public Place() {}
    }

    public static final class Activity {
        public HourFeatures.Hour hour = new HourFeatures.Hour();
        public HashMap<String, Long> deviceUses = new HashMap<>();
        public HashMap<String, Long> countryUses = new HashMap<>();
        public long currentDeviceUses;
        public long currentCountryUses;
        public Place lastLocated;       // the newest located event read so far
        public Place previousLocated;   // the one before the current event (for a located event)

        public Activity() {}
    }

    /** One event of the user at `ms` (epoch ms). */
    static void add(Activity activity, long ms, String eventType, Double amountUsd, String userId,
            String deviceId, String cardFingerprint, String ip, String country, Double latitude, Double longitude,
            String eventId) {
        if (activity.hour.hasLast && ms - activity.hour.lastMs > RETAIN_MS) {
            activity.deviceUses.clear();
            activity.countryUses.clear();
            activity.lastLocated = null;
        }
        HourFeatures.add(activity.hour, ms, eventType, amountUsd,
                new String[] {userId, deviceId, cardFingerprint, ip, country}, latitude, longitude);
        activity.currentDeviceUses = activity.deviceUses.merge(deviceId == null ? NULL_KEY : deviceId, 1L, Long::sum);
        activity.currentCountryUses = activity.countryUses.merge(country == null ? NULL_KEY : country, 1L, Long::sum);
        activity.previousLocated = activity.lastLocated;
        if (latitude != null && longitude != null) {
            Place place = new Place();
            place.ms = ms;
            place.eventId = eventId;
            place.country = country;
            place.latitude = latitude;
            place.longitude = longitude;
            activity.lastLocated = place;
        }
    }

    /** The output fields, in the order of FIELDS. */
    static Object[] values(Activity activity) {
        Object[] hour = HourFeatures.values(activity.hour);
        Object[] values = new Object[hour.length + 7];
        System.arraycopy(hour, 0, values, 0, hour.length);
        Place previous = activity.previousLocated;
        values[hour.length] = activity.currentDeviceUses;
        values[hour.length + 1] = activity.currentCountryUses;
        values[hour.length + 2] = previous == null ? null : HourFeatures.timeOf(previous.ms);
        values[hour.length + 3] = previous == null ? null : previous.eventId;
        values[hour.length + 4] = previous == null ? null : previous.country;
        values[hour.length + 5] = previous == null ? null : previous.latitude;
        values[hour.length + 6] = previous == null ? null : previous.longitude;
        return values;
    }
}
