package io.jbackup.objectstore;

/**
 * The rules for object keys, the same in every store: non-empty {@code /}-separated segments of printable
 * characters; no segment is {@code .} or {@code ..} or starts with {@code .} (a local store keeps its temporary files
 * under dot-names, where no key can reach them); no backslash.
 */
public final class ObjectKeys {
    private ObjectKeys() {
    }

    /**
     * Returns {@code key} if it follows the rules.
     *
     * @throws IllegalArgumentException naming the rule it breaks (a key is built by code, never typed by a user)
     */
    public static String check(String key) {
        if (key == null || key.isEmpty()) {
            throw new IllegalArgumentException("empty object key");
        }
        for (String segment : key.split("/", -1)) {
            if (segment.isEmpty()) {
                throw new IllegalArgumentException("object key " + key + " has an empty segment");
            }
            if (segment.startsWith(".")) {
                throw new IllegalArgumentException("object key " + key + " has a segment that starts with '.'");
            }
        }
        for (int i = 0; i < key.length(); i++) {
            char c = key.charAt(i);
            if (c < 0x20 || c == 0x7f || c == '\\') {
                throw new IllegalArgumentException("object key " + key + " has a control character or backslash");
            }
        }
        return key;
    }

    /** Returns {@code prefix} if it is empty or a prefix of some valid key (it may end with {@code /}). */
    public static String checkPrefix(String prefix) {
        if (prefix == null) {
            throw new IllegalArgumentException("null prefix");
        }
        if (!prefix.isEmpty()) {
            check(prefix.endsWith("/") ? prefix + "x" : prefix);
        }
        return prefix;
    }
}
