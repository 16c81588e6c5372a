package io.jbackup.libvirt;

import io.jbackup.error.NotFoundException;

/** No domain of that name at the connection URI. */
public final class DomainNotFoundException extends NotFoundException {
    public DomainNotFoundException(String message) {
        super(message);
    }
}
