package io.jbackup.store;

import java.util.Arrays;
import java.util.HexFormat;

/**
 * A chunk digest (32 bytes) usable as a map key, and the digest helpers. The reserved digest of 32 zero bytes,
 * {@link #ZERO}, stands for an all-zero chunk of any length: it is never stored in a pack.
 */
final class ChunkId {
    static final int LENGTH = 32;
    static final byte[] ZERO = new byte[LENGTH];
    private static final HexFormat HEX = HexFormat.of();
    private static final byte[] ZEROS = new byte[64 * 1024];

    private final byte[] bytes;
    private final int hash;

    ChunkId(byte[] bytes) {
        if (bytes.length != LENGTH) {
            throw new IllegalArgumentException("digest is " + bytes.length + " bytes (expected: 32)");
        }
        this.bytes = bytes;
        this.hash = (bytes[0] & 0xff) << 24 | (bytes[1] & 0xff) << 16 | (bytes[2] & 0xff) << 8 | (bytes[3] & 0xff);
    }

    byte[] bytes() {
        return bytes;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ChunkId c && c.hash == hash && Arrays.equals(c.bytes, bytes);
    }

    @Override
    public int hashCode() {
        return hash;
    }

    @Override
    public String toString() {
        return HEX.formatHex(bytes);
    }

    static String hex(byte[] digest) {
        return HEX.formatHex(digest);
    }

    static boolean isZeroDigest(byte[] d) {
        return Arrays.equals(d, ZERO);
    }

    /** The first 8 bytes of a digest as a long (big-endian): a compact key for bounded-memory sets. */
    static long prefix(byte[] d, int off) {
        long v = 0;
        for (int i = 0; i < 8; i++) {
            v = v << 8 | (d[off + i] & 0xff);
        }
        return v;
    }

    /** Whether {@code data[0, len)} is all zero bytes (vectorised compare against a zero block). */
    static boolean isAllZero(byte[] data, int len) {
        for (int off = 0; off < len; off += ZEROS.length) {
            int n = Math.min(ZEROS.length, len - off);
            if (Arrays.mismatch(data, off, off + n, ZEROS, 0, n) >= 0) {
                return false;
            }
        }
        return true;
    }
}
