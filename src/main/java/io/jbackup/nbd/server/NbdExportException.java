package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.NbdError;
import java.io.IOException;

/**
 * An export operation failed with a specific NBD error (for example {@link NbdError#EPERM} or
 * {@link NbdError#ENOSPC}); the message is sent to the client in a structured error chunk. Other exceptions
 * reach the client as {@link NbdError#EIO}.
 */
public class NbdExportException extends IOException {
    private static final long serialVersionUID = 1L;

    private final transient NbdError error;

    public NbdExportException(NbdError error, String message) {
        super(message);
        this.error = error;
    }

    public NbdExportException(NbdError error, String message, Throwable cause) {
        super(message, cause);
        this.error = error;
    }

    public NbdError error() {
        return error;
    }
}
