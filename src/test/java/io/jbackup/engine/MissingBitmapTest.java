package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A misspelt {@code --bitmap} against the README's own {@code qemu-nbd -r -A -B b1} (no {@code -e}: one client at a
 * time). {@code incremental} refuses naming the bitmaps the export offers (listed on the connection already open,
 * not on a second one that qemu-nbd would keep waiting); {@code auto} makes the full backup but exits 3 with the
 * reason as a stable code and the offered bitmaps in {@code --json}; with no parent a full is what was asked (0).
 */
@Timeout(120)
class MissingBitmapTest {
    @TempDir
    Path dir;

    @Test
    void aMisspeltBitmapIsNamedAndAutoExitsPartial() {
        String repo = dir.resolve("repo").toString();
        Cli.run("init", "--repo", repo, "--chunk-size", "64K").ok();
        Path img = QemuImages.qcow2(dir.resolve("vda.qcow2"), "4M");
        QemuImages.io(img, "qcow2", "write -P 0x11 0 1M");
        QemuImages.addBitmap(img, "b1");
        try (Proc.Background src = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A", "-B", "b1")) {
            String uri = QemuImages.uriOf(src);
            // no parent: a full backup is what auto is for, exit 0, the reason is a code
            Cli.Result first = Cli.run("auto", "--repo", repo, "--disk", "vda", "--bitmap", "b2", "--source", uri,
                "--json");
            assertEquals(0, first.exitCode(), first.stdout() + first.stderr());
            JsonNode d0 = first.json().get("disks").get(0);
            assertEquals("full", d0.get("type").asText());
            assertEquals("no-parent", d0.get("fallbackReason").asText(), d0.toString());

            Cli.Result inc = Cli.run("incremental", "--repo", repo, "--disk", "vda", "--bitmap", "b2", "--source",
                uri);
            assertEquals(2, inc.exitCode(), inc.stdout() + inc.stderr());
            assertTrue(inc.stderr().contains("bitmap 'b2' is not exported") && inc.stderr().contains("offers b1"),
                inc.stderr());
            assertFalse(inc.stderr().contains("timed out"), inc.stderr());

            Cli.Result auto = Cli.run("auto", "--repo", repo, "--disk", "vda", "--bitmap", "b2", "--source", uri,
                "--json");
            assertEquals(3, auto.exitCode(), "done, but not as asked: " + auto.stdout() + auto.stderr());
            JsonNode d = auto.json().get("disks").get(0);
            assertEquals("ok", d.get("status").asText());
            assertEquals("full", d.get("type").asText());
            assertEquals("bitmap-missing", d.get("fallbackReason").asText(), d.toString());
            assertEquals("b1", d.get("bitmapsOffered").get(0).asText(), d.toString());
            assertEquals(1, d.get("bitmapsOffered").size(), d.toString());

            Cli.Result plain = Cli.run("auto", "--repo", repo, "--disk", "vda", "--bitmap", "b2", "--source", uri);
            assertEquals(3, plain.exitCode(), plain.stdout() + plain.stderr());
            assertTrue(plain.stderr().contains("bitmap 'b2' is not exported") && plain.stderr().contains("offers b1"),
                plain.stderr());

            Cli.Result right = Cli.run("auto", "--repo", repo, "--disk", "vda", "--bitmap", "b1", "--source", uri,
                "--json");
            assertEquals(0, right.exitCode(), right.stdout() + right.stderr());
            JsonNode r = right.json().get("disks").get(0);
            assertEquals("incremental", r.get("type").asText());
            assertTrue(r.get("fallbackReason").isNull(), r.toString());
        }
    }
}
