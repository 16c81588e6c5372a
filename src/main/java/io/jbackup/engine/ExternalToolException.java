package io.jbackup.engine;

import java.io.IOException;

/** An external program jbackup runs (qemu-img, qemu-io, qemu-nbd) is missing or failed. */
public class ExternalToolException extends IOException {
    private static final long serialVersionUID = 1L;

    public ExternalToolException(String message) {
        super(message);
    }
}
