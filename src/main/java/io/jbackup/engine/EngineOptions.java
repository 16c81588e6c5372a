package io.jbackup.engine;

import io.jbackup.error.UsageException;

import java.time.Duration;

/**
 * Tuning of the backup pipeline, validated up front.
 *
 * @param bufferBytes      memory for chunk data between NBD reads and the repository (bounds the pipeline)
 * @param statusWindow     bytes of the disk asked per BLOCK_STATUS request
 * @param retries          reconnect attempts after a dropped or silent NBD connection, counted since the backup last
 *                         made progress (a read or block-status reply)
 * @param retryBackoff     first wait before reconnecting; doubles each attempt (capped at 30 s)
 * @param parallelDisks    disks of one set backed up at once
 */
public record EngineOptions(long bufferBytes, long statusWindow, int retries, Duration retryBackoff, int parallelDisks) {
    public EngineOptions {
        if (bufferBytes < (1 << 20) || bufferBytes > (8L << 30)) {
            throw new UsageException("buffer size " + bufferBytes + " (expected: 1 MiB .. 8 GiB)");
        }
        if (statusWindow < (1 << 20) || statusWindow > (1L << 31)) {
            throw new UsageException("block-status window " + statusWindow + " (expected: 1 MiB .. 2 GiB)");
        }
        if (retries < 0 || retries > 100) {
            throw new UsageException("retries " + retries + " (expected: 0 .. 100)");
        }
        if (retryBackoff == null || retryBackoff.isNegative()) {
            throw new UsageException("retry backoff " + retryBackoff + " (expected: >= 0)");
        }
        if (parallelDisks < 1 || parallelDisks > 64) {
            throw new UsageException("parallel disks " + parallelDisks + " (expected: 1 .. 64)");
        }
    }

    public static EngineOptions defaults() {
        return new EngineOptions(64L << 20, 1L << 30, 5, Duration.ofSeconds(1), 4);
    }

    public EngineOptions withRetries(int n, Duration backoff) {
        return new EngineOptions(bufferBytes, statusWindow, n, backoff, parallelDisks);
    }

    public EngineOptions withBufferBytes(long n) {
        return new EngineOptions(n, statusWindow, retries, retryBackoff, parallelDisks);
    }
}
