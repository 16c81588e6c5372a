package io.jbackup.qmp;

/** A QMP or guest-agent command, or an awaited event, did not arrive in time. */
public class QmpTimeoutException extends QmpConnectionException {
    private static final long serialVersionUID = 1L;

    public QmpTimeoutException(String message) {
        super(message);
    }
}
