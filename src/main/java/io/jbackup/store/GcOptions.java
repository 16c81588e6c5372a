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
 */
public record GcOptions(int repackThresholdPercent, Duration maxWait, Duration waitLock, boolean dryRun,
                        Consumer<String> progress) {
    public static final int DEFAULT_REPACK_THRESHOLD = 50;

    public GcOptions {
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
        return new GcOptions(pct, maxWait, waitLock, dryRun, progress);
    }

    public GcOptions withDryRun(boolean d) {
        return new GcOptions(repackThresholdPercent, maxWait, waitLock, d, progress);
    }

    public GcOptions withProgress(Consumer<String> p) {
        return new GcOptions(repackThresholdPercent, maxWait, waitLock, dryRun, p);
    }

    public GcOptions withMaxWait(Duration d) {
        return new GcOptions(repackThresholdPercent, d, waitLock, dryRun, progress);
    }

    public GcOptions withWaitLock(Duration d) {
        return new GcOptions(repackThresholdPercent, maxWait, d, dryRun, progress);
    }
}
