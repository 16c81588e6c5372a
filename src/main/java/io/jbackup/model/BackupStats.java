package io.jbackup.model;

/**
 * Counters of one backup. {@code chunksTotal} counts the positions written by this backup
 * ({@code putChunk} and {@code putZero}), split into {@code chunksNew} (stored now), {@code chunksDedup} (already
 * in the repository, or stored earlier by this or a concurrent backup) and {@code chunksZero}. The byte counters
 * are raw (uncompressed) bytes, except {@code bytesStored}: the bytes appended to pack files (record headers,
 * compressed and, if encrypted, sealed payloads).
 */
public record BackupStats(long chunksTotal, long chunksNew, long chunksDedup, long chunksZero, long bytesNew,
                          long bytesDedup, long bytesZero, long bytesStored) {
    public static final BackupStats EMPTY = new BackupStats(0, 0, 0, 0, 0, 0, 0, 0);

    /** Raw bytes covered by the positions written (new + dedup + zero). */
    public long bytesTotal() {
        return bytesNew + bytesDedup + bytesZero;
    }
}
