package io.jbackup.objectstore;

/**
 * A failure that may pass: a server error (5xx), throttling, a reset or timed-out connection, a short read that
 * stayed short. The client has already retried; a caller may retry later, and loses nothing by failing now.
 */
public class TransientStoreException extends ObjectStoreException {
    private static final long serialVersionUID = 1L;

    public TransientStoreException(String message, Throwable cause) {
        super(message, cause);
    }
}
