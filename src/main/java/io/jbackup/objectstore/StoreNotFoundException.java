package io.jbackup.objectstore;

/** The store itself does not exist: no such bucket, or no such directory. */
public class StoreNotFoundException extends ObjectStoreException {
    private static final long serialVersionUID = 1L;

    public StoreNotFoundException(String message, Throwable cause) {
        super(message, cause);
    }
}
