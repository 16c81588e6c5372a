package io.jbackup.engine;

import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.TestJvm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Memory is bounded by configuration, not by disk size: a 100 GiB disk (nbdkit sparse-random, 0.2% data in
 * random runs) backs up in a child JVM limited to a 256 MiB heap, which exits on the first OutOfMemoryError.
 */
class BoundedMemoryBackupTest {
    @TempDir
    Path dir;

    @Test
    void hundredGibDiskBacksUpIn256MibHeap() throws Exception {
        Path repo = dir.resolve("repo");
        Cli.run("init", "--repo", repo.toString()).ok();
        Path sock = dir.resolve("sr.sock");
        try (Proc.Background s = Proc.start(dir.resolve("nbdkit.log"), "nbdkit", "-f", "-U", sock.toString(),
            "sparse-random", "100G", "percent=0.2", "seed=42").awaitPath(sock)) {
            Process p = new ProcessBuilder(TestJvm.java("-Xmx256m", "-XX:+ExitOnOutOfMemoryError", "-cp",
                System.getProperty("java.class.path"), "io.jbackup.cli.Main", "full", "--json", "--repo",
                repo.toString(), "--disk", "big", "--source", "nbd+unix:///?socket=" + sock))
                .redirectErrorStream(true).redirectOutput(dir.resolve("child.log").toFile()).start();
            assertTrue(p.waitFor(300, TimeUnit.SECONDS), "backup finished");
            String out = Files.readString(dir.resolve("child.log"));
            assertEquals(0, p.exitValue(), out);
            assertTrue(out.contains("\"imageSize\" : 107374182400"), out);
            assertTrue(out.contains("\"status\" : \"ok\""), out);
        }
    }
}
