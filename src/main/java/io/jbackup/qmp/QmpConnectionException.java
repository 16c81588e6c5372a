package io.jbackup.qmp;

import java.io.IOException;

/**
 * The QMP or guest-agent connection failed: the socket is missing or refused, the peer sent something that is not
 * its protocol or a message over the size limit, or it closed the connection. Commands pending on the connection
 * fail with this exception.
 */
public class QmpConnectionException extends IOException {
    private static final long serialVersionUID = 1L;

    public QmpConnectionException(String message) {
        super(message);
    }

    public QmpConnectionException(String message, Throwable cause) {
        super(message, cause);
    }
}
