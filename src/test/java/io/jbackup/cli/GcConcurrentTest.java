package io.jbackup.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.TestJvm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code jbackup gc} in this JVM while {@code jbackup full} runs in another, reading a slow nbdkit export whose
 * data matches a pruned backup (so it deduplicates against chunks that gc finds unused). Afterwards the backup
 * that existed before and the one made during gc restore bit-exact, and verify finds nothing.
 */
@org.junit.jupiter.api.Tag("reliability")
class GcConcurrentTest {
    @TempDir
    Path dir;

    @Test
    void gcWhileABackupRunsInAnotherProcess() throws Exception {
        Path repo = dir.resolve("repo");
        String r = repo.toString();
        Cli.run("init", "--repo", r, "--chunk-size", "64K").ok();
        Path img = QemuImages.qcow2(dir.resolve("a.qcow2"), "16M");
        QemuImages.io(img, "qcow2", "write -P 0x41 0 3M", "write -P 0x42 5M 2M", "write -P 0x43 9M 1M");
        Path rawOld = QemuImages.toRaw(img, dir.resolve("old.raw"));
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A")) {
            Cli.run("full", "--repo", r, "--disk", "a", "--source", QemuImages.uriOf(s)).ok();
        }
        QemuImages.io(img, "qcow2", "write -P 0x51 0 3M", "write -P 0x52 12M 1M");
        Path rawNew = QemuImages.toRaw(img, dir.resolve("new.raw"));
        String before;
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A")) {
            before = Cli.run("full", "--repo", r, "--disk", "a", "--source", QemuImages.uriOf(s), "--json").ok().json()
                .get("disks").get(0).get("backupId").asText();
        }
        // the first backup goes: its 0x41 chunks are now used by no backup
        assertEquals(1, Cli.run("prune", "--repo", r, "--keep-last", "1", "--json").ok().json().get("removed").asInt());

        // another process backs up the old data (0x41 again) from a slow source
        Path sock = dir.resolve("slow.sock");
        try (Proc.Background slow = Proc.start(dir.resolve("nbdkit.log"), "nbdkit", "-f", "-t", "1", "-U",
            sock.toString(), "--filter=delay", "file", rawOld.toString(), "delay-read=30ms").awaitPath(sock)) {
            List<String> cmd = new ArrayList<>(TestJvm.java("-cp", System.getProperty("java.class.path"), "io.jbackup.cli.Main", "full", "--repo", r,
                "--disk", "c", "--source", "nbd+unix:///?socket=" + sock, "--json"));
            Process child = new ProcessBuilder(cmd).redirectOutput(dir.resolve("child.out").toFile())
                .redirectError(dir.resolve("child.err").toFile()).start();
            try {
                // wait until its backup has begun (an incomplete row), then collect garbage
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                while (Cli.run("list", "--repo", r, "--json").ok().json().size() < 2) {
                    assertTrue(child.isAlive() && System.nanoTime() < deadline, "the child backup did not begin: "
                        + Files.readString(dir.resolve("child.err")));
                    Thread.sleep(50);
                }
                JsonNode gc = Cli.run("gc", "--repo", r, "--repack-threshold", "100", "--json").ok().json();
                assertEquals(1, gc.get("writersWaited").asInt(), "gc waited for the other process: " + gc);
                assertTrue(gc.get("chunksCondemned").asLong() > 0, gc.toString());
                assertTrue(child.waitFor(60, TimeUnit.SECONDS));
                assertEquals(0, child.exitValue(), Files.readString(dir.resolve("child.err")));
            } finally {
                child.destroyForcibly();
            }
        }
        String during = new com.fasterxml.jackson.databind.ObjectMapper().readTree(dir.resolve("child.out").toFile())
            .get("disks").get(0).get("backupId").asText();
        Path outBefore = dir.resolve("restore-before.raw");
        Path outDuring = dir.resolve("restore-during.raw");
        Cli.run("restore", "--repo", r, "--disk", "a", "--backup", before, "--to", outBefore.toString()).ok();
        Cli.run("restore", "--repo", r, "--disk", "c", "--backup", during, "--to", outDuring.toString()).ok();
        assertEquals(Proc.sha256(rawNew), Proc.sha256(outBefore), "the backup that existed before gc");
        assertEquals(Proc.sha256(rawOld), Proc.sha256(outDuring), "the backup made while gc ran");
        Cli.run("verify", "--repo", r).ok();
        // nothing is left condemned, and a second gc finds only what the concurrent backup made garbage
        JsonNode again = Cli.run("gc", "--repo", r, "--json").ok().json();
        assertEquals(0, again.get("writersWaited").asInt());
    }
}
