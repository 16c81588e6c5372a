package io.jbackup.libvirt;

/** libvirt cannot be reached at the connection URI (libvirtd not running, wrong URI, no permission). */
public final class LibvirtConnectionException extends LibvirtException {
    public LibvirtConnectionException(String message) {
        super(message);
    }
}
