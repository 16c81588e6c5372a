package io.jbackup.store;

import io.jbackup.error.UsageException;

/**
 * What {@code jbackup init} fixes for a repository's life. Validated up front: every bad value is rejected with
 * the accepted range.
 *
 * @param chunkSize        default chunk size: a power of two from 64 KiB to 4 MiB (default 1 MiB)
 * @param encryption       {@link Encryption#NONE} or {@link Encryption#AES_256_GCM}
 * @param compressionLevel zstd level 1..19, or a fast level -1..-7 (zstd --fast=N: quicker, larger), default
 *                         {@value #DEFAULT_COMPRESSION_LEVEL}, or 0 to store chunks
 *                         uncompressed
 * @param packSize         target pack file size: a pack is sealed once it reaches it (1 MiB..1 GiB, default 32 MiB)
 */
public record RepositoryOptions(int chunkSize, Encryption encryption, int compressionLevel, long packSize) {
    public static final int MIN_CHUNK_SIZE = 64 * 1024;
    public static final int MAX_CHUNK_SIZE = 4 * 1024 * 1024;
    public static final int DEFAULT_CHUNK_SIZE = 1024 * 1024;
    /**
     * Level 1, measured with bench/store-bench.sh on system-disk data: level 3 stores 11% less (2.68x instead of
     * 2.37x) but puts new data about 30% slower (280 instead of 410 MB/s on 2 cores).
     */
    public static final int DEFAULT_COMPRESSION_LEVEL = 1;
    public static final int MAX_COMPRESSION_LEVEL = 19;
    public static final int MIN_COMPRESSION_LEVEL = -7;
    public static final long MIN_PACK_SIZE = 1L << 20;
    public static final long MAX_PACK_SIZE = 1L << 30;
    public static final long DEFAULT_PACK_SIZE = 32L << 20;

    public RepositoryOptions {
        validateChunkSize(chunkSize, "chunk size");
        if (encryption == null) {
            throw new UsageException("encryption must be given (none or aes-256-gcm)");
        }
        if (compressionLevel < MIN_COMPRESSION_LEVEL || compressionLevel > MAX_COMPRESSION_LEVEL) {
            throw new UsageException("compression level " + compressionLevel + " is out of range (expected: 0 "
                + "for none, 1.." + MAX_COMPRESSION_LEVEL + ", or " + MIN_COMPRESSION_LEVEL + "..-1 for zstd's fast levels)");
        }
        if (packSize < MIN_PACK_SIZE || packSize > MAX_PACK_SIZE) {
            throw new UsageException("pack size " + packSize + " is out of range (expected: " + MIN_PACK_SIZE
                + ".." + MAX_PACK_SIZE + " bytes)");
        }
    }

    /** Options with the default pack size. */
    public RepositoryOptions(int chunkSize, Encryption encryption, int compressionLevel) {
        this(chunkSize, encryption, compressionLevel, DEFAULT_PACK_SIZE);
    }

    /** 1 MiB chunks, no encryption, the default compression level and pack size. */
    public static RepositoryOptions defaults() {
        return new RepositoryOptions(DEFAULT_CHUNK_SIZE, Encryption.NONE, DEFAULT_COMPRESSION_LEVEL);
    }

    public RepositoryOptions withEncryption(Encryption e) {
        return new RepositoryOptions(chunkSize, e, compressionLevel, packSize);
    }

    public RepositoryOptions withChunkSize(int size) {
        return new RepositoryOptions(size, encryption, compressionLevel, packSize);
    }

    public RepositoryOptions withCompressionLevel(int level) {
        return new RepositoryOptions(chunkSize, encryption, level, packSize);
    }

    public RepositoryOptions withPackSize(long size) {
        return new RepositoryOptions(chunkSize, encryption, compressionLevel, size);
    }

    /** Rejects a chunk size that is not a power of two from 64 KiB to 4 MiB. */
    static void validateChunkSize(long size, String what) {
        if (size < MIN_CHUNK_SIZE || size > MAX_CHUNK_SIZE || Long.bitCount(size) != 1) {
            throw new UsageException(what + " " + size + " is not a power of two from 64 KiB to 4 MiB "
                + "(use 64K, 128K, 256K, 512K, 1M, 2M or 4M)");
        }
    }
}
