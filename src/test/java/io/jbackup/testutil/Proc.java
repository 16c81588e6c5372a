package io.jbackup.testutil;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs the real external tools tests talk to (qemu-img, qemu-io, qemu-nbd, nbdkit, nbdinfo, nbdcopy, ...).
 * A missing tool fails the test with the Debian package to install.
 */
public final class Proc {
    private Proc() {
    }

    /** Result of a finished command. */
    public record Result(int exitCode, String stdout, String stderr) {
        public Result requireSuccess(List<String> cmd) {
            if (exitCode != 0) {
                throw new AssertionError("command failed (exit " + exitCode + "): " + String.join(" ", cmd)
                    + "\nstdout: " + stdout + "\nstderr: " + stderr);
            }
            return this;
        }
    }

    /** Runs a command to completion (60 s limit) and requires exit code 0. Returns stdout. */
    public static String run(String... cmd) {
        return exec(Duration.ofSeconds(120), cmd).requireSuccess(List.of(cmd)).stdout();
    }

    /** Runs a command to completion and returns its result, whatever the exit code. */
    public static Result exec(Duration timeout, String... cmd) {
        requireTool(cmd[0]);
        try {
            Path out = Files.createTempFile("jbackup-proc", ".out");
            Path err = Files.createTempFile("jbackup-proc", ".err");
            try {
                Process p = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
                if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                    p.destroyForcibly();
                    throw new AssertionError("command timed out after " + timeout + ": " + String.join(" ", cmd));
                }
                return new Result(p.exitValue(), Files.readString(out), Files.readString(err));
            } finally {
                Files.deleteIfExists(out);
                Files.deleteIfExists(err);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /** Starts a long-running command (a server); its output goes to {@code log}. Close the handle to kill it. */
    public static Background start(Path log, String... cmd) {
        requireTool(cmd[0]);
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            return new Background(p, log, List.of(cmd));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A background process; {@link #close()} kills it and waits. */
    public record Background(Process process, Path log, List<String> cmd) implements AutoCloseable {
        /** Waits until {@code path} exists (e.g. a unix socket), failing with the log if the process dies. */
        public Background awaitPath(Path path) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (!Files.exists(path)) {
                if (!process.isAlive()) {
                    throw new AssertionError("process exited (" + process.exitValue() + ") before creating " + path
                        + ": " + String.join(" ", cmd) + "\n" + readLog());
                }
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("timed out waiting for " + path + ": " + String.join(" ", cmd) + "\n" + readLog());
                }
                sleep(20);
            }
            if (isSocket(path)) {
                awaitListening(path, deadline);
            }
            return this;
        }

        private static boolean isSocket(Path path) {
            try {
                return Files.readAttributes(path, java.nio.file.attribute.BasicFileAttributes.class).isOther();
            } catch (IOException e) {
                return false;
            }
        }

        /**
         * For a unix socket: waits until the kernel lists it as listening in {@code /proc/net/unix} (flag
         * {@code __SO_ACCEPTCON}, 00010000). The path appears at bind(), a moment before listen(), and a connect in
         * between is refused; unlike {@link #awaitSocket} this makes no probe connection, so it suits servers that
         * end with their first client (qemu-nbd without {@code -t}) and QMP sockets. Where the socket cannot be seen
         * there (another network namespace), it gives up waiting after a second.
         */
        private void awaitListening(Path path, long deadline) {
            String name = path.toAbsolutePath().toString();
            long unseenUntil = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
            while (true) {
                Boolean listening = null;
                try {
                    for (String line : Files.readAllLines(Path.of("/proc/net/unix"))) {
                        String[] f = line.trim().split("\\s+");
                        if (f.length >= 8 && (f[7].equals(name) || f[7].equals(path.toString()))) {
                            listening = Boolean.TRUE.equals(listening) || (Integer.parseInt(f[3], 16) & 0x10000) != 0;
                        }
                    }
                } catch (IOException | NumberFormatException e) {
                    return;
                }
                if (Boolean.TRUE.equals(listening) || (listening == null && System.nanoTime() > unseenUntil)) {
                    return;
                }
                if (!process.isAlive()) {
                    throw new AssertionError("process exited before listening on " + path + "\n" + readLog());
                }
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("timed out waiting for " + path + " to listen: " + String.join(" ", cmd)
                        + "\n" + readLog());
                }
                sleep(20);
            }
        }

        /**
         * Waits until a unix socket at {@code path} accepts connections: the path appears at bind(), a moment before
         * listen(), and a connect in between is refused. Only for servers that survive a probe connection (qemu-nbd
         * with {@code -t}, nbdkit, jbackup serve).
         */
        public Background awaitSocket(Path path) {
            awaitPath(path);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (true) {
                try (java.nio.channels.SocketChannel ch = java.nio.channels.SocketChannel.open(
                    java.net.UnixDomainSocketAddress.of(path))) {
                    return this;
                } catch (IOException e) {
                    if (!process.isAlive()) {
                        throw new AssertionError("process exited before listening on " + path + "\n" + readLog());
                    }
                    if (System.nanoTime() > deadline) {
                        throw new AssertionError("timed out waiting for " + path + " to accept connections\n"
                            + readLog());
                    }
                    sleep(20);
                }
            }
        }

        /** Waits until a TCP port accepts connections. */
        public Background awaitPort(int port) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (true) {
                try (java.net.Socket s = new java.net.Socket("127.0.0.1", port)) {
                    return this;
                } catch (IOException e) {
                    if (!process.isAlive()) {
                        throw new AssertionError("process exited before listening on " + port + "\n" + readLog());
                    }
                    if (System.nanoTime() > deadline) {
                        throw new AssertionError("timed out waiting for port " + port + "\n" + readLog());
                    }
                    sleep(20);
                }
            }
        }

        public String readLog() {
            try {
                return Files.readString(log);
            } catch (IOException e) {
                return "(no log: " + e + ")";
            }
        }

        @Override
        public void close() {
            process.descendants().forEach(ProcessHandle::destroy);
            process.destroy();
            try {
                if (!process.waitFor(5, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                    process.waitFor(5, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** Fails, naming the script that installs it, when a tool is not on PATH. */
    public static void requireTool(String tool) {
        if (!tool.contains("/") && !onPath(tool)) {
            throw new AssertionError(tool + " is not installed; run .ci/install-deps (it installs what the tests "
                + "need; --dry-run lists it)");
        }
    }

    /** Whether an executable {@code tool} is in a directory of PATH. */
    public static boolean onPath(String tool) {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, tool))) {
                return true;
            }
        }
        return false;
    }

    /** SHA-256 of a file, in hex. */
    public static String sha256(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 20];
            int n;
            while ((n = in.read(buf)) > 0) {
                md.update(buf, 0, n);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** A free TCP port on loopback. */
    public static int freePort() {
        try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /** Convenience: list of strings. */
    public static List<String> args(String... a) {
        return new ArrayList<>(Arrays.asList(a));
    }

    static String utf8(byte[] b) {
        return new String(b, StandardCharsets.UTF_8);
    }
}
