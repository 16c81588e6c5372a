package io.jbackup.nbd.client;

import java.io.IOException;

/** The NBD server could not be reached (no socket file, connection refused, host unknown). */
public class NbdConnectException extends IOException {
    private static final long serialVersionUID = 1L;

    public NbdConnectException(String message, Throwable cause) {
        super(message, cause);
    }
}
