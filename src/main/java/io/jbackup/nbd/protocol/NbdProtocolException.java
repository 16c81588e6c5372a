package io.jbackup.nbd.protocol;

import java.io.IOException;

/**
 * The peer violated the NBD protocol (bad magic, a length beyond a limit, an unexpected reply or cookie,
 * an early EOF). The message names what was expected and what arrived.
 */
public class NbdProtocolException extends IOException {
    private static final long serialVersionUID = 1L;

    public NbdProtocolException(String message) {
        super(message);
    }

    public NbdProtocolException(String message, Throwable cause) {
        super(message, cause);
    }
}
