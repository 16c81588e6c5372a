package io.jbackup.engine;

/**
 * What the backup does with one chunk position.
 *
 * @param index     chunk position
 * @param offset    disk offset of the chunk
 * @param length    chunk length (the chunk size, or less for the last chunk)
 * @param kind      ZERO: store the zero digest without reading; READ: read {@code ranges} and store the chunk
 * @param ranges    for READ: disk ranges within the chunk that hold data, as {@code [start0, end0, start1, end1, ...]};
 *                  bytes of the chunk outside them read as zero and are not requested from the server
 * @param count     chunks the task covers, from {@code index} on: 1, or more for a ZERO run (then {@code length} is
 *                  the length of its first chunk and {@code span} the bytes of the whole run)
 * @param span      bytes of the disk the task covers: {@code length} for a single chunk
 */
public record ChunkTask(long index, long offset, int length, Kind kind, long[] ranges, long count, long span) {
    /** What to do with a chunk. */
    public enum Kind { ZERO, READ }

    /** A task for one chunk. */
    public ChunkTask(long index, long offset, int length, Kind kind, long[] ranges) {
        this(index, offset, length, kind, ranges, 1, length);
    }

    public ChunkTask {
        if (count < 1 || (count > 1 && kind != Kind.ZERO)) {
            throw new IllegalArgumentException("a " + kind + " task of " + count + " chunks");
        }
    }

    /** A run of {@code count} zero chunks starting at chunk {@code index}, covering {@code span} bytes. */
    public static ChunkTask zeroRun(long index, long offset, int firstLength, long count, long span) {
        return new ChunkTask(index, offset, firstLength, Kind.ZERO, new long[0], count, span);
    }

    /** Bytes of the chunk that are read from the server. */
    public long bytesToRead() {
        long n = 0;
        for (int i = 0; i < ranges.length; i += 2) {
            n += ranges[i + 1] - ranges[i];
        }
        return n;
    }
}
