package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs {@code qemu-img} for commands that wrap it; a missing or failing qemu-img is an {@link ExternalToolException}.
 */
public final class QemuImg {
    private static final long TIMEOUT_SECONDS = 120;
    private static final int MAX_OUTPUT = 4 << 20;

    private QemuImg() {
    }

    /** What a run printed. */
    public record Output(int exitCode, String stdout, String stderr) {
    }

    /** Finds {@code tool} on a PATH-style list of directories. */
    public static Path locate(String tool, String path) throws ExternalToolException {
        for (String d : path.split(":")) {
            Path p = Path.of(d.isEmpty() ? "." : d, tool);
            if (Files.isExecutable(p)) {
                return p;
            }
        }
        throw new ExternalToolException(tool + " is not installed (not found on PATH); install the Debian package "
            + "qemu-utils: sudo apt-get install -y qemu-utils");
    }

    /** Runs {@code qemu-img ARGS...} and returns its output, whatever the exit code. */
    public static Output run(String... args) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(locate("qemu-img", System.getenv().getOrDefault("PATH", "/usr/bin:/bin")).toString());
        cmd.addAll(List.of(args));
        Path err = Files.createTempFile("jbackup-qemu-img", ".err");
        try {
            Process p = new ProcessBuilder(cmd).redirectError(err.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
            byte[] out = p.getInputStream().readNBytes(MAX_OUTPUT);
            p.getInputStream().transferTo(java.io.OutputStream.nullOutputStream());
            try {
                if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    throw new ExternalToolException("qemu-img did not finish within " + TIMEOUT_SECONDS + " s: "
                        + String.join(" ", cmd));
                }
            } catch (InterruptedException e) {
                p.destroyForcibly();
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted: " + String.join(" ", cmd));
            }
            String stderr;
            try (var in = Files.newInputStream(err)) {
                stderr = new String(in.readNBytes(64 * 1024), StandardCharsets.UTF_8).strip();
            }
            return new Output(p.exitValue(), new String(out, StandardCharsets.UTF_8), stderr);
        } finally {
            Files.deleteIfExists(err);
        }
    }

    /** Runs qemu-img and fails with its message (made clearer for the usual causes) unless it succeeds. */
    public static String check(Path image, String... args) throws IOException {
        Output o = run(args);
        if (o.exitCode() == 0) {
            return o.stdout();
        }
        String msg = o.stderr().isEmpty() ? "exit code " + o.exitCode() : o.stderr().replaceAll("^qemu-img: ", "");
        if (msg.contains("\"write\" lock") || msg.contains("\"read\" lock")) {
            throw new ExternalToolException(image + " is in use by another process (a running VM, qemu-nbd or "
                + "qemu-storage-daemon): stop it first; for a running VM use 'jbackup full|incremental|auto --qmp', "
                + "which manages bitmaps through QEMU (qemu-img: " + msg + ")");
        }
        if (msg.contains("No such file")) {
            throw new NotFoundException("no image " + image + " (" + msg + ")");
        }
        throw new ExternalToolException("qemu-img " + String.join(" ", args) + " failed: " + msg);
    }

    /** A persistent dirty bitmap as {@code qemu-img info} shows it. */
    public record Bitmap(String name, long granularity, boolean recording, boolean inUse) {
    }

    /**
     * Reads the bitmaps of a qcow2 image ({@code qemu-img info --force-share}: works while the image is open); an
     * image of another format is a {@link UsageException} that says how to convert it.
     */
    public static List<Bitmap> bitmaps(Path image) throws IOException {
        JsonNode info = new ObjectMapper().readTree(check(image, "info", "--output=json", "--force-share",
            image.toString()));
        String format = info.path("format").asText();
        if (!format.equals("qcow2")) {
            throw new UsageException(image + " is a " + format + " image; persistent dirty bitmaps need "
                + "qcow2 (convert it: qemu-img convert -O qcow2 " + image + " NEW.qcow2)");
        }
        List<Bitmap> out = new ArrayList<>();
        for (JsonNode b : info.path("format-specific").path("data").path("bitmaps")) {
            List<String> flags = new ArrayList<>();
            b.path("flags").forEach(f -> flags.add(f.asText()));
            out.add(new Bitmap(b.path("name").asText(), b.path("granularity").asLong(), flags.contains("auto"),
                flags.contains("in-use")));
        }
        return out;
    }
}
