package vigil.flink.runtime;

/**
 * The few JSON pieces the upgrade check's two reports need (strings, numbers, booleans, null).
 * Hand-written so vigil-runtime depends on no JSON library beyond what every Flink jar brings:
 * the shaded Jackson inside flink-dist is an internal detail that may move between releases.
 */
final class Json {

    private Json() {}

    static String str(String value) {
        if (value == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder(value.length() + 2).append('"');
        for (char c : value.toCharArray()) {
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
            }
        }
        return out.append('"').toString();
    }
}
