package io.jbackup.engine;

/**
 * Receives progress of long jobs (backup, restore, verify). Called from the job's driver thread; implementations
 * must be cheap and thread-safe (several disks run in parallel).
 */
public interface ProgressListener {
    /** No progress reporting. */
    ProgressListener NONE = new ProgressListener() {
    };

    /** A job on {@code disk} starts; {@code totalBytes} is the disk range it will scan. */
    default void started(String disk, long totalBytes) {
    }

    /** {@code doneBytes} of the disk range are finished; {@code bytesRead} were read from the source so far. */
    default void progress(String disk, long doneBytes, long bytesRead) {
    }

    /** A human-readable note, e.g. "connection lost, retrying in 2 s". */
    default void message(String disk, String text) {
    }

    /** The job on {@code disk} finished (successfully or not). */
    default void finished(String disk) {
    }
}
