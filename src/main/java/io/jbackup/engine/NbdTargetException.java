package io.jbackup.engine;

import java.io.IOException;

/**
 * The NBD export a restore writes to failed: it answered a write or flush with an error (its disk is full, its image
 * is read-only), dropped the connection or broke the protocol. The message names the target's URI; the cause is the
 * NBD client's exception. Mapped apart from the same exceptions of a backup's source, which are the source's fault.
 */
public class NbdTargetException extends IOException {
    private static final long serialVersionUID = 1L;

    NbdTargetException(String message, Throwable cause) {
        super(message, cause);
    }

    /** A write or flush to the target at {@code uri} failed. */
    public static NbdTargetException failed(String uri, String doing, Throwable cause) {
        return new NbdTargetException(doing + " the NBD restore target " + uri + " failed: " + RestoreTargetException.describe(cause)
            + "; check that server (its log, its free space) and restore again", cause);
    }

    /** The restore could not connect to its NBD target, or the server refused the export. */
    public static final class Unreachable extends NbdTargetException {
        private static final long serialVersionUID = 1L;

        public Unreachable(String uri, Throwable cause) {
            super("cannot open the NBD restore target " + uri + ": " + RestoreTargetException.describe(cause), cause);
        }
    }
}
