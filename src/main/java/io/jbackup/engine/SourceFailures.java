package io.jbackup.engine;

import io.jbackup.nbd.client.NbdCommandException;
import io.jbackup.nbd.protocol.NbdConnectionClosedException;
import io.jbackup.nbd.protocol.NbdError;
import io.jbackup.nbd.protocol.NbdProtocolException;

/**
 * Which failures of an NBD source a backup retries on a new connection, decided by the exception's type only.
 *
 * <ul>
 *   <li>Transport failures are retried: the connection was reset or closed ({@link NbdConnectionClosedException},
 *       socket errors), the server was silent past a timeout, or it is shutting down ({@code ESHUTDOWN}).</li>
 *   <li>Protocol violations ({@link NbdProtocolException}: bad magic, a simple reply where structured replies were
 *       negotiated, a chunk without DONE, inconsistent extents, an unknown cookie, ...) are not: the same server
 *       repeats them on every connection, so the disk fails at once.</li>
 *   <li>An NBD error the server returned for a command (e.g. {@code EIO} at an offset) is not retried either.</li>
 * </ul>
 */
final class SourceFailures {
    private SourceFailures() {
    }

    /** True when a new connection may succeed where this failure happened. */
    static boolean isTransient(Throwable t) {
        if (t instanceof NbdCommandException ce) {
            return ce.error().equals(NbdError.ESHUTDOWN);
        }
        if (t instanceof NbdConnectionClosedException) {
            return true;
        }
        return !(t instanceof NbdProtocolException);
    }
}
