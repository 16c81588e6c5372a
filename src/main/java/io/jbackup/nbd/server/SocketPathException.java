package io.jbackup.nbd.server;

import java.net.BindException;
import java.nio.file.Path;

/**
 * A unix socket path jbackup was to listen on (or to have QEMU listen on) is taken: a running server accepts
 * connections on it, or the path is a file that is not a socket. Nothing at the path was changed; the message
 * names the way out (stop that server, remove the file, or choose another path).
 */
public final class SocketPathException extends BindException {
    /** Why the path cannot be used. */
    public enum Reason {
        /** A server accepts connections on the socket. */
        IN_USE,
        /** The path is a regular file, a directory or another non-socket file. */
        NOT_A_SOCKET
    }

    private final transient Path path;
    private final Reason reason;

    public SocketPathException(Path path, Reason reason, String message) {
        super(message);
        this.path = path;
        this.reason = reason;
    }

    public Path path() {
        return path;
    }

    public Reason reason() {
        return reason;
    }
}
