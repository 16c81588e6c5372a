package io.jbackup.store;

import io.jbackup.testutil.TestJvm;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Starts {@link StoreChild} in a separate JVM on the test class path. */
final class Child implements AutoCloseable {
    final Process process;
    final Path out;
    final Path err;

    private Child(Process process, Path out, Path err) {
        this.process = process;
        this.out = out;
        this.err = err;
    }

    static Child start(Path logDir, List<String> jvmArgs, String... args) throws IOException {
        Files.createDirectories(logDir);
        List<String> cmd = new ArrayList<>();
        cmd.addAll(TestJvm.java());
        cmd.addAll(jvmArgs);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(StoreChild.class.getName());
        cmd.addAll(List.of(args));
        Path out = Files.createTempFile(logDir, "child", ".out");
        Path err = Files.createTempFile(logDir, "child", ".err");
        Process p = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        return new Child(p, out, err);
    }

    /** Waits for exit (bounded); returns the exit code. */
    int await(long seconds) throws Exception {
        if (!process.waitFor(seconds, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            throw new AssertionError("child did not finish within " + seconds + " s: " + describe());
        }
        return process.exitValue();
    }

    /** Kills like kill -9 and waits. */
    void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
    }

    String stdout() throws IOException {
        return Files.readString(out, StandardCharsets.UTF_8);
    }

    String describe() throws IOException {
        return "stdout: " + stdout() + "\nstderr: " + Files.readString(err, StandardCharsets.UTF_8);
    }

    /** Waits until standard output contains {@code text}. */
    void awaitOutput(String text, long seconds) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!stdout().contains(text)) {
            if (!process.isAlive()) {
                throw new AssertionError("child exited before printing " + text + ": " + describe());
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("child did not print " + text + " within " + seconds + " s: " + describe());
            }
            Thread.sleep(20);
        }
    }

    @Override
    public void close() throws Exception {
        if (process.isAlive()) {
            kill();
        }
    }
}
