package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdClient;
import io.jbackup.qmp.BlockNodes;
import io.jbackup.qmp.FakeGuestAgent;
import io.jbackup.qmp.QmpClient;
import io.jbackup.store.DiskBusyException;
import io.jbackup.store.Repository;
import io.jbackup.store.RepositoryOptions;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.StorageDaemon;
import io.jbackup.testutil.TestJvm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Live backups of a running qemu-storage-daemon through QMP: jbackup makes the fleecing export and manages the
 * bitmaps; a second, writable NBD export of the same node plays the guest. Every backup is restored and compared by
 * SHA-256 with a raw snapshot of the disk at the backup's point in time.
 */
class LiveBackupTest {
    private static final int SIZE = 16 << 20;

    @TempDir
    Path dir;

    private Path repo() {
        return dir.resolve("repo");
    }

    private void init() throws IOException {
        Repository.init(repo(), RepositoryOptions.defaults().withChunkSize(64 * 1024), null).close();
    }

    private Path image() {
        Path img = QemuImages.qcow2(dir.resolve("vm.qcow2"), "16M");
        QemuImages.io(img, "qcow2", "write -P 0x11 0 3M", "write -P 0x22 8M 1M", "write -P 0x33 15M 1M");
        return img;
    }

    private JsonNode live(String cmd, StorageDaemon qsd, String... extra) {
        List<String> a = new ArrayList<>(List.of(cmd, "--repo", repo().toString(), "--disk", "vda",
            "--qmp", qsd.qmp().toString(), "--node", "disk0", "--json"));
        a.addAll(List.of(extra));
        Cli.Result r = Cli.run(a.toArray(String[]::new)).ok();
        JsonNode d = r.json().get("disks").get(0);
        assertEquals("ok", d.get("status").asText(), r.toString());
        return d;
    }

    private String restoreSha(String id) {
        Path out = dir.resolve("restore-" + id + ".raw");
        Cli.run("restore", "--repo", repo().toString(), "--disk", "vda", "--backup", id, "--to", out.toString()).ok();
        return Proc.sha256(out);
    }

    /** A raw snapshot of the guest's view of the disk, read through the guest export. */
    private String guestSha(StorageDaemon qsd, String name) {
        Path out = dir.resolve(name + ".raw");
        Proc.run("nbdcopy", qsd.guestUri().toString(), out.toString());
        return Proc.sha256(out);
    }

    private static NbdClient guest(StorageDaemon qsd) throws IOException {
        return NbdClient.connect(qsd.guestUri(), ClientOptions.defaults());
    }

    private static void write(NbdClient g, long offset, int length, int pattern) throws Exception {
        byte[] b = new byte[length];
        java.util.Arrays.fill(b, (byte) pattern);
        g.write(offset, b, 0, length, false).get(30, TimeUnit.SECONDS);
    }

    /** Named bitmaps of node disk0, as the test's own monitor sees them. */
    private static List<BlockNodes.DirtyBitmap> bitmaps(QmpClient q) throws IOException {
        return BlockNodes.node(q, "disk0").bitmaps();
    }

    /** Nothing of jbackup's is left in QEMU: no export but the guest's, no extra node, no job. */
    private static void assertNoLeftovers(QmpClient q) throws IOException {
        List<String> exports = new ArrayList<>();
        q.execute("query-block-exports").forEach(e -> exports.add(e.path("id").asText()));
        exports.remove("guest");
        assertEquals(List.of(), exports, "exports left behind");
        assertEquals(0, q.execute("query-jobs").size(), "jobs left behind: " + q.execute("query-jobs"));
        List<String> nodes = BlockNodes.nodes(q).stream().map(BlockNodes.Node::name).sorted().toList();
        assertEquals(List.of("disk0", "file0"), nodes, "nodes left behind");
    }

    @Test
    void chainOfFiveLiveIncrementalsRestoresBitExact() throws Exception {
        init();
        Path img = image();
        List<String> ids = new ArrayList<>();
        List<String> shas = new ArrayList<>();
        try (StorageDaemon qsd = StorageDaemon.start(dir, img, true);
             QmpClient q = QmpClient.connect(qsd.testQmp(), Duration.ofSeconds(10));
             NbdClient g = guest(qsd)) {
            String server = qsd.nbdServer().toString();
            JsonNode full = live("full", qsd, "--nbd-server", server);
            assertEquals("full", full.get("type").asText());
            ids.add(full.get("backupId").asText());
            shas.add(guestSha(qsd, "snap0"));
            Random rnd = new Random(6);
            for (int i = 1; i <= 5; i++) {
                // a day of guest I/O: new data, an overwrite inside a chunk, zeroes, a trim
                write(g, (long) rnd.nextInt(SIZE / 65536) * 65536, 65536, 0x40 + i);
                write(g, 100_000L * i, 4096, 0x50 + i);
                g.writeZeroes((long) rnd.nextInt(SIZE / 65536) * 65536, 131072, false).get(30, TimeUnit.SECONDS);
                g.trim(8L << 20, 65536L * i).get(30, TimeUnit.SECONDS);
                g.flush().get(30, TimeUnit.SECONDS);
                shas.add(guestSha(qsd, "snap" + i));
                JsonNode inc = live(i % 2 == 0 ? "auto" : "incremental", qsd, "--nbd-server", server);
                assertEquals("incremental", inc.get("type").asText(), inc.toString());
                assertEquals(ids.get(i - 1), inc.get("parentId").asText());
                assertTrue(inc.get("bytesRead").asLong() <= 8L * 65536, "reads only dirty chunks: " + inc);
                ids.add(inc.get("backupId").asText());
                List<BlockNodes.DirtyBitmap> bms = bitmaps(q);
                assertEquals(1, bms.size(), "exactly the newest backup's bitmap stays: " + bms);
                assertTrue(bms.get(0).recording() && bms.get(0).persistent(), bms.toString());
                assertTrue(bms.get(0).name().endsWith("-vda-" + (i + 1)), bms.toString());
            }
            assertNoLeftovers(q);
        }
        for (int i = 0; i < ids.size(); i++) {
            assertEquals(shas.get(i), restoreSha(ids.get(i)), "backup " + i + " (" + ids.get(i) + ")");
        }
    }

    @Test
    void privateServerGuestFreezeRestartAndMissingBitmap() throws Exception {
        init();
        Path img = image();
        Path scratch = Files.createDirectory(dir.resolve("scratch"));
        String id0;
        String sha0 = Proc.sha256(QemuImages.toRaw(img, dir.resolve("base.raw")));
        try (StorageDaemon qsd = StorageDaemon.start(dir, img, false);
             QmpClient q = QmpClient.connect(qsd.testQmp(), Duration.ofSeconds(10))) {
            // the agent checks, while it is asked to freeze and thaw, whether the point in time exists yet
            List<String> seen = new ArrayList<>();
            try (FakeGuestAgent qga = new FakeGuestAgent(dir.resolve("qga.sock"), cmd -> {
                try {
                    seen.add(cmd + " jobs=" + q.execute("query-block-jobs").size());
                } catch (IOException e) {
                    seen.add(cmd + " " + e);
                }
            })) {
                JsonNode full = live("full", qsd, "--qga", qga.socket().toString(), "--scratch-dir",
                    scratch.toString());
                id0 = full.get("backupId").asText();
                assertEquals(List.of("guest-fsfreeze-freeze jobs=0", "guest-fsfreeze-thaw jobs=1"), seen,
                    "frozen before the transaction, thawed after it");
            }
            assertNoLeftovers(q);
            try (Stream<Path> left = Files.list(scratch)) {
                assertEquals(List.of(), left.toList(), "fleecing image and socket deleted");
            }
            // the private NBD server is gone: the test can start its own
            q.execute("nbd-server-start", QmpClient.args("addr", Map.of("type", "unix",
                "data", Map.of("path", dir.resolve("t.sock").toString()))));
            q.execute("nbd-server-stop");
        }
        assertEquals(sha0, restoreSha(id0));

        // the VM is off: writes happen; the bitmap was stored in the image when QEMU stopped
        QemuImages.io(img, "qcow2", "write -P 0x77 4M 128k", "discard 8M 64k");
        String sha1 = Proc.sha256(QemuImages.toRaw(img, dir.resolve("snap1.raw")));
        try (StorageDaemon qsd = StorageDaemon.start(dir, img, false);
             QmpClient q = QmpClient.connect(qsd.testQmp(), Duration.ofSeconds(10))) {
            JsonNode auto = live("auto", qsd);
            assertEquals("incremental", auto.get("type").asText(), auto.toString());
            assertTrue(auto.get("bytesRead").asLong() <= 3 * 65536, auto.toString());
            assertEquals(sha1, restoreSha(auto.get("backupId").asText()));

            // someone removes jbackup's bitmap: incremental refuses, auto makes a full backup and says why
            String bm = bitmaps(q).get(0).name();
            q.execute("block-dirty-bitmap-remove", QmpClient.args("node", "disk0", "name", bm));
            Cli.Result r = Cli.run("incremental", "--repo", repo().toString(), "--disk", "vda", "--qmp",
                qsd.qmp().toString(), "--node", "disk0");
            assertEquals(2, r.exitCode(), r.toString());
            assertTrue(r.stderr().contains("bitmap " + bm) && r.stderr().contains("missing"), r.stderr());
            assertEquals(0, bitmaps(q).size(), "a refused incremental changes nothing in QEMU");
            JsonNode full = live("auto", qsd);
            assertEquals("full", full.get("type").asText());
            assertTrue(full.get("reason").asText().contains("missing"), full.toString());
            assertEquals(sha1, restoreSha(full.get("backupId").asText()));
            assertNoLeftovers(q);
        }
    }

    // ---------------------------------------------------------------- through the API, with a guest writing

    private List<DiskResult> liveApi(StorageDaemon qsd, BackupMode mode, ProgressListener listener, Cancellation c)
        throws Exception {
        try (Repository r = Repository.open(repo(), io.jbackup.store.OpenOptions.defaults())) {
            LiveSource src = LiveSource.of(qsd.qmp(), List.of(new LiveSource.Disk("vda", "disk0", null)))
                .withNbdServer(qsd.nbdServer());
            return new LiveBackup(r, EngineOptions.defaults().withRetries(1, Duration.ofMillis(10)), listener, c)
                .run(src, null, mode, ClientOptions.defaults(), Map.of(), null);
        }
    }

    /**
     * The guest: sequential 4 KiB writes of distinct patterns at random 4 KiB blocks, each acknowledged before the
     * next is sent, round-robin over its disks. Because QEMU drains I/O for a transaction, a point in time holds
     * exactly the first k writes, on every disk.
     */
    static final class GuestWriter implements AutoCloseable {
        private static final int BLOCK = 4096;
        private final NbdClient[] clients;
        private final int[] blocks = new int[1 << 20];
        private final AtomicInteger issued = new AtomicInteger();
        private final AtomicInteger completed = new AtomicInteger();
        private final AtomicBoolean stop = new AtomicBoolean();
        private final CompletableFuture<Void> done = new CompletableFuture<>();

        GuestWriter(NbdClient... clients) {
            this.clients = clients;
            Thread t = new Thread(this::run, "guest-writer");
            t.setDaemon(true);
            t.start();
        }

        static byte[] pattern(int seq) {
            byte[] b = new byte[BLOCK];
            java.util.Arrays.fill(b, (byte) (seq * 31 + 7));
            ByteBuffer.wrap(b).putLong(seq + 1L);
            return b;
        }

        private void run() {
            Random rnd = new Random(42);
            try {
                for (int seq = 0; !stop.get() && seq < blocks.length; seq++) {
                    blocks[seq] = rnd.nextInt(SIZE / BLOCK);
                    issued.set(seq + 1);
                    clients[seq % clients.length].write((long) blocks[seq] * BLOCK, pattern(seq), 0, BLOCK, false)
                        .get(30, TimeUnit.SECONDS);
                    completed.set(seq + 1);
                }
                done.complete(null);
            } catch (Exception e) {
                done.completeExceptionally(e);
            }
        }

        int issued() {
            return issued.get();
        }

        int completed() {
            return completed.get();
        }

        void awaitCompleted(int n) throws Exception {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (completed.get() < n) {
                assertFalse(done.isCompletedExceptionally(), "the writer failed");
                assertTrue(System.nanoTime() < deadline, "the writer is stuck at " + completed.get());
                Thread.sleep(1);
            }
        }

        /** Disk {@code disk} after the first {@code k} writes on top of {@code base}. */
        byte[] model(byte[] base, int k, int disk) {
            byte[] m = base.clone();
            for (int seq = disk; seq < k; seq += clients.length) {
                System.arraycopy(pattern(seq), 0, m, blocks[seq] * BLOCK, BLOCK);
            }
            return m;
        }

        /** How many writes an image holds: the highest sequence number in a written block that matches its pattern. */
        int writesIn(byte[] image, int disk) {
            int k = 0;
            for (int b = 0; b < SIZE / BLOCK; b++) {
                long seq = ByteBuffer.wrap(image, b * BLOCK, 8).getLong() - 1;
                if (seq >= 0 && seq < issued.get() && seq % clients.length == disk && blocks[(int) seq] == b && java.util.Arrays.equals(image,
                    b * BLOCK, (b + 1) * BLOCK, pattern((int) seq), 0, BLOCK)) {
                    k = Math.max(k, (int) seq + 1);
                }
            }
            return k;
        }

        /** The 64 KiB chunks written by writes {@code from} .. {@code to - 1} (one disk). */
        TreeSet<Integer> chunks(int from, int to) {
            TreeSet<Integer> s = new TreeSet<>();
            for (int seq = from; seq < to; seq++) {
                s.add(blocks[seq] * BLOCK / 65536);
            }
            return s;
        }

        int stop() throws Exception {
            stop.set(true);
            done.get(30, TimeUnit.SECONDS);
            return completed.get();
        }

        @Override
        public void close() {
            stop.set(true);
        }
    }

    private static String sha(byte[] b) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    }

    private byte[] restore(String id) throws IOException {
        Path out = dir.resolve("restore-" + id + ".raw");
        Cli.run("restore", "--repo", repo().toString(), "--disk", "vda", "--backup", id, "--to", out.toString()).ok();
        return Files.readAllBytes(out);
    }

    @Test
    void writesDuringTheBackupAreLeftOutAndTheNextIncrementalHasExactlyThem() throws Exception {
        init();
        Path img = image();
        try (StorageDaemon qsd = StorageDaemon.start(dir, img, true);
             QmpClient q = QmpClient.connect(qsd.testQmp(), Duration.ofSeconds(10));
             NbdClient g = guest(qsd)) {
            live("full", qsd, "--nbd-server", qsd.nbdServer().toString());
            guestSha(qsd, "base");
            byte[] base = Files.readAllBytes(dir.resolve("base.raw"));
            try (GuestWriter w = new GuestWriter(g)) {
                w.awaitCompleted(200);
                int before = w.completed();
                int[] atGate = new int[1];
                // after the transaction, before any read: let the guest overwrite plenty of blocks
                ProgressListener gate = new ProgressListener() {
                    @Override
                    public void started(String disk, long totalBytes) {
                        atGate[0] = w.issued();
                        try {
                            w.awaitCompleted(atGate[0] + 1000);
                        } catch (Exception e) {
                            throw new AssertionError(e);
                        }
                    }
                };
                List<DiskResult> r1 = liveApi(qsd, BackupMode.AUTO, gate, new Cancellation());
                assertTrue(r1.get(0).ok(), r1.toString());
                assertEquals("incremental", r1.get(0).type());
                w.awaitCompleted(w.completed() + 200);
                int total = w.stop();

                byte[] finalImage = w.model(base, total, 0);
                assertEquals(guestSha(qsd, "final"), sha(finalImage), "the writer's model matches the disk");

                byte[] b1 = restore(r1.get(0).backupId());
                int k = w.writesIn(b1, 0);
                assertTrue(before <= k && k <= atGate[0], "the point in time lies within the call: " + before
                    + " <= " + k + " <= " + atGate[0]);
                assertTrue(total - k >= 1200, "writes after the point in time: " + (total - k));
                assertEquals(sha(w.model(base, k, 0)), sha(b1), "the backup is the disk after exactly " + k + " writes");

                List<DiskResult> r2 = liveApi(qsd, BackupMode.INCREMENTAL, ProgressListener.NONE, new Cancellation());
                assertTrue(r2.get(0).ok(), r2.toString());
                assertEquals(sha(finalImage), sha(restore(r2.get(0).backupId())));
                long expected = (long) w.chunks(k, total).size() * 65536;
                assertEquals(expected, r2.get(0).bytesRead(),
                    "the next incremental reads exactly the chunks written after the point in time");
            }
            assertNoLeftovers(q);
        }
    }

    @Test
    void aFailedBackupLeavesTheBitmapsSoTheNextIncrementalIsComplete() throws Exception {
        init();
        Path img = image();
        try (StorageDaemon qsd = StorageDaemon.start(dir, img, true);
             QmpClient q = QmpClient.connect(qsd.testQmp(), Duration.ofSeconds(10));
             NbdClient g = guest(qsd)) {
            String server = qsd.nbdServer().toString();
            String id0 = live("full", qsd, "--nbd-server", server).get("backupId").asText();
            String prev = bitmaps(q).get(0).name();
            int region = 0;

            // 1. the NBD connection is killed mid-backup: the export is removed with force
            // 2. the backup is cancelled (Ctrl-C)
            // 3. QEMU's fleecing job is cancelled behind jbackup's back: the point in time is gone
            for (int mode = 1; mode <= 3; mode++) {
                write(g, (long) region++ << 20, 65536, 0xA0 + mode); // before the point in time: in prev
                int m = mode;
                Cancellation cancel = new Cancellation();
                ProgressListener saboteur = new ProgressListener() {
                    @Override
                    public void started(String disk, long totalBytes) {
                        try {
                            write(g, (long) (10 + m) << 20, 65536, 0xB0 + m); // after it: only in the new bitmap
                            String export = null;
                            for (JsonNode e : q.execute("query-block-exports")) {
                                if (!e.path("id").asText().equals("guest")) {
                                    export = e.path("id").asText();
                                }
                            }
                            switch (m) {
                                case 1 -> q.execute("block-export-del", QmpClient.args("id", export, "mode", "hard"));
                                case 2 -> {
                                    // a second run on the same disk meanwhile is refused before it touches QEMU
                                    // (the disk lock, named after its holder)
                                    DiskBusyException busy = org.junit.jupiter.api.Assertions.assertThrows(
                                        DiskBusyException.class, () -> liveApi(qsd, BackupMode.AUTO,
                                            ProgressListener.NONE, new Cancellation()));
                                    assertTrue(busy.getMessage().contains("disk vda is being backed up by pid "
                                        + ProcessHandle.current().pid()), busy.getMessage());
                                    cancel.cancel("test: interrupted");
                                }
                                default -> q.execute("block-job-cancel", QmpClient.args("device", export + "-fleece",
                                    "force", true));
                            }
                        } catch (Exception e) {
                            throw new AssertionError(e);
                        }
                    }
                };
                try {
                    List<DiskResult> r = liveApi(qsd, BackupMode.INCREMENTAL, saboteur, cancel);
                    assertFalse(r.get(0).ok(), "mode " + m + ": " + r);
                    if (m == 3) {
                        assertTrue(r.get(0).reason().contains("fleecing job"), r.toString());
                    }
                } catch (java.util.concurrent.CancellationException e) {
                    assertEquals(2, m, "only the interrupted run throws: " + e);
                }
                List<BlockNodes.DirtyBitmap> bms = bitmaps(q);
                assertEquals(1, bms.size(), "mode " + m + ": the new bitmap was merged and removed: " + bms);
                assertEquals(prev, bms.get(0).name());
                assertTrue(bms.get(0).recording(), "mode " + m + ": the previous bitmap records again");
                assertNoLeftovers(q);
            }
            try (Repository r = Repository.open(repo(), io.jbackup.store.OpenOptions.defaults())) {
                assertEquals(id0, r.latestComplete(null, "vda").orElseThrow().id(), "no failed backup committed");
            }
            write(g, 14L << 20, 4096, 0xC1);
            g.flush().get(30, TimeUnit.SECONDS);
            String sha = guestSha(qsd, "after");
            JsonNode inc = live("incremental", qsd, "--nbd-server", server);
            assertEquals(id0, inc.get("parentId").asText());
            assertEquals(sha, restoreSha(inc.get("backupId").asText()), "every write since the full is in it");
            assertEquals(7L * 65536, inc.get("bytesRead").asLong(),
                "3 writes before, 3 during the failed runs, 1 after");
            assertNoLeftovers(q);
        }
    }

    /**
     * jbackup is SIGKILLed right after the transaction (while it asks the guest agent to thaw): QEMU keeps the
     * fleecing job and nodes, the new bitmap, and the previous bitmap disabled. The next run removes the leftovers
     * and merges the new bitmap into the previous one, so its incremental still has every write.
     */
    @Test
    void aKilledRunIsRepairedByTheNextRun() throws Exception {
        init();
        Path img = image();
        try (StorageDaemon qsd = StorageDaemon.start(dir, img, true);
             QmpClient q = QmpClient.connect(qsd.testQmp(), Duration.ofSeconds(10));
             NbdClient g = guest(qsd)) {
            String server = qsd.nbdServer().toString();
            String id0 = live("full", qsd, "--nbd-server", server).get("backupId").asText();
            String prev = bitmaps(q).get(0).name();
            write(g, 1L << 20, 65536, 0xD1); // recorded by prev

            CompletableFuture<Void> thawAsked = new CompletableFuture<>();
            CompletableFuture<Void> killed = new CompletableFuture<>();
            Process p;
            try (FakeGuestAgent qga = new FakeGuestAgent(dir.resolve("qga.sock"), cmd -> {
                if (cmd.equals("guest-fsfreeze-thaw") && !thawAsked.isDone()) {
                    thawAsked.complete(null);
                    killed.join(); // jbackup dies waiting for this answer
                }
            })) {
                p = new ProcessBuilder(TestJvm.java("-cp", System.getProperty("java.class.path"), "io.jbackup.cli.Main",
                    "auto", "--repo", repo().toString(), "--disk", "vda", "--qmp", qsd.qmp().toString(),
                    "--node", "disk0", "--nbd-server", server, "--qga", qga.socket().toString()))
                    .redirectErrorStream(true).redirectOutput(dir.resolve("killed.log").toFile()).start();
                try {
                    thawAsked.get(60, TimeUnit.SECONDS);
                    write(g, 3L << 20, 65536, 0xD2); // after the point in time: only in the new bitmap
                    p.destroyForcibly();
                    assertTrue(p.waitFor(30, TimeUnit.SECONDS));
                } finally {
                    killed.complete(null);
                    p.destroyForcibly();
                }
            }
            List<BlockNodes.DirtyBitmap> left = bitmaps(q);
            assertEquals(2, left.size(), "the killed run left its new bitmap: " + left);
            assertFalse(left.stream().filter(b -> b.name().equals(prev)).findFirst().orElseThrow().recording(),
                "and the previous one disabled: " + left);
            assertEquals(1, q.execute("query-block-jobs").size(), "and its fleecing job");

            write(g, 5L << 20, 4096, 0xD3);
            g.flush().get(30, TimeUnit.SECONDS);
            String sha = guestSha(qsd, "after-kill");
            JsonNode inc = live("auto", qsd, "--nbd-server", server);
            assertEquals("incremental", inc.get("type").asText(), inc.toString());
            assertEquals(id0, inc.get("parentId").asText());
            assertEquals(sha, restoreSha(inc.get("backupId").asText()));
            assertEquals(3L * 65536, inc.get("bytesRead").asLong(), "before, during and after the killed run");
            assertEquals(1, bitmaps(q).size(), bitmaps(q).toString());
            assertNoLeftovers(q);
        }
    }

    /** Two disks, written round-robin by one guest during the backup: both backups hold the same instant. */
    @Test
    void severalDisksShareOnePointInTime() throws Exception {
        init();
        Path a = image();
        Path b = QemuImages.qcow2(dir.resolve("vdb.qcow2"), "16M");
        QemuImages.io(b, "qcow2", "write -P 0x44 2M 2M");
        try (StorageDaemon qsd = StorageDaemon.start(dir, true, a, b);
             QmpClient q = QmpClient.connect(qsd.testQmp(), Duration.ofSeconds(10));
             NbdClient ga = guest(qsd);
             NbdClient gb = NbdClient.connect(qsd.guestUri(1), ClientOptions.defaults())) {
            byte[][] base = new byte[2][];
            for (int i = 0; i < 2; i++) {
                Path raw = dir.resolve("base" + i + ".raw");
                Proc.run("nbdcopy", qsd.guestUri(i).toString(), raw.toString());
                base[i] = Files.readAllBytes(raw);
            }
            List<DiskResult> r;
            try (GuestWriter w = new GuestWriter(ga, gb)) {
                w.awaitCompleted(200);
                ProgressListener gate = new ProgressListener() {
                    @Override
                    public void started(String disk, long totalBytes) {
                        try {
                            w.awaitCompleted(w.issued() + 500); // both disks change after the instant
                        } catch (Exception e) {
                            throw new AssertionError(e);
                        }
                    }
                };
                try (Repository repo = Repository.open(repo(), io.jbackup.store.OpenOptions.defaults())) {
                    LiveSource src = LiveSource.of(qsd.qmp(), List.of(new LiveSource.Disk("vda", "disk0", null),
                        new LiveSource.Disk("vdb", "disk1", null))).withNbdServer(qsd.nbdServer());
                    r = new LiveBackup(repo, EngineOptions.defaults(), gate, new Cancellation())
                        .run(src, "vm1", BackupMode.FULL, ClientOptions.defaults(), Map.of(), null);
                }
                w.stop();
                assertEquals(2, r.size());
                byte[][] got = new byte[2][];
                int k = 0;
                for (int i = 0; i < 2; i++) {
                    assertTrue(r.get(i).ok(), r.toString());
                    Path out = dir.resolve("set-" + i + ".raw");
                    Cli.run("restore", "--repo", repo().toString(), "--vm", "vm1", "--disk", r.get(i).disk(),
                        "--backup", r.get(i).backupId(), "--to", out.toString()).ok();
                    got[i] = Files.readAllBytes(out);
                    k = Math.max(k, w.writesIn(got[i], i));
                }
                for (int i = 0; i < 2; i++) {
                    assertEquals(sha(w.model(base[i], k, i)), sha(got[i]), "disk " + i + " holds the first " + k
                        + " writes of the guest, like the other disk");
                }
            }
            try (Repository repo = Repository.open(repo(), io.jbackup.store.OpenOptions.defaults())) {
                assertEquals(repo.backup(r.get(0).backupId()).orElseThrow().labels().get("set"),
                    repo.backup(r.get(1).backupId()).orElseThrow().labels().get("set"), "one backup set");
            }
            assertEquals(1, BlockNodes.node(q, "disk1").bitmaps().size());
            List<String> exports = new ArrayList<>();
            q.execute("query-block-exports").forEach(e -> exports.add(e.path("id").asText()));
            assertEquals(List.of("guest", "guest1"), exports.stream().sorted().toList());
        }
    }
}
