package io.jbackup.qmp;

import java.io.IOException;

/**
 * QEMU (or the guest agent) answered a command with an error: {@code {"error": {"class": ..., "desc": ...}}}.
 * The class is QEMU's coarse error class ({@code GenericError}, {@code DeviceNotFound}, {@code CommandNotFound},
 * ...); the description is QEMU's own sentence, kept verbatim in the message.
 */
public class QmpException extends IOException {
    private static final long serialVersionUID = 1L;

    private final String command;
    private final String errorClass;
    private final String description;

    public QmpException(String command, String errorClass, String description) {
        super(command + " failed: " + description + " (" + errorClass + ")");
        this.command = command;
        this.errorClass = errorClass;
        this.description = description;
    }

    /** The command that failed, e.g. {@code blockdev-add}. */
    public String command() {
        return command;
    }

    /** QEMU's error class, e.g. {@code GenericError}. */
    public String errorClass() {
        return errorClass;
    }

    /** QEMU's description of the error. */
    public String description() {
        return description;
    }
}
