package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code auto|incremental --image FILE --rotate-bitmap} with real qemu-img, qemu-io and qemu-nbd: the same command
 * line every run; each incremental reads only what changed since the previous backup (bytes read from the JSON
 * result), every backup restores bit-exact (SHA-256 against {@code qemu-img convert -O raw}), and a run whose
 * source is killed leaves both bitmaps, so the next run still has every change.
 */
@Timeout(180)
class OfflineRotationTest {
    @TempDir
    Path dir;
    String repo;
    Path img;

    @Test
    void eachIncrementalReadsOnlyTheChangesSinceThePreviousBackup() throws Exception {
        prepare("repo", "vda.qcow2", "write -P 0x11 0 3M");

        JsonNode full = rotate("auto");
        assertEquals("full", full.get("type").asText());
        assertEquals(1, bitmaps().size(), bitmaps().toString());
        String b1 = bitmaps().get(0);
        assertRestores(full, "full");

        QemuImages.io(img, "qcow2", "write -P 0x22 2M 1M");
        JsonNode inc1 = rotate("incremental");
        assertEquals("incremental", inc1.get("type").asText());
        assertEquals(1 << 20, inc1.get("bytesRead").asLong(), inc1.toString());
        List<String> after1 = bitmaps();
        assertEquals(1, after1.size(), "the old bitmap is removed after the commit: " + after1);
        assertNotEquals(b1, after1.get(0));
        assertRestores(inc1, "inc1");

        QemuImages.io(img, "qcow2", "write -P 0x33 5M 512k");
        JsonNode inc2 = rotate("incremental");
        assertEquals(512 << 10, inc2.get("bytesRead").asLong(), "only the second change: " + inc2);
        assertRestores(inc2, "inc2");

        // the source dies: the run fails and both bitmaps stay; the next run reads what changed since inc2
        QemuImages.io(img, "qcow2", "write -P 0x44 6M 256k");
        String current = bitmaps().get(0);
        CompletableFuture<Cli.Result> run = CompletableFuture.supplyAsync(() -> Cli.run("incremental", "--repo",
            repo, "--disk", "vda", "--image", img.toString(), "--rotate-bitmap", "--retries", "0", "--json"));
        killQemuNbd();
        Cli.Result failed = run.get(60, TimeUnit.SECONDS);
        assertEquals(4, failed.exitCode(), failed.stdout() + failed.stderr());
        List<String> both = bitmaps();
        assertEquals(2, both.size(), both.toString());
        assertTrue(both.contains(current), both.toString());

        JsonNode inc3 = rotate("auto");
        assertEquals("incremental", inc3.get("type").asText(), inc3.toString());
        assertEquals(256 << 10, inc3.get("bytesRead").asLong(), inc3.toString());
        assertEquals(1, bitmaps().size(), "the old and the stale bitmap are removed: " + bitmaps());
        assertRestores(inc3, "inc3");
    }

    /** A new repository {@code repoName} and an 8 MiB qcow2 {@code image} holding what {@code write} wrote. */
    private void prepare(String repoName, String image, String write) throws Exception {
        repo = dir.resolve(repoName).toString();
        Cli.run("init", "--repo", repo, "--chunk-size", "64K").ok();
        img = QemuImages.qcow2(dir.resolve(image), "8M");
        QemuImages.io(img, "qcow2", write);
    }

    /** A newest backup without a recorded bitmap (commit-overlay, an NBD source): auto says so, not "no --bitmap". */
    @Test
    void aParentWithoutRecordedBitmapIsNamedAsTheReasonForAFullBackup() throws Exception {
        prepare("repo-nolabel", "vdb.qcow2", "write -P 0x11 0 1M");
        String parent;
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r")) {
            parent = Cli.run("full", "--repo", repo, "--disk", "vda", "--source", QemuImages.uriOf(s), "--json")
                .ok().json().get("disks").get(0).get("backupId").asText();
        }
        JsonNode auto = rotate("auto");
        assertEquals("full", auto.get("type").asText(), auto.toString());
        assertEquals("no-bitmap", auto.get("fallbackReason").asText(), auto.toString());
        String reason = auto.toString();
        assertTrue(reason.contains("newest backup " + parent) && reason.contains("records no bitmap"), reason);
        assertFalse(reason.contains("no --bitmap given"), reason);
    }

    private JsonNode rotate(String mode) {
        Cli.Result r = Cli.run(mode, "--repo", repo, "--disk", "vda", "--image", img.toString(), "--rotate-bitmap",
            "--json");
        assertEquals(0, r.exitCode(), r.stdout() + r.stderr());
        return r.json().get("disks").get(0);
    }

    private List<String> bitmaps() throws Exception {
        JsonNode info = new ObjectMapper().readTree(Proc.run("qemu-img", "info", "--output=json", "-U",
            img.toString()));
        List<String> out = new ArrayList<>();
        info.path("format-specific").path("data").path("bitmaps").forEach(b -> out.add(b.path("name").asText()));
        return out;
    }

    private void assertRestores(JsonNode d, String name) {
        String want = Proc.sha256(QemuImages.toRaw(img, dir.resolve(name + "-src.raw")));
        Path out = dir.resolve(name + "-restored.raw");
        Cli.run("restore", "--repo", repo, "--disk", "vda", "--backup", d.get("backupId").asText(), "--to",
            out.toString()).ok();
        assertEquals(want, Proc.sha256(out), name + " restores bit-exact");
    }

    /** Kills the qemu-nbd that this JVM's jbackup started for {@link #img} (a descendant of this process). */
    private void killQemuNbd() throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (System.nanoTime() < deadline) {
            for (ProcessHandle h : ProcessHandle.current().descendants().toList()) {
                List<String> args = h.info().arguments().map(List::of).orElse(List.of());
                if (h.info().command().orElse("").endsWith("qemu-nbd") && args.contains(img.toString())) {
                    h.destroyForcibly();
                    return;
                }
            }
            Thread.sleep(2);
        }
        throw new AssertionError("jbackup did not start qemu-nbd");
    }
}
