package io.jbackup.engine;

import java.io.IOException;

/**
 * An incremental backup is not safe (missing bitmap, changed size, no usable parent, chunk size mismatch).
 * The message names the reason and the fix ({@code jbackup full} or {@code jbackup auto}).
 */
public class BackupRefusedException extends IOException {
    private static final long serialVersionUID = 1L;

    public BackupRefusedException(String message) {
        super(message);
    }
}
