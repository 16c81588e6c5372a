package io.jbackup.cli;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * SIGTERM and Ctrl-C for a command that runs until it is stopped ({@code serve}, {@code mount}): the signal wakes
 * the thread in {@link #await}, which shuts down in order and then closes this; the process then exits with 0 (not
 * the JVM's 143). If the shutdown takes more than 60 seconds the process exits anyway.
 *
 * <pre>{@code
 * try (StopSignal signal = StopSignal.install("jbackup-serve-shutdown")) {
 *     ... start ...
 *     signal.await();
 *     ... stop in order ...
 * }
 * }</pre>
 */
final class StopSignal implements AutoCloseable {
    private final CountDownLatch stop = new CountDownLatch(1);
    private final CountDownLatch closed = new CountDownLatch(1);
    private final Thread hook;

    private StopSignal(String threadName) {
        hook = new Thread(() -> {
            stop.countDown();
            try {
                closed.await(60, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            System.out.flush();
            System.err.flush();
            Runtime.getRuntime().halt(ExitCodes.OK);
        }, threadName);
    }

    /** Installs the shutdown hook, named {@code threadName}. */
    static StopSignal install(String threadName) {
        StopSignal s = new StopSignal(threadName);
        Runtime.getRuntime().addShutdownHook(s.hook);
        return s;
    }

    /** Waits for SIGTERM or Ctrl-C. */
    void await() throws InterruptedException {
        stop.await();
    }

    /** The shutdown is done: the hook (when running) lets the process exit; else it is removed. */
    @Override
    public void close() {
        closed.countDown();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException shuttingDown) {
            // the hook is running and exits with 0 once we return
        }
    }
}
