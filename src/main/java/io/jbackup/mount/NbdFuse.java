package io.jbackup.mount;

import io.jbackup.engine.ExternalToolException;

import java.io.File;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * One {@code nbdfuse} process (libnbd-bin) presenting an NBD export on a Unix socket as a read-only file,
 * {@code DIR/disk}: {@code setsid nbdfuse -r -P DIR.pid DIR/disk nbd+unix:///EXPORT?socket=SOCKET}. Its output goes to
 * {@code DIR.log}. {@link #start} returns once nbdfuse wrote its pid file (it is ready then).
 *
 * <p>The process is a child but not tied to this JVM: if the JVM is killed, nbdfuse stays and the leftovers are
 * removed by {@link #stop(Path, long)} from the pid recorded in the mount state.
 */
public final class NbdFuse {
    /** How long nbdfuse may take until the file is there. */
    public static final Duration START_LIMIT = Duration.ofSeconds(30);
    /** The file's name in the directory. */
    public static final String FILE = "disk";

    private NbdFuse() {
    }

    /** The libnbd URI of {@code export} on {@code socket}. */
    static String uri(Path socket, String export) {
        String path = URLEncoder.encode(export, StandardCharsets.UTF_8).replace("+", "%20").replace("%40", "@");
        return "nbd+unix:///" + path + "?socket=" + socket.toAbsolutePath();
    }

    /**
     * Starts nbdfuse on the empty directory {@code dir} (created when missing); returns its pid once the file
     * {@code dir/disk} is there.
     */
    public static long start(Path dir, Path socket, String export) throws IOException {
        Files.createDirectories(dir);
        Path pidFile = Path.of(dir + ".pid");
        Path log = Path.of(dir + ".log");
        Files.deleteIfExists(pidFile);
        Path bin = Tool.locate("nbdfuse");
        if (bin == null) {
            throw new ExternalToolException("nbdfuse is not installed (Debian package libnbd-bin; it needs fuse3)");
        }
        // setsid: its own session, so a Ctrl-C on the terminal reaches only jbackup, which then unmounts in order
        // (nbdfuse ending first would leave the loop devices on a file that is gone)
        Process p = new ProcessBuilder(List.of("setsid", bin.toString(), "-r", "-P", pidFile.toString(),
            dir.resolve(FILE).toString(), uri(socket, export)))
            .redirectErrorStream(true).redirectOutput(log.toFile())
            .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
        long deadline = System.nanoTime() + START_LIMIT.toNanos();
        try {
            while (true) {
                if (Files.exists(pidFile) && Files.size(pidFile) > 0 && Files.exists(dir.resolve(FILE))) {
                    return Long.parseLong(Files.readString(pidFile).strip()); // nbdfuse's, whether setsid forked or not
                }
                if (!p.isAlive() && p.exitValue() != 0) { // 0: setsid forked and left nbdfuse running
                    throw new ExternalToolException("nbdfuse exited with " + p.exitValue() + ": "
                        + Files.readString(log).strip());
                }
                if (System.nanoTime() > deadline) {
                    p.destroyForcibly();
                    throw new ExternalToolException("nbdfuse did not present " + export + " within "
                        + START_LIMIT.toSeconds() + " s: " + Files.readString(log).strip());
                }
                Thread.sleep(20);
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while starting nbdfuse");
        }
    }

    /**
     * Unmounts the FUSE file system on {@code dir} (when mounted) and ends nbdfuse {@code pid} (when still alive:
     * SIGTERM, SIGKILL after 5 s). Safe to call again.
     */
    public static void stop(Path dir, long pid) throws IOException {
        if (MountTable.isMountPoint(dir)) {
            Tool.Result r = Tool.exec(List.of("fusermount3", "-u", dir.toString()));
            if (!r.ok() && MountTable.isMountPoint(dir)) {
                Tool.exec(List.of("umount", "-l", dir.toString()));
            }
        }
        if (pid > 0) {
            ProcessHandle.of(pid).filter(h -> h.info().command().map(c -> c.endsWith("nbdfuse")).orElse(false))
                .ifPresent(h -> {
                    h.destroy();
                    try {
                        h.onExit().get(5, java.util.concurrent.TimeUnit.SECONDS);
                    } catch (Exception e) {
                        h.destroyForcibly();
                    }
                });
        }
    }
}
