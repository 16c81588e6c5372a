package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.NbdError;

import java.io.IOException;

/**
 * The server failed one command (an error in a simple reply, or an {@code ERROR}/{@code ERROR_OFFSET} chunk). The
 * connection stays usable. The message names the command, its range, the error and the server's message.
 */
public class NbdCommandException extends IOException {
    private static final long serialVersionUID = 1L;

    private final transient NbdError error;
    private final long offset;

    /**
     * @param error  the NBD error value
     * @param offset the failing offset from {@code ERROR_OFFSET}, or -1 when the server did not say
     */
    public NbdCommandException(String message, NbdError error, long offset) {
        super(message);
        this.error = error;
        this.offset = offset;
    }

    public NbdError error() {
        return error;
    }

    /** The offset the server reported with {@code ERROR_OFFSET}, or -1. */
    public long offset() {
        return offset;
    }
}
