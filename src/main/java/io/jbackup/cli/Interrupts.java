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
    private Interrupts() {
    }

    static <T> T run(Cancellation cancel, Callable<T> body) throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            cancel.cancel("interrupted by a signal");
            System.err.println("jbackup: interrupted; stopping cleanly (the repository keeps no half backup)...");
            try {
                done.await(60, TimeUnit.SECONDS);
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
