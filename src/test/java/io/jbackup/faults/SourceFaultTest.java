package io.jbackup.faults;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.JBackupProcess;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Faults of the NBD source during a backup, each against a real qemu-nbd ({@code -r -B b -A}), with the jbackup CLI
 * run as a child JVM: the server killed and not restarted, the connection cut (a TCP proxy closes it after a
 * seeded random number of bytes), and a server that stops answering (the proxy stalls). The job retries and
 * completes bit-exact (SHA-256 of {@code qemu-img convert -O raw}), or fails within its retries with exit code 4
 * (source error) and a message naming the source, and never commits a partial backup; the next run works.
 *
 * <p>Replay with {@code -Djbackup.faults.seed=SEED} (printed).
 */
@Tag("reliability")
class SourceFaultTest {
    static final long SEED = Long.getLong("jbackup.faults.seed", 0x5EED_0002L);

    @TempDir
    Path dir;
    Random rnd;
    Path repo;
    String r;
    FaultImage img;

    @BeforeEach
    void setUp(TestInfo info) throws IOException {
        System.out.printf("SourceFaultTest.%s: seed %d (replay with -Djbackup.faults.seed=%d)%n",
            info.getTestMethod().orElseThrow().getName(), SEED, SEED);
        rnd = new Random(SEED);
        repo = dir.resolve("repo");
        r = repo.toString();
        Cli.run("init", "--repo", r, "--chunk-size", "64K", "--pack-size", "1M").ok();
        img = new FaultImage(dir, 8 << 20, 6 << 20, rnd);
    }

    @Test
    void serverKilledMidBackupFailsAfterItsRetriesAndTheNextRunWorks() throws Exception {
        int code;
        JsonNode result;
        long t0 = System.nanoTime();
        try (Proc.Background src = img.serveThrottled(4_000_000);
             JBackupProcess p = JBackupProcess.start(dir, "killed-source", Map.of(), "full", "--repo", r, "--disk",
                 "vda", "--source", QemuImages.uriOf(src), "--retries", "2", "--json")) {
            awaitBackupBegun(p);
            long delay = 200 + rnd.nextInt(600);
            Thread.sleep(delay);
            src.process().destroyForcibly(); // SIGKILL, not restarted
            code = p.await(60);
            result = p.json();
            System.out.printf("  qemu-nbd killed %d ms into the backup: exit %d after %.1f s: %s%n", delay, code,
                (System.nanoTime() - t0) / 1e9, result.get("disks").get(0).get("reason").asText());
        }
        JsonNode d = result.get("disks").get(0);
        assertEquals(4, code, "source error: " + result);
        assertEquals("error", result.get("status").asText(), "the --json error object: " + result);
        assertEquals(4, result.get("exitCode").asInt(), result.toString());
        assertTrue(result.get("error").get("code").asText().startsWith("source-"), result.toString());
        assertTrue(d.get("reason").asText().contains("giving up on nbd+unix:///?socket=")
            && d.get("reason").asText().contains("after 2 reconnect attempts"), d.toString());
        assertNoBackupsAndClean();
        String id = backupOk("full", null);
        assertTrue(id != null);
    }

    @Test
    void connectionCutMidTransferIsResumedAndRestoresBitExact() throws Exception {
        for (String mode : List.of("full", "incremental")) {
            if (mode.equals("incremental")) {
                System.out.println("  image changed: " + img.mutate());
            }
            String sha = Proc.sha256(img.snapshot(dir.resolve(mode + ".raw")));
            long cut1 = 16 * 1024 + rnd.nextInt(240 * 1024);
            long cut2 = 16 * 1024 + rnd.nextInt(240 * 1024);
            try (Proc.Background src = img.serve();
                 FaultProxy proxy = new FaultProxy(QemuImages.socketOf(src), List.of(FaultProxy.Fault.cut(cut1),
                     FaultProxy.Fault.cut(cut2)), FaultProxy.Fault.NONE)) {
                JBackupProcess p = JBackupProcess.start(dir, "cut-" + mode, Map.of(), KillBackupFaultTest
                    .backupArgs(mode, r, proxy.uri()));
                int code = p.await(120);
                assertEquals(0, code, p.stdout() + p.stderr());
                JsonNode d = p.json().get("disks").get(0);
                System.out.printf("  %s through a proxy that cut connections after %d and %d bytes: %d cut, "
                    + "%d retries, %s%n", mode, cut1, cut2, proxy.injected(), d.get("retries").asInt(),
                    d.get("status").asText());
                assertEquals(2, proxy.injected(), "both cuts happened mid-transfer");
                assertTrue(d.get("retries").asInt() >= 2, d.toString());
                assertEquals(mode, d.get("type").asText());
                assertEquals(sha, restoreSha(d.get("backupId").asText()), mode + " restores bit-exact");
            }
        }
        Cli.run("verify", "--repo", r).ok();
    }

    @Test
    void stalledServerTimesOutThenResumesOrFailsClearly() throws Exception {
        String sha = Proc.sha256(img.snapshot(dir.resolve("now.raw")));
        try (Proc.Background src = img.serve()) {
            // 1. the first connection stops answering mid-transfer; the reconnection is served: resumes, bit-exact
            long stallAt = 64 * 1024 + rnd.nextInt(3 << 20);
            try (FaultProxy proxy = new FaultProxy(QemuImages.socketOf(src),
                List.of(FaultProxy.Fault.stall(stallAt)), FaultProxy.Fault.NONE)) {
                long t0 = System.nanoTime();
                JBackupProcess p = JBackupProcess.start(dir, "stall-once", Map.of(), "full", "--repo", r, "--disk",
                    "vda", "--source", proxy.uri(), "--timeout", "2", "--json");
                int code = p.await(60);
                assertEquals(0, code, p.stdout() + p.stderr());
                JsonNode d = p.json().get("disks").get(0);
                System.out.printf("  stalled after %d bytes: timed out, %d retries, completed in %.1f s%n", stallAt,
                    d.get("retries").asInt(), (System.nanoTime() - t0) / 1e9);
                assertEquals(1, proxy.injected());
                assertTrue(d.get("retries").asInt() >= 1, d.toString());
                assertEquals(sha, restoreSha(d.get("backupId").asText()));
            }
            // 2. stalls mid-transfer, then every new connection gets its handshake but no reply to any request:
            //    the job must give up after its retries, not reconnect forever
            try (FaultProxy proxy = new FaultProxy(QemuImages.socketOf(src),
                List.of(FaultProxy.Fault.stall(stallAt)), FaultProxy.Fault.stallRequests())) {
                long t0 = System.nanoTime();
                JBackupProcess p = JBackupProcess.start(dir, "stall-forever", Map.of(), "full", "--repo", r,
                    "--disk", "vda", "--source", proxy.uri(), "--timeout", "2", "--retries", "2", "--json");
                int code = p.await(90);
                JsonNode result = p.json();
                JsonNode d = result.get("disks").get(0);
                System.out.printf("  stalled for good: exit %d after %.1f s, %d connections: %s%n", code,
                    (System.nanoTime() - t0) / 1e9, proxy.connections(), d.get("reason").asText());
                assertEquals(4, code, result.toString());
                assertTrue(d.get("reason").asText().contains("giving up on " + proxy.uri())
                    && d.get("reason").asText().contains("no reply"), d.toString());
                assertTrue(proxy.connections() <= 4, "1 + at most --retries reconnects: " + proxy.connections());
            }
        }
        // only the first backup exists, complete
        JsonNode list = Cli.run("list", "--repo", r, "--json").ok().json();
        assertEquals(1, list.size(), list.toString());
        assertEquals("complete", list.get(0).get("state").asText());
    }

    private void awaitBackupBegun(JBackupProcess p) throws Exception {
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (!tmpFiles().stream().anyMatch(f -> f.toString().endsWith(".idx"))) {
            assertTrue(p.process.isAlive() && System.nanoTime() < deadline, "the backup did not begin: " + p.stderr());
            Thread.sleep(20);
        }
    }

    private List<Path> tmpFiles() throws IOException {
        Path tmp = repo.resolve("tmp");
        if (!Files.isDirectory(tmp)) {
            return List.of();
        }
        try (Stream<Path> s = Files.walk(tmp)) {
            return s.filter(Files::isRegularFile).toList();
        }
    }

    private void assertNoBackupsAndClean() throws IOException {
        JsonNode list = Cli.run("list", "--repo", r, "--json").ok().json();
        assertEquals(0, list.size(), "no backup committed, nothing partial: " + list);
        assertEquals(List.of(), tmpFiles(), "tmp/ is clean");
    }

    /** Backs up the image now (served without faults) and checks the restore; returns the backup id. */
    private String backupOk(String mode, String bitmap) throws IOException {
        String sha = Proc.sha256(img.snapshot(dir.resolve("ok-" + System.nanoTime() + ".raw")));
        try (Proc.Background src = img.serve()) {
            JsonNode d = Cli.run(KillBackupFaultTest.backupArgs(mode, r, QemuImages.uriOf(src))).ok().json()
                .get("disks").get(0);
            String id = d.get("backupId").asText();
            assertEquals(sha, restoreSha(id), "the next run works and restores bit-exact");
            return id;
        }
    }

    private String restoreSha(String id) throws IOException {
        Path out = dir.resolve("restore-" + id + ".raw");
        Cli.run("restore", "--repo", r, "--disk", "vda", "--backup", id, "--to", out.toString()).ok();
        String sha = Proc.sha256(out);
        Files.delete(out);
        return sha;
    }
}
