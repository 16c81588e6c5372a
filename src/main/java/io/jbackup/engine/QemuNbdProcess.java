package io.jbackup.engine;

import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdClient;
import io.jbackup.nbd.client.NbdUri;

import java.io.File;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.concurrent.TimeUnit;

/**
 * One {@code qemu-nbd} process serving on a Unix socket in a private temporary directory (created with mode 0700, so
 * the socket is ours alone), its output (stdout and stderr) in a log file next to the socket, stdin from
 * {@code /dev/null}.
 *
 * <p>{@link #start} returns once qemu-nbd answers on the socket (a socket file alone is not enough: qemu-nbd creates
 * it before it opens the image, and before it listens); {@link #stop} ends qemu-nbd (SIGTERM, then SIGKILL
 * after {@link #STOP_GRACE}); {@link #awaitExit} waits for a qemu-nbd that ends by itself (one started without
 * {@code -t} exits when its client disconnects); {@link #log} is its output, for messages; {@link #close} stops it if
 * it still runs and always deletes the directory. Safe to close from a shutdown hook and from the owner at once.
 */
public final class QemuNbdProcess implements AutoCloseable {
    /** How long qemu-nbd may take until its socket accepts connections. */
    public static final Duration START_LIMIT = Duration.ofSeconds(30);
    /** How long {@link #stop} waits after SIGTERM before it sends SIGKILL. */
    public static final Duration STOP_GRACE = Duration.ofSeconds(10);
    /** The socket's file name in the directory. */
    public static final String SOCKET = "nbd.sock";
    /** The log's file name in the directory. */
    public static final String LOG = "qemu-nbd.log";
    private static final long POLL_MILLIS = 20;
    private static final ClientOptions PROBE = ClientOptions.defaults().withTimeout(Duration.ofSeconds(5));

    private final Path dir;
    private final Process process;

    private QemuNbdProcess(Path dir, Process process) {
        this.dir = dir;
        this.process = process;
    }

    /** Finds {@code qemu-nbd} on {@code PATH}; an {@link ExternalToolException} naming the package when missing. */
    public static Path locate() throws ExternalToolException {
        return QemuImg.locate("qemu-nbd", System.getenv().getOrDefault("PATH", "/usr/bin:/bin"));
    }

    /**
     * Creates a private directory {@code DIR} ({@code PREFIX} and a random suffix, in {@code parent} or, when that is
     * null, in the system's temporary directory), runs {@code QEMU_NBD -k DIR/nbd.sock ARGS...} there and waits (at
     * most {@link #START_LIMIT}) until it answers on the socket.
     *
     * @param qemuNbd the binary ({@link #locate()})
     * @param args    qemu-nbd's options and the image, without {@code -k}
     * @param failure the start of the message when qemu-nbd exits or does not answer in time; {@code ": "} and
     *                qemu-nbd's output follow
     * @throws ExternalToolException   qemu-nbd exited or did not answer in time
     * @throws InterruptedIOException when the thread is interrupted while waiting
     *                                 (on any failure qemu-nbd is stopped and the directory deleted)
     */
    public static QemuNbdProcess start(Path qemuNbd, Path parent, String prefix, List<String> args, String failure)
        throws IOException {
        return start(qemuNbd, parent, prefix, args, failure, false);
    }

    /**
     * {@link #start}; with {@code endsWithCaller}, qemu-nbd also gets SIGTERM when the calling thread ends, including
     * when jbackup is killed (SIGKILL, the OOM killer), through {@code setpriv --pdeathsig TERM} (util-linux) when it
     * is installed. For an image qemu-nbd must not keep locked after jbackup is gone (a shut-off domain's disk, which
     * could not start while qemu-nbd holds it). Only for a caller whose thread outlives its use of qemu-nbd: the
     * signal follows the thread, not the process.
     */
    public static QemuNbdProcess start(Path qemuNbd, Path parent, String prefix, List<String> args, String failure,
                                       boolean endsWithCaller) throws IOException {
        QemuNbdProcess q = launch(endsWithCaller ? parentDeathSignal(qemuNbd) : List.of(qemuNbd.toString()), parent,
            prefix, args);
        try {
            q.awaitAccepting(failure);
            return q;
        } catch (IOException | RuntimeException e) {
            q.close();
            throw e;
        }
    }

    /**
     * The first half of {@link #start}: the directory and the process, without waiting. For an owner that must be
     * able to {@link #close} it (e.g. from a shutdown hook) while {@link #awaitAccepting} waits; on a failure of
     * that, the owner closes it.
     */
    public static QemuNbdProcess launch(Path qemuNbd, Path parent, String prefix, List<String> args) throws IOException {
        return launch(List.of(qemuNbd.toString()), parent, prefix, args);
    }

    /** {@code setpriv --pdeathsig TERM QEMU_NBD} when setpriv is on {@code PATH}, else {@code QEMU_NBD} alone. */
    private static List<String> parentDeathSignal(Path qemuNbd) {
        try {
            return List.of(QemuImg.locate("setpriv", System.getenv().getOrDefault("PATH", "/usr/bin:/bin"))
                .toString(), "--pdeathsig", "TERM", qemuNbd.toString());
        } catch (ExternalToolException e) {
            return List.of(qemuNbd.toString());
        }
    }

    private static QemuNbdProcess launch(List<String> qemuNbd, Path parent, String prefix, List<String> args)
        throws IOException {
        Path dir = parent == null ? Files.createTempDirectory(prefix) : Files.createTempDirectory(parent, prefix);
        try {
            List<String> cmd = new ArrayList<>(qemuNbd);
            cmd.addAll(List.of("-k", dir.resolve(SOCKET).toString()));
            cmd.addAll(args);
            return new QemuNbdProcess(dir, new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(dir.resolve(LOG).toFile()).redirectInput(ProcessBuilder.Redirect.from(
                    new File("/dev/null"))).start());
        } catch (IOException | RuntimeException e) {
            deleteDirectory(dir);
            throw e;
        }
    }

    /**
     * The second half of {@link #start}: waits (at most {@link #START_LIMIT}) until qemu-nbd answers on the socket.
     *
     * @throws ExternalToolException   {@code FAILURE: OUTPUT} when qemu-nbd exited or did not answer in time
     * @throws InterruptedIOException when the thread is interrupted while waiting
     */
    public void awaitAccepting(String failure) throws IOException {
        long deadline = System.nanoTime() + START_LIMIT.toNanos();
        while (!accepts()) {
            if (!process.isAlive() || System.nanoTime() - deadline > 0) {
                throw new ExternalToolException(failure + ": " + log());
            }
            try {
                Thread.sleep(POLL_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while starting qemu-nbd");
            }
        }
    }

    /**
     * Whether qemu-nbd answers on the socket: an NBD handshake that lists the exports and ends with
     * {@code NBD_OPT_ABORT}. A bare connect that closes at once is not enough: qemu-nbd logs a failed write for it;
     * and no export is opened, so a qemu-nbd without {@code -t} does not take the probe for its one client.
     */
    private boolean accepts() throws InterruptedIOException {
        if (!Files.exists(socket())) {
            return false;
        }
        try {
            NbdClient.listExports(uri(), PROBE);
            return true;
        } catch (InterruptedIOException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            return false; // not listening yet (or already gone: the caller checks whether it still runs)
        }
    }

    /** The socket qemu-nbd serves on. */
    public Path socket() {
        return dir.resolve(SOCKET);
    }

    /** {@code nbd+unix:///?socket=SOCKET}: the default export on {@link #socket()}. */
    public NbdUri uri() {
        return NbdUri.unix(socket(), "", false);
    }

    /** The private directory holding the socket and the log; {@link #close} deletes it. */
    public Path directory() {
        return dir;
    }

    /** What qemu-nbd printed so far, without surrounding white space; "no output" when its log is gone. */
    public String log() throws IOException {
        Path log = dir.resolve(LOG);
        return Files.exists(log) ? Files.readString(log).strip() : "no output";
    }

    /**
     * Waits for qemu-nbd to exit by itself.
     *
     * @return its exit code, or empty when it still runs after {@code timeout}
     * @throws InterruptedIOException when the thread is interrupted while waiting
     */
    public OptionalInt awaitExit(Duration timeout) throws InterruptedIOException {
        try {
            return process.waitFor(timeout.toNanos(), TimeUnit.NANOSECONDS) ? OptionalInt.of(process.exitValue())
                : OptionalInt.empty();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for qemu-nbd to exit");
        }
    }

    /**
     * Stops qemu-nbd if it still runs: SIGTERM, then SIGKILL if it is still there after {@link #STOP_GRACE}. Returns
     * once it is gone (or after 5 more seconds); an interrupt sends SIGKILL at once and stays set.
     */
    public void stop() {
        if (!process.isAlive()) {
            return;
        }
        process.destroy();
        try {
            if (!process.waitFor(STOP_GRACE.toNanos(), TimeUnit.NANOSECONDS)) {
                process.destroyForcibly();
                process.waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    /** Stops qemu-nbd ({@link #stop}) and deletes the directory with the socket and the log. */
    @Override
    public synchronized void close() {
        stop();
        deleteDirectory(dir);
    }

    /** Deletes the directory and the files in it; best effort (an empty directory left in /tmp is harmless). */
    private static void deleteDirectory(Path dir) {
        try {
            if (Files.isDirectory(dir)) {
                try (var s = Files.list(dir)) {
                    for (Path p : s.toList()) {
                        Files.deleteIfExists(p);
                    }
                }
            }
            Files.deleteIfExists(dir);
        } catch (IOException e) {
            // best effort
        }
    }
}
