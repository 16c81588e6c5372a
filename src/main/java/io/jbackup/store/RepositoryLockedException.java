package io.jbackup.store;

import io.jbackup.model.RepositoryException;

/** Another process (or this one) holds the repository lock in a conflicting mode. The message names the holders. */
public final class RepositoryLockedException extends RepositoryException {
    private static final long serialVersionUID = 1L;

    public RepositoryLockedException(String message) {
        super(message);
    }
}
