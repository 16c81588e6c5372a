package io.jbackup.store;

import io.jbackup.model.RepositoryException;

/**
 * An index file failed its checks (bounds, size, MACs, metadata): the backup's chunk map cannot be trusted. The
 * message names the file (and so the backup id) and what failed. {@code restore --ignore-errors} salvages what the
 * file still holds ({@link Repository#openBackup(String, boolean)}).
 */
public final class IndexCorruptException extends RepositoryException {
    private static final long serialVersionUID = 1L;

    public IndexCorruptException(String message) {
        super(message);
    }
}
