package io.jbackup.store;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.function.BooleanSupplier;

/**
 * The per-disk backup lock: one backup of a disk into a repository at a time, whoever starts it (the backup
 * commands, {@code run-due}, {@code daemon}, live backups). A {@link FileMutex} on
 * {@code DIR/locks/disk-VM--DISK.lock} ({@code _} for a disk without VM), whose text names the holder.
 */
public final class DiskLock {
    private static final Logger LOG = LoggerFactory.getLogger(DiskLock.class);
    private static final long POLL_MILLIS = 100;
    /** {@code --wait-lock} without a value: no limit in practice (a century; fits in nanoseconds). */
    public static final Duration NO_LIMIT = Duration.ofDays(36_500);

    private DiskLock() {
    }

    /** {@code DIR/locks/disk-VM--DISK.lock}. */
    public static Path file(Path repoDir, String vm, String disk) {
        return repoDir.resolve(RepositoryLock.RECORD_DIR).resolve("disk-" + (vm == null ? "_" : vm) + "--" + disk
            + ".lock");
    }

    /**
     * Takes the lock of the disk, waiting up to {@code wait} for its holder (zero: not at all); throws
     * {@link DiskBusyException} naming the holder when it cannot, {@link java.util.concurrent.CancellationException}
     * when {@code stop} says so while waiting.
     */
    public static FileMutex acquire(Path repoDir, String vm, String disk, String what, Duration wait,
                                    BooleanSupplier stop) throws IOException {
        Path f = file(repoDir, vm, disk);
        String label = vm == null ? disk : vm + "/" + disk;
        long deadline = System.nanoTime() + wait.toNanos();
        boolean logged = false;
        while (true) {
            Optional<FileMutex> m = FileMutex.tryAcquire(f, what);
            if (m.isPresent()) {
                LOG.debug("disk lock {} taken: {}", f, what);
                return m.get();
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new DiskBusyException(label, f, FileMutex.holderOf(f), wait);
            }
            if (!logged) {
                LOG.info("disk {} is being backed up by {}; waiting {}", label, FileMutex.holder(f), waiting(wait));
                logged = true;
            }
            if (stop.getAsBoolean()) {
                throw new java.util.concurrent.CancellationException("stopped while waiting for the lock of disk "
                    + label);
            }
            try {
                Thread.sleep(Math.max(1, Math.min(POLL_MILLIS, left / 1_000_000)));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while waiting for the lock of disk " + label);
            }
        }
    }

    /** A wait for messages: {@code 90s}, {@code 10m}, {@code 2h}. */
    static String describe(Duration d) {
        long s = d.toSeconds();
        return s % 3600 == 0 && s > 0 ? s / 3600 + "h" : s % 60 == 0 && s > 0 ? s / 60 + "m" : s + "s";
    }

    /** {@code up to 10m}, or {@code without limit} for {@link #NO_LIMIT}. */
    static String waiting(Duration d) {
        return d.compareTo(NO_LIMIT) >= 0 ? "without limit" : "up to " + describe(d);
    }
}
