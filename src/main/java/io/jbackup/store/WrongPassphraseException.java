package io.jbackup.store;

import io.jbackup.model.RepositoryException;

/** The passphrase does not open the repository's key file. Nothing was changed. */
public final class WrongPassphraseException extends RepositoryException {
    private static final long serialVersionUID = 1L;

    public WrongPassphraseException(String message) {
        super(message);
    }
}
