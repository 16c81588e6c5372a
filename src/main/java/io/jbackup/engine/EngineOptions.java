package io.jbackup.engine;

import io.jbackup.text.Human;
import io.jbackup.error.UsageException;

import java.time.Duration;

/**
 * Tuning of the backup pipeline, validated up front.
 *
 * @param bufferBytes      memory for chunk data between NBD reads and the repository (bounds the pipeline)
 * @param statusWindow     bytes of the disk asked per BLOCK_STATUS request while replies are fragmented; after a
 *                         reply of few extents the window doubles, up to 4 GiB (see DiskBackup)
 * @param retries          reconnect attempts after a dropped or silent NBD connection, counted since the backup last
 *                         made progress (a read or block-status reply)
 * @param retryBackoff     first wait before reconnecting; doubles each attempt (capped at 30 s)
 * @param parallelDisks    disks of one set backed up at once
 * @param diskLockWait     how long to wait for another run backing up the same disk (its disk lock) before failing
 *                         with {@link io.jbackup.store.DiskBusyException}; zero: fail at once
 */
public record EngineOptions(long bufferBytes, long statusWindow, int retries, Duration retryBackoff, int parallelDisks,
                            Duration diskLockWait) {
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
            throw new UsageException("retry backoff " + Human.duration(retryBackoff) + " (expected: >= 0)");
        }
        if (parallelDisks < 1 || parallelDisks > 64) {
            throw new UsageException("parallel disks " + parallelDisks + " (expected: 1 .. 64)");
        }
        if (diskLockWait == null || diskLockWait.isNegative()) {
            throw new IllegalArgumentException("disk lock wait " + diskLockWait + " (expected: >= 0)");
        }
    }

    public static EngineOptions defaults() {
        return new EngineOptions(32L << 20, 1L << 30, 5, Duration.ofSeconds(1), 4, Duration.ZERO);
    }

    public EngineOptions withRetries(int n, Duration backoff) {
        return new EngineOptions(bufferBytes, statusWindow, n, backoff, parallelDisks, diskLockWait);
    }

    public EngineOptions withBufferBytes(long n) {
        return new EngineOptions(n, statusWindow, retries, retryBackoff, parallelDisks, diskLockWait);
    }

    public EngineOptions withDiskLockWait(Duration wait) {
        return new EngineOptions(bufferBytes, statusWindow, retries, retryBackoff, parallelDisks, wait);
    }
}
