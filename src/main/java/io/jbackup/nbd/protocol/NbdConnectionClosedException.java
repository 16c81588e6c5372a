package io.jbackup.nbd.protocol;

/**
 * The peer closed the connection (EOF), before or in the middle of a message. Unlike the other
 * {@link NbdProtocolException}s this is a transport failure, not a lie about the protocol: a new connection may well
 * work, so backups retry it (see {@code io.jbackup.engine.SourceFailures}). It stays a subclass so that a decoder's
 * contract holds: every failure to decode is an {@link NbdProtocolException}.
 */
public class NbdConnectionClosedException extends NbdProtocolException {
    private static final long serialVersionUID = 1L;

    public NbdConnectionClosedException(String message) {
        super(message);
    }
}
