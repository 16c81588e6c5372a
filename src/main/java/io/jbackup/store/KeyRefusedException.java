package io.jbackup.store;

import io.jbackup.model.RepositoryException;

/**
 * A key change that is refused as asked (removing the last key or the key in use, an unknown key id, a new
 * passphrase equal to the current one): a usage error, not a repository fault. Nothing was changed.
 */
public final class KeyRefusedException extends RepositoryException {
    private static final long serialVersionUID = 1L;

    public KeyRefusedException(String message) {
        super(message);
    }
}
