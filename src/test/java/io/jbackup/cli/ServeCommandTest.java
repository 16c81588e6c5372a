package io.jbackup.cli;

import io.jbackup.testutil.Cli;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code jbackup serve} and {@code commit-overlay} refuse bad setups with exit code 2 and say what to do. */
class ServeCommandTest {
    @TempDir
    Path dir;

    private String repo() {
        Path r = dir.resolve("repo");
        if (!Files.exists(r)) {
            Cli.run("init", "--repo", r.toString()).ok();
        }
        return r.toString();
    }

    private static void refused(Cli.Result r, String... expected) {
        assertEquals(2, r.exitCode(), r.toString());
        for (String e : expected) {
            assertTrue(r.stderr().contains(e), "'" + e + "' in: " + r.stderr());
        }
    }

    @Test
    void socketPathThatIsAFile() throws Exception {
        Path f = Files.writeString(dir.resolve("not-a-socket"), "x");
        refused(Cli.run("serve", "--repo", repo(), "--socket", f.toString()), "is not a socket", "--socket");
        assertEquals("x", Files.readString(f), "the file is left alone");
        Path missing = dir.resolve("no-such-dir").resolve("s.sock");
        refused(Cli.run("serve", "--repo", repo(), "--socket", missing.toString()),
            "directory " + missing.getParent() + " does not exist", "--socket");
        assertTrue(!Files.exists(missing.getParent()), "nothing is created");
    }

    @Test
    void optionCombinations() {
        refused(Cli.run("serve", "--repo", repo(), "--socket", dir.resolve("s").toString(), "--discard-changes"),
            "--writable");
        refused(Cli.run("serve", "--repo", repo(), "--listen", "localhost"), "HOST:PORT");
        refused(Cli.run("serve", "--repo", repo(), "--socket", dir.resolve("s").toString(), "--tls-psk-file",
            dir.resolve("keys.psk").toString(), "--tls-hostname", "x"), "client option");
        refused(Cli.run("commit-overlay", "--repo", repo(), "--export", "vda@latest"), "no backup for export");
        refused(Cli.run("commit-overlay", "--repo", repo(), "--overlay", dir.resolve("x.overlay").toString()),
            "no overlay");
    }

    @Test
    void cacheThatDoesNotFitTheDirectMemoryNamesTheJvmOption() {
        refused(Cli.run("serve", "--repo", repo(), "--socket", dir.resolve("s").toString(), "--cache-size",
            "16000000"), "MaxDirectMemorySize", "--cache-size");
        assertTrue(!Files.exists(dir.resolve("s")), "nothing listens");
    }
}
