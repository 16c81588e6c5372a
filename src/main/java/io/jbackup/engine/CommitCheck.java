package io.jbackup.engine;

import java.io.IOException;

/**
 * A last check before a disk's backup commits, after every chunk is stored: that the source still showed the
 * point in time while it was read (for libvirt: that the domain's backup job is still there). Throwing aborts the
 * backup of that disk; nothing of it becomes visible.
 */
@FunctionalInterface
public interface CommitCheck {
    /** No check. */
    CommitCheck NONE = job -> {
    };

    /** Throws when {@code job}'s backup must not commit; the message says why. */
    void check(DiskJob job) throws IOException;
}
