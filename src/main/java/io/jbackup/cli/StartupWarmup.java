package io.jbackup.cli;

import java.security.MessageDigest;
import java.util.Set;
import java.util.concurrent.CountDownLatch;

/**
 * Start-up work done on a second thread while the main thread builds the command line: a command's start is
 * single-threaded (the JVM runs it in the interpreter), and on a host with two cores the other one is idle then.
 *
 * <p>First the warm-up presets the native libraries ({@link NativeLibraries#preset}: their checksums) and loads
 * SQLite's and zstd's; {@link #await} waits for this part, because the SQLite driver reads the library path that the
 * preset sets. Then, while the command already runs, it initialises what the command reaches next: the JSON mapper of
 * the repository files, the SHA-256 provider, the logger factory and, for commands that speak NBD, netty's buffer
 * allocator and (for backups) the NBD client's I/O thread group. Each step initialises only what the command would
 * initialise anyway, in the same way, and the JVM makes class initialisation safe across threads. A step that fails
 * is left to the command, which meets the same failure and reports it. Measured in bench/README.md ("What changed on
 * 2026-12-07, second session").
 */
final class StartupWarmup implements Runnable {
    /** Commands that move data through NBD (netty's classes are worth loading early). */
    private static final Set<String> NBD_COMMANDS = Set.of("full", "incremental", "auto", "restore", "serve",
        "mount", "files", "demo", "commit-overlay");
    /** Commands that read an NBD export with the client: its I/O thread group is made early. */
    private static final Set<String> CLIENT_COMMANDS = Set.of("full", "incremental", "auto");
    /** Commands that neither open a repository nor move data: no warm-up. */
    private static final Set<String> NO_WARMUP = Set.of("help", "-h", "--help", "-V", "--version", "umount",
        "generate-completion");

    private final String nativeDir;
    private final String command;
    private final CountDownLatch loaded = new CountDownLatch(1);
    private Thread thread;

    private StartupWarmup(String nativeDir, String command) {
        this.nativeDir = nativeDir;
        this.command = command;
    }

    /** Starts the warm-up for the command line {@code args}; returns a handle to {@link #await}. */
    static StartupWarmup start(String[] args, String nativeDir) {
        String command = args.length > 0 ? args[0] : "";
        StartupWarmup w = new StartupWarmup(nativeDir, command);
        if (command.isEmpty() || NO_WARMUP.contains(command)) {
            NativeLibraries.preset(nativeDir);
            w.loaded.countDown();
        } else {
            // a Runnable of its own, not a lambda: the first lambda of a run links the invokedynamic machinery,
            // about 20 ms, which is better spent on this thread than before it starts
            w.thread = new Thread(w, "jbackup-start");
            w.thread.setDaemon(true);
            w.thread.start();
        }
        return w;
    }

    @Override
    public void run() {
        try {
            NativeLibraries.preset(nativeDir);
            step(0);
            step(1);
        } finally {
            loaded.countDown();
        }
        for (int i = 2; i < 7; i++) {
            step(i);
        }
    }

    private void step(int i) {
        try {
            switch (i) {
                case 0 -> org.sqlite.SQLiteJDBCLoader.initialize();
                case 1 -> com.github.luben.zstd.util.Native.load();
                case 2 -> Class.forName("io.jbackup.store.Json");
                case 3 -> MessageDigest.getInstance("SHA-256");
                case 4 -> org.slf4j.LoggerFactory.getILoggerFactory();
                case 5 -> {
                    if (NBD_COMMANDS.contains(command)) {
                        io.netty.buffer.PooledByteBufAllocator.DEFAULT.directBuffer(1).release();
                    }
                }
                default -> {
                    if (CLIENT_COMMANDS.contains(command)) {
                        io.jbackup.nbd.client.NbdClient.prepareSharedThreads();
                    }
                }
            }
        } catch (Exception | LinkageError e) {
            // the command meets the same failure where it needs the thing, and reports it there
        }
    }

    /** Waits until the native libraries are in place (the rest of the warm-up goes on beside the command). */
    void await() {
        try {
            loaded.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
