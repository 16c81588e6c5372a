package io.jbackup.objectstore;

/**
 * A conditional write lost: the object existed ({@code If-None-Match: *}) or had another version
 * ({@code If-Match}). {@link ObjectStore#create} and {@link ObjectStore#replace} report it as an empty result; the
 * type exists so that implementations map it without looking at messages.
 */
public class PreconditionFailedException extends ObjectStoreException {
    private static final long serialVersionUID = 1L;

    public PreconditionFailedException(String message, Throwable cause) {
        super(message, cause);
    }
}
