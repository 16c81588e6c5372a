package io.jbackup.store;

import io.jbackup.model.RepositoryException;

/**
 * A {@link DeletionLease} is no longer held: another process took it over, it was removed, or it expired because
 * it could not be renewed (the object store was unreachable). Whoever got it must stop deleting at once; nothing it
 * deleted before is at risk, and running the command again resumes the work. The message names what happened.
 */
public final class LeaseLostException extends RepositoryException {
    private static final long serialVersionUID = 1L;

    public LeaseLostException(String message) {
        super(message);
    }

    public LeaseLostException(String message, Throwable cause) {
        super(message, cause);
    }
}
