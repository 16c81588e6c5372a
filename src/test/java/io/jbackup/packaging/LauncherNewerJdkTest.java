package io.jbackup.packaging;

import io.jbackup.packaging.InstalledLayout.Run;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The launcher on a JDK of version 23 or later (found under /usr/lib/jvm, or named by {@code JBACKUP_TEST_JDK}):
 * such JDKs print warnings on standard error in every command about JNI ({@code System.load} of the SQLite, zstd
 * and netty libraries) and netty's {@code sun.misc.Unsafe} memory access unless told that both are intended. The
 * launcher tells them, so commands that load every native library and allocate netty buffers leave standard error
 * empty, the class data sharing archive included. Skipped, saying so, where no such JDK is installed.
 */
class LauncherNewerJdkTest {
    @TempDir
    static Path prefix;

    private static InstalledLayout layout;
    private static Map<String, String> env;

    @BeforeAll
    static void install() throws Exception {
        Optional<Path> java = newerJava();
        Assumptions.assumeTrue(java.isPresent(), "no JDK 23 or newer under /usr/lib/jvm (or JBACKUP_TEST_JDK): "
            + "the launcher's options for newer JDKs are not tested here");
        layout = InstalledLayout.install(prefix);
        env = Map.of("JAVA", java.get().toString());
    }

    /** A java binary of a JDK whose release file names version 23 or later. */
    private static Optional<Path> newerJava() throws IOException {
        String named = System.getenv("JBACKUP_TEST_JDK");
        List<Path> homes;
        if (named != null && !named.isEmpty()) {
            homes = List.of(Path.of(named));
        } else if (Files.isDirectory(Path.of("/usr/lib/jvm"))) {
            try (Stream<Path> s = Files.list(Path.of("/usr/lib/jvm"))) {
                homes = s.sorted(Comparator.reverseOrder()).toList();
            }
        } else {
            homes = List.of();
        }
        for (Path home : homes) {
            Path release = home.resolve("release");
            Path java = home.resolve("bin/java");
            if (Files.isRegularFile(release) && Files.isExecutable(java) && feature(release) >= 23) {
                return Optional.of(java);
            }
        }
        return Optional.empty();
    }

    private static int feature(Path release) throws IOException {
        for (String line : Files.readAllLines(release)) {
            if (line.startsWith("JAVA_VERSION=\"")) {
                String v = line.substring("JAVA_VERSION=\"".length());
                int end = 0;
                while (end < v.length() && Character.isDigit(v.charAt(end))) {
                    end++;
                }
                return end == 0 ? 0 : Integer.parseInt(v.substring(0, end));
            }
        }
        return 0;
    }

    private static Run quiet(Map<String, String> more, String... args) throws Exception {
        Map<String, String> e = new HashMap<>(env);
        e.putAll(more);
        Run r = layout.launch(e, args);
        assertEquals(0, r.exit(), String.join(" ", args) + ": " + r);
        assertEquals("", r.stderr(), String.join(" ", args) + ": standard error");
        return r;
    }

    @Test
    void commandsPrintNoJdkWarnings() throws Exception {
        Run version = quiet(Map.of("JBACKUP_CDS", "off"), "--version");
        assertTrue(version.stdout().contains("\nJava "), version.stdout());
        String repo = prefix.resolve("repo").toString();
        quiet(Map.of("JBACKUP_CDS", "off"), "init", "--repo", repo, "--encryption", "none");
        quiet(Map.of("JBACKUP_CDS", "off"), "list", "--repo", repo);
        // the built-in NBD server and client (netty's direct buffers), zstd, SQLite: full, incremental, restores
        quiet(Map.of("JBACKUP_CDS", "off"), "demo", "--builtin", "-q");
        // the archive's training run starts a JVM of its own, with the same options
        quiet(Map.of("JBACKUP_CDS", "dump"));
        assertTrue(Files.size(prefix.resolve("lib/jbackup/jbackup.jsa")) > 0, "no archive written");
        quiet(Map.of(), "list", "--repo", repo);
    }
}
