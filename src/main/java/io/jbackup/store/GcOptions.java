package io.jbackup.store;

import io.jbackup.text.Human;
import io.jbackup.error.UsageException;

import java.time.Duration;
import java.util.function.Consumer;

/**
 * How {@link Repository#gc} runs, validated up front.
 *
 * @param repackThresholdPercent a pack whose live record bytes are below this share of its record bytes is
 *                               rewritten (0 = never repack, 100 = repack any pack with garbage); packs with no
 *                               live chunk are always deleted
 * @param maxWait                how long to wait for backups that were running when chunks were condemned; when
 *                               exceeded, the gc is rolled back (nothing deleted) and reported as deferred
 * @param waitLock               how long to wait for another gc or prune holding the maintenance lock
 * @param dryRun                 only report what would be reclaimed
 * @param progress               receives one line per phase ("mark", "condemn", "wait", ...); never null
 * @param grace                  in an object store, packs and index objects younger than this are never deleted or
 *                               repacked: they may belong to a backup still running on another host, whose manifest
 *                               is not written yet (default {@link #DEFAULT_GRACE}; ignored for a local repository,
 *                               where gc sees every running backup in the catalog)
 */
public record GcOptions(int repackThresholdPercent, Duration maxWait, Duration waitLock, boolean dryRun,
                        Consumer<String> progress, Duration grace) {
    public static final int DEFAULT_REPACK_THRESHOLD = 50;
    /** Longer than any backup is expected to run. */
    public static final Duration DEFAULT_GRACE = Duration.ofHours(24);

    public GcOptions(int repackThresholdPercent, Duration maxWait, Duration waitLock, boolean dryRun,
                     Consumer<String> progress) {
        this(repackThresholdPercent, maxWait, waitLock, dryRun, progress, DEFAULT_GRACE);
    }

    public GcOptions {
        grace = grace == null ? DEFAULT_GRACE : grace;
        if (grace.isNegative()) {
            throw new UsageException("gc grace period " + grace + " is negative");
        }
        if (repackThresholdPercent < 0 || repackThresholdPercent > 100) {
            throw new UsageException("repack threshold " + repackThresholdPercent + "% (expected: 0 .. 100)");
        }
        if (maxWait == null || maxWait.isNegative()) {
            throw new UsageException("gc max wait " + Human.duration(maxWait) + " (expected: >= 0)");
        }
        waitLock = waitLock == null ? Duration.ZERO : waitLock;
        if (waitLock.isNegative()) {
            throw new UsageException("lock wait " + waitLock + " is negative");
        }
        progress = progress == null ? s -> { } : progress;
    }

    /** Repack below 50%, wait up to 24 hours for running backups, fail at once if another gc runs. */
    public static GcOptions defaults() {
        return new GcOptions(DEFAULT_REPACK_THRESHOLD, Duration.ofHours(24), Duration.ZERO, false, null);
    }

    public GcOptions withRepackThreshold(int pct) {
        return new GcOptions(pct, maxWait, waitLock, dryRun, progress, grace);
    }

    public GcOptions withDryRun(boolean d) {
        return new GcOptions(repackThresholdPercent, maxWait, waitLock, d, progress, grace);
    }

    public GcOptions withProgress(Consumer<String> p) {
        return new GcOptions(repackThresholdPercent, maxWait, waitLock, dryRun, p, grace);
    }

    public GcOptions withMaxWait(Duration d) {
        return new GcOptions(repackThresholdPercent, d, waitLock, dryRun, progress, grace);
    }

    public GcOptions withGrace(Duration g) {
        return new GcOptions(repackThresholdPercent, maxWait, waitLock, dryRun, progress, g);
    }

    public GcOptions withWaitLock(Duration d) {
        return new GcOptions(repackThresholdPercent, maxWait, d, dryRun, progress, grace);
    }
}
