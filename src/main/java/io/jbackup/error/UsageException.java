package io.jbackup.error;

/**
 * What the user asked for cannot work as given: a bad option value, options that exclude each other, a target of
 * the wrong kind. The message names the problem and the way out. The command line exits with 2 ("usage").
 *
 * <p>It extends {@link IllegalArgumentException} so code that validates arguments keeps catching both, but only
 * this type (not a plain {@code IllegalArgumentException}, which means a failed internal check) is a usage error.
 */
public class UsageException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public UsageException(String message) {
        super(message);
    }

    public UsageException(String message, Throwable cause) {
        super(message, cause);
    }
}
