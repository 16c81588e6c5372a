package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.NbdOptionReplyType;

import java.io.IOException;

/**
 * The server refused an option the client needs (unknown export, TLS required, listing not allowed, ...).
 * The message names the option, the server's error and message, and what to do.
 */
public class NbdHandshakeException extends IOException {
    private static final long serialVersionUID = 1L;

    private final transient NbdOptionReplyType replyType;

    public NbdHandshakeException(String message, NbdOptionReplyType replyType) {
        super(message);
        this.replyType = replyType;
    }

    /** The server's error reply type, or null if the failure was not an option error reply. */
    public NbdOptionReplyType replyType() {
        return replyType;
    }
}
