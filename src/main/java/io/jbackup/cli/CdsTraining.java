package io.jbackup.cli;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The training run of the class data sharing archive ({@code JBACKUP_CDS=dump jbackup}, run by {@code mvn package}
 * and install.sh): runs the short commands whose start-up the archive is for ({@code --help}, {@code init},
 * {@code list}, {@code show}, {@code stats}, with and without {@code --json}; the same on an {@code s3://}
 * repository in memory, {@link CdsS3Stub}), and {@code demo --builtin} for the classes of backups, restores and
 * serve, in one JVM, on a repository in a temporary directory, with their output discarded, so the JVM archives the
 * classes they load. Exits 0 even if a
 * command fails: a smaller archive is still an archive. First it extracts the native libraries into the directory
 * named by {@code -Djbackup.native} ({@link NativeLibraries}).
 */
final class CdsTraining {
    private CdsTraining() {
    }

    public static void main(String[] args) throws IOException {
        String nativeDir = System.getProperty(NativeLibraries.PROPERTY);
        if (nativeDir != null) {
            NativeLibraries.extract(Path.of(nativeDir)); // installed with the archive, refreshed with it
            NativeLibraries.preset(nativeDir);
        }
        LoggingMixin.configure(new String[] {"-q"});
        PrintStream out = System.out;
        PrintStream err = System.err;
        PrintStream nowhere = new PrintStream(OutputStream.nullOutputStream(), true);
        Path dir = Files.createTempDirectory("jbackup-cds");
        List<String> failed = new ArrayList<>();
        try {
            System.setOut(nowhere);
            System.setErr(nowhere);
            String repo = dir.resolve("repo").toString();
            String[][] runs = {
                {"--help"},
                {"list", "--help"},
                {"--version"},
                {"init", "--repo", repo, "--encryption", "none"},
                {"list", "--repo", repo},
                {"list", "--repo", repo, "--json"},
                {"stats", "--repo", repo},
                // the data path: the built-in NBD server and client, full and incremental backup, restore (netty,
                // the engine, the chunk codec), all in process on a 64 MiB disk in memory
                {"demo", "--builtin", "-q"},
            };
            // these fail (no backup, no repository): the error path's classes
            String[][] failing = {
                {"show", "--repo", repo, "latest"},
                {"list", "--repo", dir.resolve("missing").toString()},
            };
            for (String[] run : failing) {
                execute(run, nowhere);
            }
            for (String[] run : runs) {
                int code = execute(run, nowhere);
                if (code != 0) {
                    failed.add(String.join(" ", run) + " (exit " + code + ")");
                }
            }
            trainS3(dir, nowhere, failed);
        } finally {
            System.setOut(out);
            System.setErr(err);
            DemoImage.deleteTree(dir);
        }
        if (!failed.isEmpty()) {
            err.println("jbackup: class data sharing training: failed: " + failed);
        }
    }

    /**
     * {@code init}, {@code list} and {@code stats} of an {@code s3://} repository on an S3 endpoint in this JVM
     * ({@link CdsS3Stub}), for the S3 client's classes. Skipped where the JDK has no {@code jdk.httpserver}.
     */
    private static void trainS3(Path dir, PrintStream nowhere, List<String> failed) {
        CdsS3Stub s3;
        try {
            s3 = new CdsS3Stub();
        } catch (IOException | LinkageError e) {
            failed.add("the S3 training endpoint (" + e + ")");
            return;
        }
        try (s3) {
            System.setProperty("aws.accessKeyId", "jbackup-cds");
            System.setProperty("aws.secretAccessKey", "jbackup-cds");
            String[] where = {"--repo", "s3://jbackup-cds/repo", "--s3-endpoint", s3.endpoint(), "--s3-region",
                "us-east-1", "--s3-retries", "0", "--cache-dir", dir.resolve("s3-cache").toString()};
            String[][] runs = {{"init", "--encryption", "none"}, {"list"}, {"list", "--json"}, {"stats"}};
            for (String[] run : runs) {
                String[] args = java.util.stream.Stream.concat(java.util.Arrays.stream(run), java.util.Arrays
                    .stream(where)).toArray(String[]::new);
                int code = execute(args, nowhere);
                if (code != 0) {
                    failed.add(String.join(" ", args) + " (exit " + code + ")");
                }
            }
        } finally {
            System.clearProperty("aws.accessKeyId");
            System.clearProperty("aws.secretAccessKey");
        }
    }

    private static int execute(String[] args, PrintStream nowhere) {
        StartupWarmup warm = StartupWarmup.start(args, System.getProperty(NativeLibraries.PROPERTY));
        picocli.CommandLine cl = JBackup.commandLineFor(args); // as Main runs them (--help builds the whole tree)
        warm.await();
        cl.setOut(new PrintWriter(nowhere, true));
        cl.setErr(new PrintWriter(nowhere, true));
        return cl.execute(args);
    }
}
