package io.jbackup.testutil;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * jbackup run as a separate JVM ({@code java -cp TEST_CLASSPATH io.jbackup.cli.Main ARGS}), the way a user or cron
 * runs it, so that it can be killed with SIGKILL or run twice at once. Its stdout and stderr go to files.
 */
public final class JBackupProcess implements AutoCloseable {
    public final Process process;
    public final Path out;
    public final Path err;
    public final List<String> args;

    private JBackupProcess(Process process, Path out, Path err, List<String> args) {
        this.process = process;
        this.out = out;
        this.err = err;
        this.args = args;
    }

    /** Starts {@code jbackup ARGS}; {@code env} adds environment variables (may be empty). */
    public static JBackupProcess start(Path dir, String name, Map<String, String> env, String... args) {
        return start(dir, name, env, List.of(), args);
    }

    /**
     * Starts {@code jbackup ARGS} under {@code ulimit -f KIB} (bash): no file it writes can grow past that many KiB;
     * the JVM ignores SIGXFSZ, so such a write fails with EFBIG ("File too large").
     */
    public static JBackupProcess startLimited(Path dir, String name, long kib, String... args) {
        return start(dir, name, Map.of(), List.of("bash", "-c", "ulimit -f " + kib + " && exec \"$@\"", "bash"),
            args);
    }

    /** Starts {@code PREFIX... java ... io.jbackup.cli.Main ARGS}: {@code prefix} runs the JVM (a wrapper). */
    public static JBackupProcess start(Path dir, String name, Map<String, String> env, List<String> prefix,
                                       String... args) {
        List<String> cmd = new ArrayList<>(prefix);
        cmd.addAll(TestJvm.java(
            "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"),
            "io.jbackup.cli.Main"));
        cmd.addAll(List.of(args));
        Path out = dir.resolve(name + ".out");
        Path err = dir.resolve(name + ".err");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile())
            .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        pb.environment().putAll(env);
        try {
            return new JBackupProcess(pb.start(), out, err, List.of(args));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Waits up to {@code seconds} for the exit code; fails (and kills it) if it does not end. */
    public int await(long seconds) throws InterruptedException {
        if (!process.waitFor(seconds, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor(10, TimeUnit.SECONDS);
            throw new AssertionError("jbackup " + String.join(" ", args) + " did not finish within " + seconds
                + " s\nstderr: " + stderr());
        }
        return process.exitValue();
    }

    /** Sends SIGKILL and waits for the process to be gone. */
    public void kill() throws InterruptedException {
        process.destroyForcibly();
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            throw new AssertionError("jbackup did not die after SIGKILL");
        }
    }

    public String stdout() {
        return read(out);
    }

    public String stderr() {
        return read(err);
    }

    public JsonNode json() {
        try {
            return new ObjectMapper().readTree(stdout());
        } catch (IOException e) {
            throw new AssertionError("stdout is not JSON: " + stdout() + "\nstderr: " + stderr(), e);
        }
    }

    private static String read(Path p) {
        try {
            return Files.exists(p) ? Files.readString(p) : "";
        } catch (IOException e) {
            return "(unreadable: " + e + ")";
        }
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            process.destroyForcibly();
        }
    }
}
