package io.jbackup.store;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;

/**
 * Another run is backing up the same disk into the same repository (it holds the disk's lock,
 * {@code DIR/locks/disk-VM--DISK.lock}). Nothing was read or written; the message names the holder (pid, host,
 * since when, what) and the way out ({@code --wait-lock[=DURATION]}, or later).
 */
public final class DiskBusyException extends IOException {
    private final String disk;
    private final transient FileMutex.Holder holder;

    DiskBusyException(String disk, Path lockFile, Optional<FileMutex.Holder> holder, Duration waited) {
        super("disk " + disk + " is being backed up by " + holder.map(h -> "pid " + h.pid() + " on " + h.host()
            + " since " + h.since() + " (" + h.what() + ")").orElse("another process (lock " + lockFile + ")")
            + (waited.isZero() ? "; wait with --wait-lock[=DURATION] or try later"
            : "; gave up after waiting " + DiskLock.describe(waited) + " (--wait-lock)"));
        this.disk = disk;
        this.holder = holder.orElse(null);
    }

    /** The disk, as {@code VM/DISK} or {@code DISK}. */
    public String disk() {
        return disk;
    }

    /** The run holding the lock, if its lock file names it. */
    public Optional<FileMutex.Holder> holder() {
        return Optional.ofNullable(holder);
    }
}
