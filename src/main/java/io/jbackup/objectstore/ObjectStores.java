package io.jbackup.objectstore;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Comparator;

/** What the implementations share. */
final class ObjectStores {
    private ObjectStores() {
    }

    /** The order of listings: by the UTF-8 bytes of the keys, unsigned, as S3 lists. */
    static final Comparator<String> KEY_ORDER = (a, b) -> Arrays.compareUnsigned(
        a.getBytes(StandardCharsets.UTF_8), b.getBytes(StandardCharsets.UTF_8));
}
