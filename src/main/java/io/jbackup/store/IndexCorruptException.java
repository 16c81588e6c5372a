package io.jbackup.store;

import io.jbackup.model.RepositoryException;

/**
 * An index file is missing or failed its checks (bounds, size, MACs, metadata): the backup's chunk map cannot be
 * trusted. The message names the file (and so the backup id) and what failed. {@code restore --ignore-errors}
 * salvages what a damaged file still holds ({@link Repository#openBackup(String, boolean)}); a missing one holds
 * nothing.
 */
public final class IndexCorruptException extends RepositoryException {
    private static final long serialVersionUID = 1L;

    public IndexCorruptException(String message) {
        super(message);
    }

    public IndexCorruptException(String message, Throwable cause) {
        super(message, cause);
    }
}
