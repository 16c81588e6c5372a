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
 */
public record ChunkTask(long index, long offset, int length, Kind kind, long[] ranges) {
    /** What to do with a chunk. */
    public enum Kind { ZERO, READ }

    /** Bytes of the chunk that are read from the server. */
    public long bytesToRead() {
        long n = 0;
        for (int i = 0; i < ranges.length; i += 2) {
            n += ranges[i + 1] - ranges[i];
        }
        return n;
    }
}
