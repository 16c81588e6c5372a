package io.jbackup.faults;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.store.BackupReader;
import io.jbackup.store.BackupSpec;
import io.jbackup.store.BackupWriter;
import io.jbackup.store.Encryption;
import io.jbackup.store.GcOptions;
import io.jbackup.store.GcReport;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.store.RepositoryLocation;
import io.jbackup.store.RepositoryLocations;
import io.jbackup.store.RepositoryOptions;
import io.jbackup.store.VerifyOptions;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.JBackupProcess;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.S3Proxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Many hosts share one bucket (issue #13): three jbackup JVMs, each with its own cache directory and only its
 * environment to find the repository ({@code JBACKUP_REPO}, {@code AWS_ENDPOINT_URL_S3}, {@code AWS_REGION},
 * {@code AWS_ACCESS_KEY_ID}, {@code AWS_SECRET_ACCESS_KEY}, {@code XDG_CACHE_HOME}, {@code JBACKUP_PASSPHRASE}),
 * back up three 64 MiB disks concurrently into one s3proxy bucket. Disks A and B share 15 of their 16 MiB of
 * (incompressible, seeded random) data; C has data of its own. Then: {@code stats --json} from a fourth, fresh cache
 * counts the shared data once; every backup restores bit-exact from that cache; after C's backup is forgotten, a
 * slow backup of C's data plus new data runs while {@code gc --grace 0s} runs: the backup either commits, or (when
 * the gc deleted packs it reused) fails cleanly with exit 5 naming the way out, and its next run commits; afterwards
 * every backup, the new one included, restores bit-exact and {@code verify} is clean. And a read on one host finds
 * the chunks that a gc on another host repacked meanwhile.
 */
class S3ManyHostsTest {
    static final String BUCKET = "jbackup-many-hosts";
    static final String PASS = "many hosts passphrase 41c2";
    static final long MIB = 1L << 20;
    static final long DISK = 64 * MIB;
    static final long DATA = 16 * MIB;
    static final int CROSS_CS = 64 * 1024;
    static final int CROSS_CHUNKS = 16;

    @TempDir
    static Path dir;
    static S3Proxy server;

    @BeforeAll
    static void startServer() throws IOException {
        server = S3Proxy.start(Files.createDirectories(dir.resolve("s3"))).withDefaultCredentials();
        server.createBucket(BUCKET);
    }

    @AfterAll
    static void stopServer() {
        if (server != null) {
            server.close();
        }
    }

    /** What a host's environment says: the repository, the endpoint, credentials, its own cache directory. */
    private static Map<String, String> host(String name) {
        return host(name, "fleet");
    }

    private static Map<String, String> host(String name, String prefix) {
        Map<String, String> env = new HashMap<>();
        env.put("JBACKUP_REPO", "s3://" + BUCKET + "/" + prefix);
        env.put("JBACKUP_PASSPHRASE", PASS);
        env.put("AWS_ENDPOINT_URL_S3", server.endpoint().toString());
        env.put("AWS_REGION", "us-east-1");
        env.put("AWS_ACCESS_KEY_ID", S3Proxy.IDENTITY);
        env.put("AWS_SECRET_ACCESS_KEY", S3Proxy.CREDENTIAL);
        env.put("XDG_CACHE_HOME", dir.resolve("cache-" + name).toString());
        return env;
    }

    /** A command from the fourth host, in this JVM: explicit options, credentials from the default chain. */
    private static Cli.Result reader(String prefix, String cache, String... args) {
        List<String> a = new ArrayList<>(List.of(args));
        a.addAll(List.of("--repo", "s3://" + BUCKET + "/" + prefix, "--s3-endpoint", server.endpoint().toString(),
            "--s3-region", "us-east-1", "--cache-dir", dir.resolve(cache).toString(), "--passphrase-file",
            dir.resolve("pass").toString()));
        return Cli.run(a.toArray(String[]::new));
    }

    /** A sparse raw disk of {@link #DISK} bytes with {@code len} seeded random bytes at {@code offset}, per part. */
    private static Path disk(String name, long[]... parts) throws IOException {
        Path p = dir.resolve(name + ".raw");
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(DISK);
            for (long[] part : parts) { // {offset, length, seed}
                byte[] b = new byte[(int) part[1]];
                new Random(part[2]).nextBytes(b);
                f.seek(part[0]);
                f.write(b);
            }
        }
        return p;
    }

    private static String sha(Path p) {
        return Proc.sha256(p);
    }

    private static JBackupProcess backup(String host, String vm, Proc.Background source) {
        return JBackupProcess.start(dir, "backup-" + vm, host(host), "full", "--vm", vm, "--disk", "vda",
            "--source", QemuImages.uriOf(source), "--json");
    }

    private static String idOf(JBackupProcess p) {
        JsonNode j = p.json();
        assertEquals("ok", j.get("status").asText(), j.toString());
        return j.get("disks").get(0).get("backupId").asText();
    }

    /** Restores every backup (id to {vm, SHA-256}) with the cache directory {@code cache}. */
    private static void assertRestores(String cache, Map<String, String[]> shaById) {
        for (Map.Entry<String, String[]> e : shaById.entrySet()) {
            Path out = dir.resolve(cache + "-" + e.getKey() + ".raw");
            reader("fleet", cache, "restore", "--vm", e.getValue()[0], "--disk", "vda", "--backup", e.getKey(),
                "--to", out.toString()).ok();
            assertEquals(e.getValue()[1], sha(out), "backup " + e.getKey() + " restored from " + cache);
        }
    }

    @Test
    void threeHostsBackUpConcurrentlyDedupAcrossHostsAndGcDuringABackupLosesNothing() throws Exception {
        Files.writeString(dir.resolve("pass"), PASS + "\n");
        // A: R at 8M; B: R with its 5th MiB replaced; C: T at 24M
        Path a = disk("a", new long[]{8 * MIB, DATA, 1});
        Path b = disk("b", new long[]{8 * MIB, DATA, 1}, new long[]{12 * MIB, MIB, 2});
        Path c = disk("c", new long[]{24 * MIB, DATA, 3});
        JBackupProcess init = JBackupProcess.start(dir, "init", host("a"), "init", "--chunk-size", "64K",
            "--encryption", "aes-256-gcm");
        assertEquals(0, init.await(60), init.stderr());

        Map<String, String[]> shaById = new LinkedHashMap<>();
        try (Proc.Background sa = QemuImages.qemuNbd(dir, a, "raw", "-r", "-A");
             Proc.Background sb = QemuImages.qemuNbd(dir, b, "raw", "-r", "-A");
             Proc.Background sc = QemuImages.qemuNbd(dir, c, "raw", "-r", "-A");
             JBackupProcess pa = backup("a", "vm-a", sa);
             JBackupProcess pb = backup("b", "vm-b", sb);
             JBackupProcess pc = backup("c", "vm-c", sc)) {
            for (JBackupProcess p : List.of(pa, pb, pc)) {
                assertEquals(0, p.await(120), p.args + "\n" + p.stderr());
            }
            shaById.put(idOf(pa), new String[]{"vm-a", sha(a)});
            shaById.put(idOf(pb), new String[]{"vm-b", sha(b)});
            shaById.put(idOf(pc), new String[]{"vm-c", sha(c)});
        }
        String idC = new ArrayList<>(shaById.keySet()).get(2);

        // a fourth host sees the three backups, and the data A and B share counted once
        JsonNode st = reader("fleet", "cache-reader", "stats", "--json").ok().json();
        assertEquals(3, st.get("backups").asLong(), st.toString());
        assertEquals(3 * DISK, st.get("logicalBytes").asLong(), st.toString());
        assertEquals(DATA + MIB + DATA, st.get("chunkRawBytes").asLong(),
            "unique data: R, B's own MiB and T; less than the " + 3 * DATA + " bytes of the three disks: " + st);
        assertRestores("cache-reader", shaById);
        // host A's own cache, refreshed from the bucket, sees the other hosts' backups too
        JsonNode seenByA = reader("fleet", "cache-a/jbackup", "list", "--json").ok().json();
        assertEquals(3, seenByA.size(), seenByA.toString());

        // C's backup goes; a slow backup of C's data plus a new MiB, with gc --grace 0s running meanwhile
        reader("fleet", "cache-reader", "forget", idC).ok();
        shaById.remove(idC);
        Path d = disk("d", new long[]{24 * MIB, DATA, 3}, new long[]{48 * MIB, MIB, 4});
        Path sock = dir.resolve("slow.sock");
        Path nbdLog = dir.resolve("slow-requests.log");
        try (Proc.Background slow = Proc.start(dir.resolve("nbdkit.log"), "nbdkit", "-f", "-t", "1", "-U",
                 sock.toString(), "--filter=log", "--filter=delay", "file", d.toString(), "logfile=" + nbdLog,
                 "delay-read=40ms").awaitSocket(sock);
             JBackupProcess pd = JBackupProcess.start(dir, "backup-vm-d", host("c"), "full", "--vm", "vm-c",
                 "--disk", "vda", "--source", "nbd+unix:///?socket=" + sock, "--json")) {
            awaitReads(nbdLog, pd);
            try (JBackupProcess gc = JBackupProcess.start(dir, "gc", host("a"), "gc", "--grace", "0s", "--json")) {
                assertEquals(0, gc.await(120), gc.stderr());
            }
            int code = pd.await(120);
            System.out.printf("  backup during gc: exit %d%s%n", code, code == 0 ? "" : ": " + pd.stderr().strip());
            if (code == 0) {
                shaById.put(idOf(pd), new String[]{"vm-c", sha(d)});
            } else {
                // the gc deleted packs the backup reused: it fails cleanly, naming the way out, and the next run
                // stores those chunks anew
                assertEquals(5, code, pd.stderr());
                assertTrue(pd.stderr().contains("deleted while the backup ran") && pd.stderr().contains(
                    "run the backup again"), pd.stderr());
            }
        }
        if (shaById.size() == 2) {
            try (Proc.Background sd = QemuImages.qemuNbd(dir, d, "raw", "-r", "-A");
                 JBackupProcess again = backup("c", "vm-c", sd)) {
                assertEquals(0, again.await(120), again.stderr());
                shaById.put(idOf(again), new String[]{"vm-c", sha(d)});
            }
        }

        // after the gc, from a fresh cache: every backup restores bit-exact and the bucket verifies clean
        assertRestores("cache-after", shaById);
        JsonNode after = reader("fleet", "cache-after", "stats", "--json").ok().json();
        assertEquals(3, after.get("backups").asLong(), after.toString());
        assertTrue(after.get("packBytes").asLong() < 3 * DATA + MIB,
            "stored bytes below the data of the three live disks: " + after);
        reader("fleet", "cache-after", "verify").ok();
    }

    /**
     * One host, two backups at once (two cron jobs): both JVMs share the host's cache directory; both commit and
     * restore bit-exact from another cache.
     */
    @Test
    void twoBackupsAtOnceOnOneHostShareItsCache() throws Exception {
        Files.writeString(dir.resolve("pass"), PASS + "\n");
        Path x = disk("x", new long[]{0, 4 * MIB, 11});
        Path y = disk("y", new long[]{0, 4 * MIB, 11}, new long[]{8 * MIB, 4 * MIB, 12});
        JBackupProcess init = JBackupProcess.start(dir, "init-one", host("one", "one"), "init", "--chunk-size",
            "64K", "--encryption", "aes-256-gcm");
        assertEquals(0, init.await(60), init.stderr());
        Map<String, String[]> shaById = new LinkedHashMap<>();
        try (Proc.Background sx = QemuImages.qemuNbd(dir, x, "raw", "-r", "-A");
             Proc.Background sy = QemuImages.qemuNbd(dir, y, "raw", "-r", "-A");
             JBackupProcess px = JBackupProcess.start(dir, "one-x", host("one", "one"), "full", "--vm", "vm-x",
                 "--disk", "vda", "--source", QemuImages.uriOf(sx), "--json");
             JBackupProcess py = JBackupProcess.start(dir, "one-y", host("one", "one"), "full", "--vm", "vm-y",
                 "--disk", "vda", "--source", QemuImages.uriOf(sy), "--json")) {
            assertEquals(0, px.await(120), px.stderr());
            assertEquals(0, py.await(120), py.stderr());
            shaById.put(idOf(px), new String[]{"vm-x", sha(x)});
            shaById.put(idOf(py), new String[]{"vm-y", sha(y)});
        }
        for (Map.Entry<String, String[]> e : shaById.entrySet()) {
            Path out = dir.resolve("one-" + e.getKey() + ".raw");
            reader("one", "one-reader", "restore", "--vm", e.getValue()[0], "--disk", "vda", "--backup", e.getKey(),
                "--to", out.toString()).ok();
            assertEquals(e.getValue()[1], sha(out), "backup " + e.getKey());
        }
    }

    /**
     * A backup killed (SIGKILL) halfway leaves packs no manifest names; a gc from another host with
     * {@code --grace 0s} deletes them; the next backup on the killed backup's host, whose cache knew those packs,
     * commits (it does not reuse chunks the bucket no longer has) and restores bit-exact.
     */
    @Test
    void aKilledBackupLeavesNothingThatBreaksTheNextOneOrAGc() throws Exception {
        Files.writeString(dir.resolve("pass"), PASS + "\n");
        Path k = disk("k", new long[]{0, 8 * MIB, 21});
        JBackupProcess init = JBackupProcess.start(dir, "init-kill", host("k1", "kill"), "init", "--chunk-size",
            "64K", "--pack-size", "1M", "--encryption", "aes-256-gcm");
        assertEquals(0, init.await(60), init.stderr());
        Path sock = dir.resolve("kill.sock");
        try (Proc.Background slow = Proc.start(dir.resolve("nbdkit-kill.log"), "nbdkit", "-f", "-t", "1", "-U",
                 sock.toString(), "--filter=delay", "file", k.toString(), "delay-read=40ms").awaitSocket(sock);
             JBackupProcess killed = JBackupProcess.start(dir, "killed", host("k1", "kill"), "full", "--vm", "vm-k",
                 "--disk", "vda", "--source", "nbd+unix:///?socket=" + sock, "--json")) {
            // killed once a second pack is being uploaded: the first (sealed ~0.6 s earlier, as the source gives
            // 64 KiB per 40 ms) is complete; s3proxy lists an object while it is still being written
            while (packs("kill/") < 2) {
                assertTrue(killed.process.isAlive(), "the backup ended before it was killed: " + killed.stderr());
                Thread.sleep(20);
            }
            killed.kill();
        }
        int orphans = packs("kill/");
        assertTrue(orphans > 0);
        assertEquals(0, reader("kill", "kill-reader", "list", "--json").ok().json().size(),
            "the killed backup is not listed");
        // another host's gc removes what the killed backup left
        try (JBackupProcess gc = JBackupProcess.start(dir, "gc-kill", host("k2", "kill"), "gc", "--grace", "0s",
            "--json")) {
            assertEquals(0, gc.await(120), gc.stderr());
        }
        assertEquals(0, packs("kill/"), "gc --grace 0s deletes the " + orphans + " packs no backup references");
        // the host of the killed backup backs up again: its cache knew those packs, the bucket no longer has them
        String id;
        try (Proc.Background sk = QemuImages.qemuNbd(dir, k, "raw", "-r", "-A");
             JBackupProcess again = JBackupProcess.start(dir, "again", host("k1", "kill"), "full", "--vm", "vm-k",
                 "--disk", "vda", "--source", QemuImages.uriOf(sk), "--json")) {
            assertEquals(0, again.await(120), again.stderr());
            id = idOf(again);
        }
        Path out = dir.resolve("kill-restored.raw");
        reader("kill", "kill-reader2", "restore", "--vm", "vm-k", "--disk", "vda", "--backup", id, "--to",
            out.toString()).ok();
        assertEquals(sha(k), sha(out));
        reader("kill", "kill-reader2", "verify").ok();
    }

    private static int packs(String prefix) {
        return server.client().listObjectsV2(b -> b.bucket(BUCKET).prefix(prefix + "packs/")).keyCount();
    }

    /** Waits until the backup has read from its source (nbdkit's log filter logs each request). */
    private static void awaitReads(Path log, JBackupProcess backup) throws Exception {
        while (!Files.exists(log) || !Files.readString(log).contains("Read ")) {
            if (!backup.process.isAlive()) {
                throw new AssertionError("the backup ended before reading: " + backup.stderr());
            }
            Thread.sleep(20);
        }
    }

    private static RepositoryLocation crossHost(String cache) {
        return RepositoryLocations.parse("s3://" + BUCKET + "/cross-read", server.endpoint().toString(), "us-east-1",
            null, dir.resolve(cache), System.getenv());
    }

    private static String crossBackup(Repository r, String disk, byte[][] chunks, int count) throws Exception {
        try (BackupWriter w = r.beginBackup(BackupSpec.full("web1", disk, (long) count * CROSS_CS))) {
            for (int i = 0; i < count; i++) {
                w.putChunk(i, chunks[i], CROSS_CS).get();
            }
            return w.commit().id();
        }
    }

    /**
     * Host 2 reads a backup (a restore, a serve) while host 1's gc repacks the pack that holds its chunks and deletes
     * the old one. Host 2's catalog cache still points at the old pack; the read must find the chunks in the new pack
     * (as a reader of a local repository does after a repack), not report them damaged (a VM booted from
     * {@code serve} got I/O errors) and quarantine them.
     */
    @Test
    void aReadOnAnotherHostFindsTheChunksThatGcRepackedMeanwhile() throws Exception {
        byte[][] data = new byte[CROSS_CHUNKS][];
        Random rnd = new Random(42);
        for (int i = 0; i < CROSS_CHUNKS; i++) {
            data[i] = new byte[CROSS_CS];
            rnd.nextBytes(data[i]);
        }
        OpenOptions opts = OpenOptions.defaults().withPassphrase(PASS);
        String big;
        String small;
        RepositoryOptions options = new RepositoryOptions(CROSS_CS, Encryption.AES_256_GCM, 1, 1 << 20);
        try (Repository h1 = Repository.init(crossHost("cross-cache1"), options, PASS.toCharArray())) {
            big = crossBackup(h1, "big", data, CROSS_CHUNKS);
            small = crossBackup(h1, "small", data, 4); // the first 4 chunks of big's pack, deduplicated
        }
        try (Repository h2 = Repository.open(crossHost("cross-cache2"), opts);
             BackupReader reader = h2.openBackup(small)) {
            assertArrayEquals(data[0], reader.readChunk(0), "chunk 0 before the gc");

            try (Repository h1 = Repository.open(crossHost("cross-cache1"), opts)) {
                h1.deleteBackups(List.of(big), Duration.ZERO);
                GcReport gc = h1.gc(GcOptions.defaults().withRepackThreshold(100).withGrace(Duration.ZERO));
                assertTrue(gc.packsRepacked() > 0, "gc repacked the pack of the small backup: " + gc);
            }

            for (int i = 1; i < 4; i++) {
                assertArrayEquals(data[i], reader.readChunk(i), "chunk " + i + " read on host 2 after host 1's gc");
            }
            assertEquals(0, h2.verify(VerifyOptions.all()).damagedChunks().size(), "nothing was quarantined");
        }
    }
}
