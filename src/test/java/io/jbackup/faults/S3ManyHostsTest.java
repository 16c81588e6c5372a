package io.jbackup.faults;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Cli;
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
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

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
 * every backup, the new one included, restores bit-exact and {@code verify} is clean.
 */
class S3ManyHostsTest {
    static final String BUCKET = "jbackup-many-hosts";
    static final String PASS = "many hosts passphrase 41c2";
    static final long MIB = 1L << 20;
    static final long DISK = 64 * MIB;
    static final long DATA = 16 * MIB;

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
        Map<String, String> env = new HashMap<>();
        env.put("JBACKUP_REPO", "s3://" + BUCKET + "/fleet");
        env.put("JBACKUP_PASSPHRASE", PASS);
        env.put("AWS_ENDPOINT_URL_S3", server.endpoint().toString());
        env.put("AWS_REGION", "us-east-1");
        env.put("AWS_ACCESS_KEY_ID", S3Proxy.IDENTITY);
        env.put("AWS_SECRET_ACCESS_KEY", S3Proxy.CREDENTIAL);
        env.put("XDG_CACHE_HOME", dir.resolve("cache-" + name).toString());
        return env;
    }

    /** A command from the fourth host, in this JVM: explicit options, credentials from the default chain. */
    private static Cli.Result reader(String cache, String... args) {
        List<String> a = new ArrayList<>(List.of(args));
        a.addAll(List.of("--repo", "s3://" + BUCKET + "/fleet", "--s3-endpoint", server.endpoint().toString(),
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
            reader(cache, "restore", "--vm", e.getValue()[0], "--disk", "vda", "--backup", e.getKey(), "--to",
                out.toString()).ok();
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
        JsonNode st = reader("cache-reader", "stats", "--json").ok().json();
        assertEquals(3, st.get("backups").asLong(), st.toString());
        assertEquals(3 * DISK, st.get("logicalBytes").asLong(), st.toString());
        assertEquals(DATA + MIB + DATA, st.get("chunkRawBytes").asLong(),
            "unique data: R, B's own MiB and T; less than the " + 3 * DATA + " bytes of the three disks: " + st);
        assertRestores("cache-reader", shaById);
        // host A's own cache, refreshed from the bucket, sees the other hosts' backups too
        JsonNode seenByA = reader("cache-a/jbackup", "list", "--json").ok().json();
        assertEquals(3, seenByA.size(), seenByA.toString());

        // C's backup goes; a slow backup of C's data plus a new MiB, with gc --grace 0s running meanwhile
        reader("cache-reader", "forget", idC).ok();
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
        JsonNode after = reader("cache-after", "stats", "--json").ok().json();
        assertEquals(3, after.get("backups").asLong(), after.toString());
        assertTrue(after.get("packBytes").asLong() < 3 * DATA + MIB,
            "stored bytes below the data of the three live disks: " + after);
        reader("cache-after", "verify").ok();
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
}
