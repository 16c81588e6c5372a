package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A big, mostly empty disk (issue 15): zero runs are planned and indexed as runs, the backups hold exactly the
 * image, and restores to a raw file stay sparse. Restores are compared with {@code qemu-img compare} (bit-exact,
 * and it skips holes on both sides, so comparing 64 GiB costs only the data).
 */
class SparseDiskEndToEndTest {
    private static final long GIB = 1L << 30;

    @TempDir
    Path dir;

    private Path repo() {
        return dir.resolve("repo");
    }

    private JsonNode backup(String cmd, Proc.Background server, String... extra) {
        List<String> a = new ArrayList<>(List.of(cmd, "--repo", repo().toString(), "--disk", "vda", "--source",
            QemuImages.uriOf(server), "--json"));
        a.addAll(List.of(extra));
        JsonNode j = Cli.run(a.toArray(String[]::new)).ok().json();
        assertEquals("ok", j.get("status").asText(), j.toString());
        return j.get("disks").get(0);
    }

    /** Restores a backup to a new raw file, checks it is bit-identical to the image and still sparse. */
    private void assertRestoresExactlyAndSparse(String id, Path image, long maxAllocated) throws Exception {
        Path out = dir.resolve("restore-" + id + ".raw");
        Cli.run("restore", "--repo", repo().toString(), "--disk", "vda", "--backup", id, "--to", out.toString()).ok();
        assertEquals(64 * GIB, Files.size(out));
        Proc.Result cmp = Proc.exec(Duration.ofSeconds(300), "qemu-img", "compare", "-f", "qcow2", "-F", "raw",
            image.toString(), out.toString());
        assertEquals(0, cmp.exitCode(), "restore of " + id + " differs from the image: " + cmp.stdout() + cmp.stderr());
        long allocated = Long.parseLong(Proc.run("stat", "-c", "%b", out.toString()).trim())
            * Long.parseLong(Proc.run("stat", "-c", "%B", out.toString()).trim());
        assertTrue(allocated <= maxAllocated, "restore of " + id + " stays sparse: " + allocated + " bytes allocated");
        Files.delete(out);
    }

    @Test
    void fullAndIncrementalOfASparse64GiBDiskRestoreBitExactAndSparse() throws Exception {
        Cli.run("init", "--repo", repo().toString()).ok(); // 1 MiB chunks: 65536 positions
        Path img = QemuImages.qcow2(dir.resolve("disk.qcow2"), "64G");
        QemuImages.io(img, "qcow2", "write -P 0x11 0 1M", "write -P 0x22 17G 3076k", "write -P 0x33 40964M 64k",
            "write -z 50G 8M", "write -P 0x44 65535M 1M");
        String full;
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A")) {
            JsonNode j = backup("full", s);
            full = j.get("backupId").asText();
            assertTrue(j.get("bytesRead").asLong() <= 6L << 20, "reads only the written ranges: " + j);
            assertEquals(64 * GIB, j.get("bytesZero").asLong() + j.get("bytesDedup").asLong()
                + j.get("bytesNew").asLong(), "every position is accounted for: " + j);
            assertTrue(j.get("bytesZero").asLong() >= 64 * GIB - (7L << 20), "the rest is zero chunks: " + j);
        }
        assertRestoresExactlyAndSparse(full, img, 16L << 20);

        QemuImages.addBitmap(img, "b1");
        // new data, a discard and write-zeroes over old data, data far away in the empty space
        QemuImages.io(img, "qcow2", "write -P 0x55 30G 1M", "discard 17G 1M", "write -z 0 512k",
            "write -P 0x66 63G 4k");
        String inc;
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A", "-B", "b1")) {
            JsonNode j = backup("incremental", s, "--bitmap", "b1");
            assertEquals("incremental", j.get("type").asText(), j.toString());
            inc = j.get("backupId").asText();
            assertTrue(j.get("bytesRead").asLong() <= 3L << 20, "reads only dirty chunks: " + j);
        }
        assertRestoresExactlyAndSparse(inc, img, 16L << 20);
        Cli.run("verify", "--repo", repo().toString()).ok();
    }
}
