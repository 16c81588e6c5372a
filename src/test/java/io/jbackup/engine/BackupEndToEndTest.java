package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * End to end with real qemu tools: qemu-img/qemu-io make and change images, qemu-nbd -B BITMAP -A exports them,
 * jbackup backs them up through its CLI, and every backup restores to the SHA-256 of a raw snapshot of the source
 * taken at that point.
 */
class BackupEndToEndTest {
    @TempDir
    Path dir;

    private Path repo() {
        return dir.resolve("repo");
    }

    private void init(String chunk) {
        Cli.run("init", "--repo", repo().toString(), "--chunk-size", chunk).ok();
    }

    private JsonNode backup(String cmd, Proc.Background server, String disk, String... extra) {
        List<String> a = new ArrayList<>(List.of(cmd, "--repo", repo().toString(), "--disk", disk, "--source",
            QemuImages.uriOf(server), "--json"));
        a.addAll(List.of(extra));
        JsonNode j = Cli.run(a.toArray(String[]::new)).ok().json();
        assertEquals("ok", j.get("status").asText(), j.toString());
        return j.get("disks").get(0);
    }

    private String restoreSha(String disk, String id) {
        Path out = dir.resolve("restore-" + disk + "-" + id + ".raw");
        Cli.run("restore", "--repo", repo().toString(), "--disk", disk, "--backup", id, "--to", out.toString()).ok();
        return Proc.sha256(out);
    }

    private String rawSha(Path image, String name) {
        return Proc.sha256(QemuImages.toRaw(image, dir.resolve(name + ".raw")));
    }

    @Test
    void chainOfIncrementalsWithDiscardAndWriteZeroesRestoresBitExact() {
        init("64K");
        Path img = QemuImages.qcow2(dir.resolve("disk.qcow2"), "32M");
        QemuImages.io(img, "qcow2", "write -P 0x11 0 4M", "write -P 0x22 8M 3M", "write -P 0x33 20M 64k",
            "write -P 0x44 31M 1M");
        List<String> ids = new ArrayList<>();
        List<String> shas = new ArrayList<>();

        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A")) {
            JsonNode full = backup("full", s, "vda");
            assertEquals("full", full.get("type").asText());
            assertTrue(full.get("bytesRead").asLong() < 10L << 20, "full reads only allocated data: " + full);
            assertTrue(full.get("bytesZero").asLong() >= 20L << 20, "unallocated space is zero chunks: " + full);
            ids.add(full.get("backupId").asText());
        }
        shas.add(rawSha(img, "snap0"));
        QemuImages.addBitmap(img, "b1");

        // day 1: overwrite inside a chunk, discard a region, write zeroes, write new data
        QemuImages.io(img, "qcow2", "write -P 0x55 100k 4k", "discard 8M 1M", "write -z 20M 64k",
            "write -P 0x66 16M 2M");
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-B", "b1", "-A")) {
            JsonNode inc = backup("incremental", s, "vda", "--bitmap", "b1");
            assertEquals("incremental", inc.get("type").asText());
            assertEquals(ids.get(0), inc.get("parentId").asText());
            assertTrue(inc.get("bytesRead").asLong() <= 3L << 20, "incremental reads only dirty chunks: " + inc);
            ids.add(inc.get("backupId").asText());
        }
        shas.add(rawSha(img, "snap1"));
        QemuImages.addBitmap(img, "b2");

        // day 2: trim data written on day 1, zero a region that had data at the full
        QemuImages.io(img, "qcow2", "discard 16M 1M", "write -z 0 1M", "write -P 0x77 12M 128k");
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-B", "b2", "-A")) {
            ids.add(backup("incremental", s, "vda", "--bitmap", "b2").get("backupId").asText());
        }
        shas.add(rawSha(img, "snap2"));
        QemuImages.addBitmap(img, "b3");

        // day 3 through auto
        QemuImages.io(img, "qcow2", "write -P 0x88 30M 512k", "discard 0 2M");
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-B", "b3", "-A")) {
            JsonNode auto = backup("auto", s, "vda", "--bitmap", "b3");
            assertEquals("incremental", auto.get("type").asText(), auto.toString());
            ids.add(auto.get("backupId").asText());
        }
        shas.add(rawSha(img, "snap3"));

        for (int i = 0; i < ids.size(); i++) {
            assertEquals(shas.get(i), restoreSha("vda", ids.get(i)), "backup " + i + " (" + ids.get(i) + ")");
        }
    }

    @Test
    void backingChainWithAllocationDepthTwo() {
        init("64K");
        Path base = QemuImages.qcow2(dir.resolve("base.qcow2"), "16M");
        QemuImages.io(base, "qcow2", "write -P 0xa1 0 6M", "write -P 0xa2 10M 2M");
        Path top = QemuImages.qcow2Overlay(dir.resolve("top.qcow2"), base);
        QemuImages.io(top, "qcow2", "write -P 0xb1 1M 1M", "write -z 10M 512k", "write -P 0xb2 14M 1M");
        String id;
        try (Proc.Background s = QemuImages.qemuNbd(dir, top, "qcow2", "-r", "-A")) {
            JsonNode full = backup("full", s, "disk0");
            id = full.get("backupId").asText();
            assertTrue(full.get("bytesRead").asLong() >= 8L << 20, "backing data is read too: " + full);
        }
        assertEquals(rawSha(top, "top"), restoreSha("disk0", id));
    }

    @Test
    void refusesUnsafeIncrementalsAndAutoFallsBackToFull() {
        init("64K");
        Path img = QemuImages.qcow2(dir.resolve("d.qcow2"), "8M");
        QemuImages.io(img, "qcow2", "write -P 0x01 0 1M");
        // no parent yet: incremental refused with the fix named
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A")) {
            Cli.Result r = Cli.run("incremental", "--repo", repo().toString(), "--disk", "d", "--source",
                QemuImages.uriOf(s), "--bitmap", "b1");
            assertEquals(2, r.exitCode(), r.toString());
            assertTrue(r.stderr().contains("jbackup full"), r.stderr());
            backup("full", s, "d");
        }
        QemuImages.addBitmap(img, "b1");
        QemuImages.io(img, "qcow2", "write -P 0x02 2M 1M");
        // missing bitmap on the export (exported without -B): clear error naming the bitmap
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A")) {
            Cli.Result r = Cli.run("incremental", "--repo", repo().toString(), "--disk", "d", "--source",
                QemuImages.uriOf(s), "--bitmap", "b1");
            assertEquals(2, r.exitCode(), r.toString());
            assertTrue(r.stderr().contains("bitmap 'b1' is not exported"), r.stderr());
        }
        // the disk grew: incremental refused, auto does a full
        Proc.run("qemu-img", "resize", "-q", img.toString(), "12M");
        QemuImages.io(img, "qcow2", "write -P 0x03 11M 512k");
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-B", "b1", "-A")) {
            Cli.Result r = Cli.run("incremental", "--repo", repo().toString(), "--disk", "d", "--source",
                QemuImages.uriOf(s), "--bitmap", "b1");
            assertEquals(2, r.exitCode(), r.toString());
            assertTrue(r.stderr().contains("size changed"), r.stderr());
            JsonNode auto = backup("auto", s, "d", "--bitmap", "b1");
            assertEquals("full", auto.get("type").asText());
            assertTrue(auto.get("reason").asText().contains("size changed"), auto.toString());
            assertEquals(rawSha(img, "grown"), restoreSha("d", auto.get("backupId").asText()));
        }
    }

    @Test
    void multiDiskVmBacksUpAsOneSetAndAnAddedDiskGetsAFull() {
        init("64K");
        Path a = QemuImages.qcow2(dir.resolve("vda.qcow2"), "8M");
        Path b = QemuImages.qcow2(dir.resolve("vdb.qcow2"), "4M");
        QemuImages.io(a, "qcow2", "write -P 0x0a 0 2M");
        QemuImages.io(b, "qcow2", "write -P 0x0b 1M 1M");
        try (Proc.Background sa = QemuImages.qemuNbd(dir, a, "qcow2", "-r", "-A");
             Proc.Background sb = QemuImages.qemuNbd(dir, b, "qcow2", "-r", "-A")) {
            JsonNode j = Cli.run("full", "--repo", repo().toString(), "--vm", "web1", "--source",
                "vda=" + QemuImages.uriOf(sa), "--source", "vdb=" + QemuImages.uriOf(sb), "--json").ok().json();
            assertEquals(2, j.get("disks").size());
        }
        String shaA1 = rawSha(a, "a1");
        String shaB1 = rawSha(b, "b1");
        QemuImages.addBitmap(a, "bm");
        QemuImages.addBitmap(b, "bm");
        QemuImages.io(a, "qcow2", "write -P 0x1a 4M 1M");
        QemuImages.io(b, "qcow2", "discard 1M 512k");
        Path c = QemuImages.qcow2(dir.resolve("vdc.qcow2"), "2M");
        QemuImages.io(c, "qcow2", "write -P 0x0c 0 1M");
        QemuImages.addBitmap(c, "bm");
        try (Proc.Background sa = QemuImages.qemuNbd(dir, a, "qcow2", "-r", "-B", "bm", "-A");
             Proc.Background sb = QemuImages.qemuNbd(dir, b, "qcow2", "-r", "-B", "bm", "-A");
             Proc.Background sc = QemuImages.qemuNbd(dir, c, "qcow2", "-r", "-B", "bm", "-A")) {
            JsonNode j = Cli.run("auto", "--repo", repo().toString(), "--vm", "web1", "--bitmap", "bm",
                "--source", "vda=" + QemuImages.uriOf(sa), "--source", "vdb=" + QemuImages.uriOf(sb),
                "--source", "vdc=" + QemuImages.uriOf(sc), "--json").ok().json();
            for (JsonNode d : j.get("disks")) {
                String expected = d.get("disk").asText().equals("vdc") ? "full" : "incremental";
                assertEquals(expected, d.get("type").asText(), d.toString());
            }
        }
        // restore the newest set of the VM into a directory
        Path out = dir.resolve("set");
        out.toFile().mkdirs();
        Cli.run("restore", "--repo", repo().toString(), "--vm", "web1", "--to", out.toString()).ok();
        assertEquals(rawSha(a, "a2"), Proc.sha256(out.resolve("vda.raw")));
        assertEquals(rawSha(b, "b2"), Proc.sha256(out.resolve("vdb.raw")));
        assertEquals(rawSha(c, "c2"), Proc.sha256(out.resolve("vdc.raw")));
        assertTrue(!shaA1.equals(rawSha(a, "a2")) && !shaB1.equals(rawSha(b, "b2")), "the disks changed");
    }

    @Test
    void droppedConnectionIsRetriedAndResumes() throws Exception {
        init("1M");
        Path raw = dir.resolve("src.raw");
        Proc.run("qemu-img", "create", "-q", "-f", "raw", raw.toString(), "16M");
        QemuImages.io(raw, "raw", "write -P 0x5a 0 16M");
        Path sock = dir.resolve("nbdkit.sock");
        // one thread and 100 ms per read: the 32 reads of 512 KiB take ~3 s, so the kill lands mid-backup
        String[] server = {"nbdkit", "-f", "-t", "1", "-U", sock.toString(), "--filter=delay", "file", raw.toString(),
            "delay-read=100ms"};
        Proc.Background first = Proc.start(dir.resolve("nbdkit1.log"), server).awaitPath(sock);
        // the backup runs in its own thread; this thread kills and restarts the server (a server started from a
        // short-lived thread gets a graceful stop when that thread ends, so it must be this one)
        java.util.concurrent.CompletableFuture<Cli.Result> backup = java.util.concurrent.CompletableFuture.supplyAsync(
            () -> Cli.run("full", "--repo", repo().toString(), "--disk", "slow", "--source",
                "nbd+unix:///?socket=" + sock, "--json"));
        Proc.Background second = null;
        try {
            Thread.sleep(1500);
            assertTrue(!backup.isDone(), "the backup is still running when the server dies");
            first.process().destroyForcibly(); // the server dies: the connection drops mid-reply
            first.process().waitFor();
            java.nio.file.Files.deleteIfExists(sock); // a killed nbdkit leaves its socket behind
            Thread.sleep(1500);
            second = Proc.start(dir.resolve("nbdkit2.log"), server).awaitPath(sock);
            Cli.Result res = backup.get(60, java.util.concurrent.TimeUnit.SECONDS);
            assertEquals(0, res.exitCode(), res.toString());
            JsonNode d = res.json().get("disks").get(0);
            assertTrue(d.get("retries").asInt() >= 1, "the backup reconnected: " + d);
            assertEquals(Proc.sha256(raw), restoreSha("slow", d.get("backupId").asText()));
        } finally {
            if (second != null) {
                second.close();
            }
        }
    }
}
