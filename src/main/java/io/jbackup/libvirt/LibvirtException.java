package io.jbackup.libvirt;

import java.io.IOException;

/** libvirt refused or failed a command; the message is libvirt's own, with what jbackup was doing. */
public class LibvirtException extends IOException {
    public LibvirtException(String message) {
        super(message);
    }

    public LibvirtException(String message, Throwable cause) {
        super(message, cause);
    }
}
