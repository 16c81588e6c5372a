package io.jbackup.store;

import io.jbackup.model.RepositoryException;

/**
 * The directory given as the repository is not one: it does not exist, is not a directory, has no
 * {@code config.json}, or cannot be read. The message names the path and how to create a repository.
 */
public final class NotARepositoryException extends RepositoryException {
    private static final long serialVersionUID = 1L;

    public NotARepositoryException(String message) {
        super(message);
    }

    public NotARepositoryException(String message, Throwable cause) {
        super(message, cause);
    }
}
