package io.jbackup.nbd.client;

import java.io.IOException;

/** A connect, handshake or request did not finish within its configured timeout ({@link ClientOptions}). */
public class NbdTimeoutException extends IOException {
    private static final long serialVersionUID = 1L;

    public NbdTimeoutException(String message) {
        super(message);
    }
}
