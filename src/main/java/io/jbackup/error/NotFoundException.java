package io.jbackup.error;

/**
 * Something the user named does not exist: a backup id, a disk or VM in the repository, a scheduled run, a bitmap
 * or an image. The command line exits with 2 and reports the error code {@code not-found}.
 */
public class NotFoundException extends UsageException {
    private static final long serialVersionUID = 1L;

    public NotFoundException(String message) {
        super(message);
    }

    public NotFoundException(String message, Throwable cause) {
        super(message, cause);
    }
}
