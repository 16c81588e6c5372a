package io.jbackup.libvirt;

/** Another job (a backup, a migration, a block job) runs on the domain: nothing was changed; try again later. */
public final class DomainBusyException extends LibvirtException {
    public DomainBusyException(String message) {
        super(message);
    }
}
