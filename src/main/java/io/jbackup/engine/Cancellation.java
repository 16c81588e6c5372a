package io.jbackup.engine;

import java.util.concurrent.CancellationException;

/** A cancellation flag shared by a job and whoever stops it (Ctrl-C, SIGTERM, a scheduler). */
public final class Cancellation {
    private volatile String reason;

    /** Requests cancellation; the job stops at its next check and aborts cleanly. */
    public void cancel(String why) {
        if (reason == null) {
            reason = why;
        }
    }

    public boolean isCancelled() {
        return reason != null;
    }

    /** Throws {@link CancellationException} if cancelled. */
    public void check() {
        String r = reason;
        if (r != null) {
            throw new CancellationException("cancelled: " + r);
        }
    }
}
