package io.jbackup.store;

import io.jbackup.model.RepositoryException;

/**
 * The command needs the key of an encrypted repository and no passphrase was given (or the repository was opened
 * without its key, for listing only). The message names the ways to give it. Nothing was changed.
 */
public final class PassphraseRequiredException extends RepositoryException {
    private static final long serialVersionUID = 1L;

    public PassphraseRequiredException(String message) {
        super(message);
    }
}
