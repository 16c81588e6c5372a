package io.jbackup.cli;

import io.jbackup.engine.ExternalToolException;
import io.jbackup.engine.QemuNbdProcess;
import io.jbackup.nbd.client.NbdUri;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The built-in demo for {@code jbackup inspect --demo}: a 64 MiB qcow2 overlay over a backing file, with a
 * persistent dirty bitmap {@code demo}, served read-only by {@code qemu-nbd} ({@link QemuNbdProcess}) on a unix
 * socket in a temporary directory. {@link #close()} (also run from a shutdown hook on Ctrl-C) stops qemu-nbd and
 * deletes the directory.
 *
 * <p>Contents (written with qemu-io):
 * <pre>
 * base.qcow2 (backing)   0x11 at [0, 4M), 0x22 at [16M, 18M)
 * demo.qcow2 (overlay)   bitmap "demo" added, then: 0x33 at [1M, 2M), 0x44 at [32M, 32.5M),
 *                        discard [16M, 16.5M), write-zeroes [40M, 41M)
 * </pre>
 */
final class DemoImage implements AutoCloseable {
    static final String BITMAP = "demo";
    static final String SIZE = "64M";

    private final Path dir;
    private final Thread hook;
    private QemuNbdProcess server;
    private NbdUri uri;

    private DemoImage(Path dir) {
        this.dir = dir;
        this.hook = new Thread(this::cleanup, "jbackup-demo-cleanup");
        Runtime.getRuntime().addShutdownHook(hook);
    }

    /** Builds the images and starts qemu-nbd. */
    static DemoImage start() throws IOException {
        String qemuImg = find("qemu-img", "qemu-utils");
        String qemuIo = find("qemu-io", "qemu-utils");
        Path qemuNbd = QemuNbdProcess.locate();
        DemoImage d = new DemoImage(Files.createTempDirectory("jbackup-demo-"));
        try {
            Path base = d.dir.resolve("base.qcow2");
            Path top = d.dir.resolve("demo.qcow2");
            run(qemuImg, "create", "-q", "-f", "qcow2", base.toString(), SIZE);
            run(qemuIo, "-f", "qcow2", "-c", "write -P 0x11 0 4M", "-c", "write -P 0x22 16M 2M", base.toString());
            run(qemuImg, "create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", top.toString());
            run(qemuImg, "bitmap", "--add", top.toString(), BITMAP);
            run(qemuIo, "-f", "qcow2", "-c", "write -P 0x33 1M 1M", "-c", "write -P 0x44 32M 512k",
                "-c", "discard 16M 512k", "-c", "write -z 40M 1M", top.toString());
            // assigned before the wait: the shutdown hook stops a qemu-nbd that is still starting
            QemuNbdProcess server = QemuNbdProcess.launch(qemuNbd, d.dir, "nbd-",
                List.of("-r", "-t", "-f", "qcow2", "-B", BITMAP, "-A", top.toString()));
            d.server = server;
            server.awaitAccepting("qemu-nbd did not start serving " + top);
            d.uri = server.uri();
            return d;
        } catch (IOException | RuntimeException e) {
            d.close();
            throw e;
        }
    }

    NbdUri uri() {
        return uri;
    }

    Path dir() {
        return dir;
    }

    /** A few lines describing what the demo contains. */
    static String description() {
        return String.join("\n",
            "Demo: a 64 MiB qcow2 overlay (demo.qcow2) on a backing file (base.qcow2), with a persistent",
            "dirty bitmap '" + BITMAP + "' added before the overlay's writes, served by qemu-nbd -r -B " + BITMAP + " -A.",
            "  base.qcow2: 0x11 at [0, 4M), 0x22 at [16M, 18M)",
            "  demo.qcow2: 0x33 at [1M, 2M), 0x44 at [32M, 32.5M), discard [16M, 16.5M), zeroes at [40M, 41M)",
            "");
    }

    private static String find(String tool, String debianPackage) throws ExternalToolException {
        for (String d : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            Path p = Path.of(d.isEmpty() ? "." : d, tool);
            if (Files.isExecutable(p)) {
                return p.toString();
            }
        }
        throw new ExternalToolException(tool + " is not installed (not found on PATH); install the Debian package "
            + debianPackage + ": sudo apt-get install -y " + debianPackage);
    }

    /** Runs an external tool (stdin from /dev/null, 60 s limit); fails with its output when it exits non-zero. */
    static void run(String... cmd) throws IOException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectInput(ProcessBuilder.Redirect.from(
            new java.io.File("/dev/null"))).start();
        byte[] out = p.getInputStream().readAllBytes();
        try {
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new ExternalToolException("timed out: " + String.join(" ", cmd));
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted: " + String.join(" ", cmd));
        }
        if (p.exitValue() != 0) {
            throw new ExternalToolException("command failed (exit " + p.exitValue() + "): " + String.join(" ", cmd)
                + ": " + new String(out, StandardCharsets.UTF_8).trim());
        }
    }

    private synchronized void cleanup() {
        if (server != null) {
            server.close();
            server = null;
        }
        deleteTree(dir);
    }

    @Override
    public void close() {
        cleanup();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException e) {
            // already shutting down: the hook runs (or ran) cleanup
        }
    }

    /** Deletes a temporary directory and everything in it; best effort (a directory left behind is harmless). */
    static void deleteTree(Path dir) {
        try {
            if (Files.exists(dir)) {
                Files.walkFileTree(dir, new SimpleFileVisitor<>() {
                    @Override
                    public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                        Files.deleteIfExists(file);
                        return FileVisitResult.CONTINUE;
                    }

                    @Override
                    public FileVisitResult postVisitDirectory(Path d, IOException exc) throws IOException {
                        Files.deleteIfExists(d);
                        return FileVisitResult.CONTINUE;
                    }
                });
            }
        } catch (IOException e) {
            // best effort
        }
    }
}
