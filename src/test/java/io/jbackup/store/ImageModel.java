package io.jbackup.store;

import java.security.MessageDigest;
import java.util.Arrays;

/**
 * A synthetic disk image that is a pure function of (version, position): the first {@code stable} chunks are the
 * same in every version (dedup), every 7th chunk is zero, the rest change with the version. Tests and child JVMs
 * compute the same content independently.
 */
record ImageModel(long size, int chunkSize, long version, int stable) {
    long chunkCount() {
        return (size + chunkSize - 1) / chunkSize;
    }

    int length(long i) {
        return (int) Math.min(chunkSize, size - i * chunkSize);
    }

    boolean isZero(long i) {
        return i % 7 == 6;
    }

    long seed(long i) {
        return i < stable ? 1_000_000 + i : version * 100_000 + i;
    }

    byte[] chunk(long i) {
        return isZero(i) ? new byte[length(i)] : Data.chunk(seed(i), length(i));
    }

    /** Whether position {@code i} has other content than in {@code other} (same geometry). */
    boolean differs(ImageModel other, long i) {
        return isZero(i) != other.isZero(i) || !isZero(i) && seed(i) != other.seed(i);
    }

    byte[] sha256() throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        for (long i = 0; i < chunkCount(); i++) {
            md.update(chunk(i));
        }
        return md.digest();
    }

    /** SHA-256 of the image a backup restores to, reading every chunk. */
    static byte[] restoredSha256(BackupReader r) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        for (long i = 0; i < r.chunkCount(); i++) {
            byte[] c = r.readChunk(i);
            if (c.length != r.chunkLength(i)) {
                throw new AssertionError("chunk " + i + " is " + c.length + " bytes, expected " + r.chunkLength(i));
            }
            md.update(c);
        }
        return md.digest();
    }

    static boolean sameImage(BackupReader r, ImageModel m) throws Exception {
        return Arrays.equals(restoredSha256(r), m.sha256());
    }
}
