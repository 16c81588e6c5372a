package io.jbackup.nbd.protocol;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/** Protocol strings as the encoders write them: UTF-8, at most {@link NbdConstants#MAX_STRING_LENGTH} bytes. */
final class NbdStrings {
    private NbdStrings() {
    }

    /** UTF-8 bytes of {@code s}, cut (at a character boundary) to {@link NbdConstants#MAX_STRING_LENGTH}. */
    static byte[] utf8Limited(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        if (b.length <= NbdConstants.MAX_STRING_LENGTH) {
            return b;
        }
        int end = NbdConstants.MAX_STRING_LENGTH;
        while (end > 0 && (b[end] & 0xC0) == 0x80) {
            end--;
        }
        return Arrays.copyOf(b, end);
    }
}
