package io.jbackup.engine;

/**
 * Receives progress of long jobs (backup, restore, verify). Called from the job's driver thread; implementations
 * must be cheap and thread-safe (several disks run in parallel).
 */
public interface ProgressListener {
    /** No progress reporting; messages and warnings go to the log (see {@link #message}, {@link #warning}). */
    ProgressListener NONE = new ProgressListener() {
    };

    /** A job on {@code disk} starts; {@code totalBytes} is the disk range it will scan. */
    default void started(String disk, long totalBytes) {
    }

    /** {@code doneBytes} of the disk range are finished; {@code bytesRead} were read from the source so far. */
    default void progress(String disk, long doneBytes, long bytesRead) {
    }

    /**
     * A human-readable note, e.g. why {@code auto} chose a full backup. The listener is the only channel for it
     * (callers do not log it as well, so that it appears once); by default it is logged at INFO.
     */
    default void message(String disk, String text) {
        org.slf4j.LoggerFactory.getLogger("jbackup").info("{}: {}", disk, text);
    }

    /**
     * Something went wrong but the job goes on, e.g. "connection lost; reconnecting in 2000 ms". The listener is
     * the only channel for it; by default it is logged at WARN (so a run without a console, e.g. a scheduled one or
     * {@code --json}, still shows it on standard error and in its run log).
     */
    default void warning(String disk, String text) {
        org.slf4j.LoggerFactory.getLogger("jbackup").warn("{}: {}", disk, text);
    }

    /** The job on {@code disk} finished (successfully or not). */
    default void finished(String disk) {
    }
}
