package io.jbackup.objectstore;

import io.jbackup.error.FullMessage;

import java.io.IOException;

/** A failure of an object store; the subclasses say which kind, so callers never look at messages. */
public class ObjectStoreException extends IOException implements FullMessage {
    private static final long serialVersionUID = 1L;

    public ObjectStoreException(String message) {
        super(message);
    }

    public ObjectStoreException(String message, Throwable cause) {
        super(message, cause);
    }

    private boolean causeForLogOnly;

    /**
     * Marks the message as saying all a user needs: the cause (a client library's exception, with request ids and
     * its own advice) stays for the debug log's stack trace, and error reports stop at this message.
     */
    public ObjectStoreException causeForLogOnly() {
        causeForLogOnly = true;
        return this;
    }

    /** Whether {@link #causeForLogOnly} was called: an error report shows this message without its causes. */
    @Override
    public boolean messageIsFull() {
        return causeForLogOnly;
    }
}
