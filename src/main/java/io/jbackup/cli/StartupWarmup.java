package io.jbackup.cli;

import java.security.MessageDigest;
import java.util.Set;

/**
 * Start-up work done on a second thread while the main thread builds the command line: a command's start is
 * single-threaded (the JVM runs it in the interpreter), and on a host with two cores the other one is idle then.
 *
 * <p>The warm-up presets the native libraries ({@link NativeLibraries#preset}: their checksums), loads SQLite's and
 * zstd's, and initialises the classes every data command reaches next: the JSON mapper of the repository files, the
 * SHA-256 provider, the logger factory and, for commands that speak NBD, netty's buffer allocator. Each step only
 * initialises what the command would initialise anyway, in the same way; the JVM makes class initialisation safe
 * across threads. {@link #await} joins it before the command runs, so nothing the command does can race with it
 * (the SQLite driver reads the library path that the preset sets). A step that fails is left to the command, which
 * meets the same failure and reports it. Measured in bench/README.md ("Start-up").
 */
final class StartupWarmup implements Runnable {
    /** Commands that move data through NBD (netty's classes are worth loading early). */
    private static final Set<String> NBD_COMMANDS = Set.of("full", "incremental", "auto", "restore", "serve",
        "mount", "files", "demo", "commit-overlay");
    /** Commands that neither open a repository nor move data: no warm-up. */
    private static final Set<String> NO_WARMUP = Set.of("help", "-h", "--help", "-V", "--version", "umount",
        "generate-completion");

    private final String nativeDir;
    private final boolean nbd;
    private Thread thread;

    private StartupWarmup(String nativeDir, boolean nbd) {
        this.nativeDir = nativeDir;
        this.nbd = nbd;
    }

    /** Starts the warm-up for the command line {@code args}; returns a handle to {@link #await}. */
    static StartupWarmup start(String[] args, String nativeDir) {
        String command = args.length > 0 ? args[0] : "";
        StartupWarmup w = new StartupWarmup(nativeDir, NBD_COMMANDS.contains(command));
        if (command.isEmpty() || NO_WARMUP.contains(command)) {
            NativeLibraries.preset(nativeDir);
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
        NativeLibraries.preset(nativeDir);
        for (int step = 0; step < 6; step++) {
            try {
                switch (step) {
                    case 0 -> org.sqlite.SQLiteJDBCLoader.initialize();
                    case 1 -> com.github.luben.zstd.util.Native.load();
                    case 2 -> Class.forName("io.jbackup.store.Json");
                    case 3 -> MessageDigest.getInstance("SHA-256");
                    case 4 -> org.slf4j.LoggerFactory.getILoggerFactory();
                    default -> {
                        if (nbd) {
                            io.netty.buffer.PooledByteBufAllocator.DEFAULT.directBuffer(1).release();
                        }
                    }
                }
            } catch (Exception | LinkageError e) {
                // the command meets the same failure where it needs the thing, and reports it there
            }
        }
    }

    /** Waits for the warm-up to end. */
    void await() {
        if (thread == null) {
            return;
        }
        try {
            thread.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
