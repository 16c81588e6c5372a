package io.jbackup.engine;

import java.io.IOException;

/**
 * A restore target could not be written: its file system is full, it is read-only, the device failed. The message
 * names the target and the way out; the cause is the I/O error as the operating system reported it.
 */
public final class RestoreTargetException extends IOException {
    private static final long serialVersionUID = 1L;

    public RestoreTargetException(String target, IOException cause) {
        super("cannot write restore target " + target + " (" + describe(cause) + "); free space there or restore "
            + "to another place (a new file that was being written is removed)", cause);
    }

    /** The message of {@code e}, or its class's name when it has none. */
    static String describe(Throwable e) {
        String m = e.getMessage();
        return m == null || m.isBlank() ? e.getClass().getSimpleName() : m;
    }
}
