package io.jbackup.engine;

import java.io.IOException;

/**
 * A writable overlay that another jbackup process (a {@code serve --writable}, or a {@code commit-overlay}) holds
 * open: nothing was changed; stop that process first. Exit 2, like a disk or repository held by another run.
 */
public final class OverlayBusyException extends IOException {
    public OverlayBusyException(String message) {
        super(message);
    }
}
