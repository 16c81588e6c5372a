package io.jbackup.mount;

import io.jbackup.engine.Cancellation;
import io.jbackup.engine.ExternalToolException;

import java.io.File;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.concurrent.TimeUnit;

/**
 * Runs one external program of the mount machinery (sfdisk, losetup, blkid, mount, umount, nbdfuse, fusermount3,
 * lvm2's, dmsetup, nbd-client, qemu-nbd) to completion, stdin from {@code /dev/null}, with a time limit. A missing
 * program is an {@link ExternalToolException} naming its Debian package ({@link #PACKAGES}).
 */
public final class Tool {
    /** The Debian package of every program the mount machinery runs. */
    public static final Map<String, String> PACKAGES = Map.ofEntries(
        Map.entry("sfdisk", "fdisk"), Map.entry("losetup", "mount"), Map.entry("blkid", "util-linux"),
        Map.entry("mount", "mount"), Map.entry("umount", "mount"), Map.entry("nbdfuse", "libnbd-bin"),
        Map.entry("fusermount3", "fuse3"), Map.entry("fusefat", "fusefat"), Map.entry("ntfs-3g", "ntfs-3g"),
        Map.entry("vgchange", "lvm2"), Map.entry("pvs", "lvm2"), Map.entry("lvs", "lvm2"), Map.entry("vgs", "lvm2"),
        Map.entry("lvm", "lvm2"), Map.entry("dmsetup", "dmsetup"), Map.entry("nbd-client", "nbd-client"),
        Map.entry("qemu-nbd", "qemu-utils"),
        Map.entry("cp", "coreutils"), Map.entry("rm", "coreutils"), Map.entry("setsid", "util-linux"));
    /** The limit of one run. */
    public static final Duration LIMIT = Duration.ofSeconds(60);

    private Tool() {
    }

    /** The outcome of a finished run. */
    public record Result(int exitCode, String stdout, String stderr) {
        public boolean ok() {
            return exitCode == 0;
        }

        /** stderr, else stdout, trimmed: the program's own words for a message. */
        public String said() {
            String s = stderr.isBlank() ? stdout : stderr;
            return s.strip().replace('\n', ' ');
        }
    }

    /** Whether {@code name} is an executable on PATH (or in /usr/sbin, /sbin). */
    public static boolean available(String name) {
        return locate(name) != null;
    }

    static Path locate(String name) {
        String path = System.getenv().getOrDefault("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin";
        for (String d : path.split(":")) {
            if (!d.isEmpty()) {
                Path p = Path.of(d, name);
                if (Files.isExecutable(p)) {
                    return p;
                }
            }
        }
        return null;
    }

    /** Runs {@code cmd} and returns its result whatever the exit code; it may take {@link #LIMIT}. */
    public static Result exec(List<String> cmd) throws IOException {
        return exec(cmd, LIMIT, null);
    }

    /**
     * Runs {@code cmd} (a copy out of a backup: {@code cp -a} of a large tree takes as long as it takes) with no time
     * limit until it exits or {@code cancel} is cancelled; then it is killed and a {@link CancellationException}
     * thrown, also when it died of the signal that cancelled it.
     */
    public static Result execUntilDone(List<String> cmd, Cancellation cancel) throws IOException {
        return exec(cmd, null, cancel);
    }

    private static Result exec(List<String> cmd, Duration limit, Cancellation cancel) throws IOException {
        Path bin = locate(cmd.get(0));
        if (bin == null) {
            throw new ExternalToolException(cmd.get(0) + " is not installed (Debian package "
                + PACKAGES.getOrDefault(cmd.get(0), cmd.get(0)) + ")");
        }
        Path out = Files.createTempFile("jbackup-tool", ".out");
        Path err = Files.createTempFile("jbackup-tool", ".err");
        try {
            List<String> full = new java.util.ArrayList<>(cmd);
            full.set(0, bin.toString());
            Process p = new ProcessBuilder(full).redirectOutput(out.toFile()).redirectError(err.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
            long deadline = limit == null ? 0 : System.nanoTime() + limit.toNanos();
            try {
                while (!p.waitFor(100, TimeUnit.MILLISECONDS)) {
                    if (cancel != null && cancel.isCancelled()) {
                        p.destroyForcibly().waitFor();
                        break;
                    }
                    if (limit != null && System.nanoTime() - deadline > 0) {
                        p.destroyForcibly();
                        throw new ExternalToolException(String.join(" ", cmd) + " did not finish within "
                            + limit.toSeconds() + " s");
                    }
                }
            } catch (InterruptedException e) {
                p.destroyForcibly();
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while running " + cmd.get(0));
            }
            if (cancel != null) {
                // Ctrl-C on a terminal reaches the program too, which may die of it before the signal's handler
                // has cancelled: killed by a signal (exit 128 + N), it waits a moment for that
                for (int i = 0; i < 20 && p.exitValue() > 128 && !cancel.isCancelled(); i++) {
                    sleep(100);
                }
                cancel.check();
            }
            return new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
                Files.readString(err, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }

    private static void sleep(long millis) throws InterruptedIOException {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted");
        }
    }

    /** Runs {@code cmd}, requires exit code 0 and returns stdout. */
    public static String run(List<String> cmd) throws IOException {
        Result r = exec(cmd);
        if (!r.ok()) {
            throw new ExternalToolException(String.join(" ", cmd) + " failed (exit " + r.exitCode() + "): "
                + r.said());
        }
        return r.stdout();
    }
}
