package io.jbackup.error;

/**
 * An exception whose message says all a user needs: the causes it carries (a client library's exceptions, with
 * request ids, attempt counts and advice of their own) are for the debug log's stack trace, and
 * {@link ErrorText#describe} stops at its message.
 */
public interface FullMessage {
    /** Whether this exception's message is complete without its causes. */
    boolean messageIsFull();
}
