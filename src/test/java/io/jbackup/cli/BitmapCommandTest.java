package io.jbackup.cli;

import io.jbackup.engine.ExternalToolException;
import io.jbackup.engine.QemuImg;
import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.store.Repository;
import io.jbackup.store.RepositoryOptions;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code jbackup bitmap} against real qemu-img, and the offline rotation recipe of docs/live-backup.md. */
class BitmapCommandTest {
    @TempDir
    Path dir;

    @Test
    void addListRemoveAndTheirErrors() throws Exception {
        Path img = QemuImages.qcow2(dir.resolve("d.qcow2"), "4M");
        String f = img.toString();
        assertTrue(Cli.run("bitmap", "list", "--image", f).ok().stdout().contains("no dirty bitmaps"));
        Cli.run("bitmap", "add", "--image", f, "--name", "jb-1").ok();
        Cli.run("bitmap", "add", "--image", f, "--name", "old", "--disabled", "--granularity", "131072").ok();
        JsonNode bms = Cli.run("bitmap", "list", "--image", f, "--json").ok().json().get("bitmaps");
        assertEquals(2, bms.size(), bms.toString());
        assertEquals("jb-1", bms.get(0).get("name").asText());
        assertTrue(bms.get(0).get("recording").asBoolean());
        assertEquals(65536, bms.get(0).get("granularity").asLong());
        assertEquals(131072, bms.get(1).get("granularity").asLong());
        assertTrue(!bms.get(1).get("recording").asBoolean() && !bms.get(1).get("inUse").asBoolean());
        String text = Cli.run("bitmap", "list", "--image", f).ok().stdout();
        assertTrue(text.contains("old  granularity 128 KiB  disabled"), text);
        // the bitmaps are real: qemu-img sees them
        assertTrue(Proc.run("qemu-img", "info", f).contains("name: jb-1"));

        Cli.Result dup = Cli.run("bitmap", "add", "--image", f, "--name", "jb-1");
        assertEquals(ExitCodes.USAGE, dup.exitCode(), dup.toString());
        assertTrue(dup.stderr().contains("already has a bitmap named jb-1"), dup.stderr());
        Cli.Result missing = Cli.run("bitmap", "remove", "--image", f, "--name", "nope");
        assertEquals(ExitCodes.USAGE, missing.exitCode());
        assertTrue(missing.stderr().contains("it has: jb-1, old"), missing.stderr());
        Cli.run("bitmap", "remove", "--image", f, "--name", "old").ok();
        assertEquals(1, Cli.run("bitmap", "list", "--image", f, "--json").ok().json().get("bitmaps").size());

        Path raw = dir.resolve("r.raw");
        Proc.run("qemu-img", "create", "-q", "-f", "raw", raw.toString(), "1M");
        Cli.Result notQcow2 = Cli.run("bitmap", "add", "--image", raw.toString(), "--name", "x");
        assertEquals(ExitCodes.USAGE, notQcow2.exitCode());
        assertTrue(notQcow2.stderr().contains("is a raw image"), notQcow2.stderr());
        Cli.Result noFile = Cli.run("bitmap", "list", "--image", dir.resolve("none.qcow2").toString());
        assertTrue(noFile.stderr().contains("no image"), noFile.stderr());

        // a writable qemu-nbd holds the write lock: listing works (force-share), changing says why it cannot
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2")) {
            assertTrue(Cli.run("bitmap", "list", "--image", f).ok().stdout().contains("in-use"));
            Cli.Result busy = Cli.run("bitmap", "add", "--image", f, "--name", "jb-2");
            assertEquals(ExitCodes.SOURCE, busy.exitCode(), busy.toString());
            assertTrue(busy.stderr().contains("is in use by another process"), busy.stderr());
        }
    }

    @Test
    void missingQemuImgNamesThePackage() throws Exception {
        Path empty = Files.createDirectory(dir.resolve("bin"));
        ExternalToolException e = assertThrows(ExternalToolException.class,
            () -> QemuImg.locate("qemu-img", empty.toString()));
        assertTrue(e.getMessage().contains("apt-get install -y qemu-utils"), e.getMessage());
    }

    /** docs/live-backup.md, "Offline disks": full, then incrementals rotating bitmaps with jbackup bitmap. */
    @Test
    void offlineRotationRecipe() throws Exception {
        Repository.init(dir.resolve("repo"), RepositoryOptions.defaults().withChunkSize(64 * 1024), null).close();
        String repo = dir.resolve("repo").toString();
        Path img = QemuImages.qcow2(dir.resolve("vm.qcow2"), "8M");
        String f = img.toString();
        QemuImages.io(img, "qcow2", "write -P 0x01 0 2M");
        Cli.run("bitmap", "add", "--image", f, "--name", "jb-1").ok();
        String prevId;
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A")) {
            prevId = Cli.run("full", "--repo", repo, "--disk", "vda", "--source", QemuImages.uriOf(s), "--json").ok()
                .json().get("disks").get(0).get("backupId").asText();
        }
        for (int n = 1; n <= 2; n++) {
            QemuImages.io(img, "qcow2", "write -P 0x2" + n + " " + n + "M 64k"); // the VM ran
            String bitmap = "jb-" + n;
            JsonNode inc;
            try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A", "-B", bitmap)) {
                inc = Cli.run("incremental", "--repo", repo, "--disk", "vda", "--source", QemuImages.uriOf(s),
                    "--bitmap", bitmap, "--json").ok().json().get("disks").get(0);
            }
            assertEquals(prevId, inc.get("parentId").asText());
            assertEquals(65536, inc.get("bytesRead").asLong(), inc.toString());
            Cli.run("bitmap", "add", "--image", f, "--name", "jb-" + (n + 1)).ok();
            Cli.run("bitmap", "remove", "--image", f, "--name", bitmap).ok();
            prevId = inc.get("backupId").asText();
            Path out = dir.resolve("r" + n + ".raw");
            Cli.run("restore", "--repo", repo, "--disk", "vda", "--backup", prevId, "--to", out.toString()).ok();
            assertEquals(Proc.sha256(QemuImages.toRaw(img, dir.resolve("s" + n + ".raw"))), Proc.sha256(out));
        }
    }
}
