package io.jbackup.objectstore;

import java.io.IOException;

/** A failure of an object store; the subclasses say which kind, so callers never look at messages. */
public class ObjectStoreException extends IOException {
    private static final long serialVersionUID = 1L;

    public ObjectStoreException(String message) {
        super(message);
    }

    public ObjectStoreException(String message, Throwable cause) {
        super(message, cause);
    }
}
