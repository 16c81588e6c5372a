package io.jbackup.store;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.SplittableRandom;

/** Deterministic test data: chunk contents from a seed, half random half text-like (so zstd has work). */
final class Data {
    private Data() {
    }

    /** {@code len} bytes determined by {@code seed}; never all zero. */
    static byte[] chunk(long seed, int len) {
        byte[] b = new byte[len];
        fill(seed, b, len);
        return b;
    }

    static void fill(long seed, byte[] b, int len) {
        SplittableRandom r = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + 17);
        int half = len / 2;
        for (int i = 0; i < half; i += 8) {
            long v = r.nextLong();
            for (int k = 0; k < 8 && i + k < half; k++) {
                b[i + k] = (byte) (v >>> (8 * k));
            }
        }
        String words = "backup restore qemu nbd chunk pack index catalog ";
        for (int i = half; i < len; i++) {
            b[i] = (byte) words.charAt((i + (int) (seed & 7)) % words.length());
        }
        b[0] = (byte) (b[0] | 1);
    }

    static byte[] sha256(byte[]... parts) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            for (byte[] p : parts) {
                md.update(p);
            }
            return md.digest();
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }
}
