package io.jbackup.model;

import java.io.IOException;

/**
 * The repository cannot do what was asked: it is missing, locked, corrupt, of an unknown format, or the
 * passphrase is wrong. The message names the problem and the way out.
 */
public class RepositoryException extends IOException {
    private static final long serialVersionUID = 1L;

    public RepositoryException(String message) {
        super(message);
    }

    public RepositoryException(String message, Throwable cause) {
        super(message, cause);
    }
}
