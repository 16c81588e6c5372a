package io.jbackup.store;

import io.jbackup.model.RepositoryException;

/**
 * A repository file or object ends before the bytes a read asked for: a pack, index or other object cut short (a
 * full disk, a crash of another tool, damage). Readers that can say more about what the bytes were, such as the
 * chunk reader naming the chunk and the backups that need it, catch this type.
 */
public class TruncatedObjectException extends RepositoryException {
    private static final long serialVersionUID = 1L;

    public TruncatedObjectException(String message) {
        super(message);
    }
}
