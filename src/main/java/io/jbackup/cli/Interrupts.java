package io.jbackup.cli;

import io.jbackup.engine.Cancellation;

import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Ctrl-C and SIGTERM for long commands: the signal cancels the job, which aborts cleanly (no half backup stays
 * visible); the process then exits with {@link ExitCodes#INTERRUPTED}. If the job does not stop within 60 seconds
 * the process exits anyway; the repository stays consistent by its write order.
 */
final class Interrupts {
    /** How long the signal waits, once the job stopped, for the command to report (error line, --json object). */
    private static final long REPORT_WAIT_SECONDS = 5;

    /** Counted down by {@link Main} once the command returned and reported its result or error. */
    private static final CountDownLatch REPORTED = new CountDownLatch(1);

    private Interrupts() {
    }

    /**
     * The command has returned and printed what it reports (its error line and, with {@code --json}, the one JSON
     * object): a signal handler waiting to exit may now do so.
     */
    static void reported() {
        REPORTED.countDown();
    }

    static <T> T run(Cancellation cancel, Callable<T> body) throws Exception {
        return run(cancel, "stopping cleanly (the repository keeps no half backup)", body);
    }

    /** As {@link #run(Cancellation, Callable)}, saying {@code stopping} (what is kept) when a signal arrives. */
    static <T> T run(Cancellation cancel, String stopping, Callable<T> body) throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            cancel.cancel("interrupted by a signal");
            System.err.println("jbackup: interrupted; " + stopping + "...");
            try {
                done.await(60, TimeUnit.SECONDS);
                // the job stopped: let the command print its error (and --json its error object, exit code 7) before
                // this exits; halting right away lost them
                REPORTED.await(REPORT_WAIT_SECONDS, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            System.err.flush();
            System.out.flush();
            Runtime.getRuntime().halt(ExitCodes.INTERRUPTED);
        }, "jbackup-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        try {
            return body.call();
        } finally {
            done.countDown();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook is running; it exits with INTERRUPTED
            }
        }
    }
}
