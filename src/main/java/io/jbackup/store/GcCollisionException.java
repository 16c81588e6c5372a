package io.jbackup.store;

import io.jbackup.model.RepositoryException;

/**
 * A backup could not commit because a gc on another host deleted chunks it reuses while it ran. Nothing was lost and
 * no backup changed: running the backup again stores those chunks anew. Its own type (and {@code --json} error code
 * {@code gc-collision}) so that a script can tell this failure, which a retry resolves, from damage.
 */
public final class GcCollisionException extends RepositoryException {
    private static final long serialVersionUID = 1L;

    public GcCollisionException(String message) {
        super(message);
    }
}
