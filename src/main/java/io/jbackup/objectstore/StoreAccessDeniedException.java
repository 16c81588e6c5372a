package io.jbackup.objectstore;

/**
 * The store refused the request: wrong or expired credentials (a bad secret key gives this), or no permission on
 * the bucket, prefix or directory. Retrying does not help.
 */
public class StoreAccessDeniedException extends ObjectStoreException {
    private static final long serialVersionUID = 1L;

    public StoreAccessDeniedException(String message, Throwable cause) {
        super(message, cause);
    }
}
