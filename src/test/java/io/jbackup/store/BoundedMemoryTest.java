package io.jbackup.store;

import io.jbackup.model.BackupInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A 10 GiB synthetic disk (163840 chunks of 64 KiB) written and read back in a JVM with a 256 MiB heap. */
class BoundedMemoryTest {
    @TempDir
    Path tmp;

    @Test
    void tenGibDiskIn256MibHeap() throws Exception {
        Path dir = tmp.resolve("repo");
        Repository.init(dir, new RepositoryOptions(64 * 1024, Encryption.NONE, 1), null).close();
        try (Child c = Child.start(tmp.resolve("logs"), List.of("-Xmx256m", "-XX:+UseG1GC",
            "-XX:+ExitOnOutOfMemoryError"), "big", dir.toString(), "10")) {
            assertEquals(0, c.await(170), c.describe());
            String[] out = c.stdout().trim().split(" ");
            assertEquals("OK", out[0], c.describe());
            long peakMiB = Long.parseLong(out[2]);
            assertTrue(peakMiB <= 256, "peak heap " + peakMiB + " MiB");
        }
        try (Repository repo = Repository.open(dir, OpenOptions.defaults())) {
            BackupInfo b = repo.listBackups().get(0);
            assertEquals(10L << 30, b.imageSize());
            assertEquals(163840, b.stats().chunksTotal());
            assertEquals(64, b.stats().chunksNew());
            assertEquals(10240 - 64, b.stats().chunksDedup());
        }
    }
}
