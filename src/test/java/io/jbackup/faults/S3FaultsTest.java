package io.jbackup.faults;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.catalog.SqliteCatalog;
import io.jbackup.cli.ExitCodes;
import io.jbackup.store.layout.RepositoryLayout;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.JBackupProcess;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.S3Proxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Process-level faults of s3:// repositories, against a real s3proxy: the server killed (SIGKILL) in the middle of a
 * backup and restarted on its data, a connection cut by a TCP proxy in the middle of an upload, a wrong secret key,
 * a bucket that does not exist, two gcs of two hosts at once, and a host's cache directory deleted or its catalog
 * file damaged between runs. Backups that must outlive a crash run as child JVMs ({@link JBackupProcess}, credentials
 * in {@code AWS_ACCESS_KEY_ID} / {@code AWS_SECRET_ACCESS_KEY}); the others in-process (credentials through the
 * {@code aws.accessKeyId} / {@code aws.secretAccessKey} system properties). Each case ends with nothing lost: every
 * complete backup restores bit-exact (SHA-256 of {@code qemu-img convert -O raw} of the image it was made of), and
 * the next run succeeds.
 */
@Tag("reliability")
class S3FaultsTest {
    static final String BUCKET = "jbackup-faults";
    static final long SEED = Long.getLong("jbackup.faults.seed", 0x5EED_0013L);

    @TempDir
    static Path serverDir;
    static S3Proxy server;

    @TempDir
    Path tmp;

    @BeforeAll
    static void startServer() {
        server = S3Proxy.start(serverDir);
        server.createBucket(BUCKET);
        S3Proxy.setDefaultCredentials();
    }

    @AfterAll
    static void stopServer() {
        S3Proxy.clearDefaultCredentials();
        if (server != null) {
            server.close();
        }
    }

    private static String url(String prefix) {
        return "s3://" + BUCKET + "/" + prefix;
    }

    /** The options that reach {@code url} through {@code endpoint} with the cache directory {@code cache}. */
    private static List<String> repoArgs(String url, String endpoint, Path cache) {
        return List.of("--repo", url, "--s3-endpoint", endpoint, "--s3-region", "us-east-1", "--cache-dir",
            cache.toString());
    }

    /** {@code jbackup ARGS} in-process against {@code url} on the server, with the cache directory {@code cache}. */
    private static Cli.Result run(String url, Path cache, String... args) {
        return runVia(server.endpoint().toString(), url, cache, args);
    }

    private static Cli.Result runVia(String endpoint, String url, Path cache, String... args) {
        List<String> a = new ArrayList<>(List.of(args));
        a.addAll(repoArgs(url, endpoint, cache));
        return Cli.run(a.toArray(String[]::new));
    }

    /** {@code jbackup ARGS} as a child JVM, with the right credentials in its environment. */
    private JBackupProcess spawn(String name, String endpoint, String url, Path cache, String... args) {
        List<String> a = new ArrayList<>(List.of(args));
        a.addAll(repoArgs(url, endpoint, cache));
        return JBackupProcess.start(tmp, name, Map.of("AWS_ACCESS_KEY_ID", S3Proxy.IDENTITY, "AWS_SECRET_ACCESS_KEY",
            S3Proxy.CREDENTIAL), a.toArray(String[]::new));
    }

    private static String[] full(String source) {
        return new String[] {"full", "--disk", "vda", "--source", source, "--json"};
    }

    /**
     * One case's repository (its own prefix of the bucket, 64 KiB chunks, 1 MiB packs so that a backup writes many,
     * no encryption), this host's cache directory, the image it backs up, and its complete backups with the SHA-256
     * of the image each was made of.
     */
    private final class Case {
        final String url;
        final Path cache;
        final FaultImage img;
        final Map<String, String> shas = new LinkedHashMap<>();

        /** The case; {@link #init} creates its repository. */
        Case(String url, long size, long dataBytes, long seed) throws IOException {
            this.url = url;
            this.cache = tmp.resolve("cache");
            this.img = new FaultImage(tmp, size, dataBytes, new Random(seed));
        }

        Case init() {
            run(url, cache, "init", "--chunk-size", "64K", "--pack-size", "1M", "--encryption", "none").ok();
            return this;
        }

        /** The reference SHA-256 of the image now. */
        String sha() throws IOException {
            Path raw = img.snapshot(tmp.resolve("ref.raw"));
            String sha = Proc.sha256(raw);
            Files.delete(raw);
            return sha;
        }

        /** Backs up the image as it is now (unthrottled, in-process, with {@code cacheDir}): the backup's id. */
        String backup(Path cacheDir) throws IOException {
            String sha = sha();
            try (Proc.Background src = img.serve()) {
                String id = run(url, cacheDir, full(QemuImages.uriOf(src))).ok().json().get("disks").get(0)
                    .get("backupId").asText();
                shas.put(id, sha);
                return id;
            }
        }

        String backup() throws IOException {
            return backup(cache);
        }

        /**
         * Nothing lost: the repository lists exactly the backups of {@link #shas}, all complete, and each restores
         * bit-exact; read with {@code cacheDir}.
         */
        void assertAllRestore(Path cacheDir) throws IOException {
            JsonNode list = run(url, cacheDir, "list", "--json").ok().json();
            TreeSet<String> listed = new TreeSet<>();
            for (JsonNode b : list) {
                assertEquals("complete", b.get("state").asText(), "nothing partial is listed: " + b);
                listed.add(b.get("id").asText());
            }
            assertEquals(new TreeSet<>(shas.keySet()), listed, "the complete backups, and only those");
            for (Map.Entry<String, String> e : shas.entrySet()) {
                Path out = tmp.resolve("restore-" + e.getKey() + ".raw");
                run(url, cacheDir, "restore", "--disk", "vda", "--backup", e.getKey(), "--to", out.toString()).ok();
                assertEquals(e.getValue(), Proc.sha256(out), "backup " + e.getKey() + " restores bit-exact");
                Files.delete(out);
            }
        }

        void assertAllRestore() throws IOException {
            assertAllRestore(cache);
        }
    }

    private static void await(String what, long seconds, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("gave up waiting " + seconds + " s for " + what);
            }
            Thread.sleep(20);
        }
    }

    private static int objectCount(String prefix) {
        return server.client().listObjectsV2(b -> b.bucket(BUCKET).prefix(prefix)).keyCount();
    }

    @Test
    void serverKilledInTheMiddleOfABackupAndRestarted() throws Exception {
        Case c = new Case(url("killed"), 24 << 20, 16 << 20, SEED).init();
        c.backup();
        c.img.write(0, 12 << 20);
        int packsBefore = objectCount("killed/packs/");
        try (Proc.Background src = c.img.serveThrottled(4_000_000);
             JBackupProcess p = spawn("killed", server.endpoint().toString(), c.url, c.cache,
                 full(QemuImages.uriOf(src)))) {
            // the backup is under way (a pack of its new data is in the bucket): the server dies
            await("a new pack in the bucket", 60, () -> {
                assertTrue(p.process.isAlive(), () -> "the backup ended before a pack was uploaded: " + p.stderr());
                return objectCount("killed/packs/") > packsBefore;
            });
            server.kill();
            int code = p.await(180);
            assertEquals(ExitCodes.REPOSITORY, code, p.stderr());
            JsonNode err = p.json();
            assertEquals("error", err.get("status").asText(), err.toString());
            assertEquals("store-unavailable", err.get("error").get("code").asText(), err.toString());
            assertTrue(err.get("error").get("message").asText().contains(c.url), "names the repository: " + err);
            assertTrue(p.stderr().contains("jbackup: error: "), p.stderr());
            // one line that ends with the way out, not with the SDK's own text after it
            assertTrue(err.get("error").get("message").asText().endsWith("(complete backups are kept)"),
                err.toString());
            System.out.println("S3FaultsTest: s3proxy killed during a backup: exit " + code + ": "
                + err.get("error").get("message").asText());
        } finally {
            server = S3Proxy.start(serverDir, server.port()); // the same server again, on its data
        }
        c.assertAllRestore();
        c.backup();
        c.assertAllRestore();
        run(c.url, c.cache, "verify").ok();
    }

    @Test
    void connectionCutInTheMiddleOfAnUpload() throws Exception {
        Case c = new Case(url("cut"), 8 << 20, 6 << 20, SEED + 1).init();
        // two connections are cut once 600 KiB went up on them: in the middle of the body of a 1 MiB pack
        try (FaultProxy proxy = new FaultProxy(new InetSocketAddress("127.0.0.1", server.port()), List.of(),
            FaultProxy.Fault.cutUpload(600 << 10)).limitFaults(2)) {
            String sha = c.sha();
            Cli.Result r;
            try (Proc.Background src = c.img.serve()) {
                r = runVia(proxy.httpEndpoint(), c.url, c.cache, full(QemuImages.uriOf(src)));
            }
            assertTrue(proxy.injected() >= 1, "a connection was cut: " + proxy.injected());
            if (r.exitCode() == 0) {
                c.shas.put(r.json().get("disks").get(0).get("backupId").asText(), sha); // retried
            } else {
                assertEquals(ExitCodes.REPOSITORY, r.exitCode(), r.toString());
                assertEquals("store-unavailable", r.json().get("error").get("code").asText(), r.stdout());
            }
            System.out.println("S3FaultsTest: " + proxy.injected() + " connection(s) cut during uploads: exit "
                + r.exitCode() + (r.exitCode() == 0 ? "" : ": " + r.stderr().strip()));
        }
        c.assertAllRestore();
        c.img.mutate();
        c.backup();
        c.assertAllRestore();
    }

    @Test
    void wrongSecretKeyIsRefusedNamingTheCredentials() throws Exception {
        Case c = new Case(url("secret"), 4 << 20, 1 << 20, SEED + 2).init();
        c.backup();
        System.setProperty("aws.secretAccessKey", "not-the-secret");
        List<Cli.Result> results = new ArrayList<>();
        try (Proc.Background src = c.img.serve()) {
            results.add(run(c.url, c.cache, "list"));
            results.add(run(c.url, c.cache, "list", "--json"));
            results.add(run(c.url, c.cache, full(QemuImages.uriOf(src))));
        } finally {
            System.setProperty("aws.secretAccessKey", S3Proxy.CREDENTIAL);
        }
        for (Cli.Result r : results) {
            assertEquals(ExitCodes.REPOSITORY, r.exitCode(), r.toString());
            assertTrue(r.stderr().contains("check the access key and secret key"), r.stderr());
            assertTrue(r.stderr().contains(BUCKET), "names the bucket: " + r.stderr());
        }
        JsonNode err = results.get(1).json();
        assertEquals("error", err.get("status").asText(), err.toString());
        assertEquals(ExitCodes.REPOSITORY, err.get("exitCode").asInt(), err.toString());
        assertEquals("access-denied", err.get("error").get("code").asText(), err.toString());
        assertTrue(err.get("error").get("message").asText().contains("AWS_SECRET_ACCESS_KEY"), err.toString());
        c.assertAllRestore();
        c.backup();
        c.assertAllRestore();
    }

    @Test
    void missingBucketIsNamedWithTheWayOut() throws Exception {
        Case c = new Case("s3://no-such-bucket-13/repo", 4 << 20, 1 << 20, SEED + 3);
        List<Cli.Result> results = new ArrayList<>();
        results.add(run(c.url, c.cache, "init", "--encryption", "none"));
        results.add(run(c.url, c.cache, "list", "--json"));
        try (Proc.Background src = c.img.serve()) {
            results.add(run(c.url, c.cache, full(QemuImages.uriOf(src))));
        }
        for (Cli.Result r : results) {
            assertEquals(ExitCodes.REPOSITORY, r.exitCode(), r.toString());
            assertTrue(r.stderr().contains("no-such-bucket-13"), "names the bucket: " + r.stderr());
            assertTrue(r.stderr().contains("does not exist") && r.stderr().contains("create it"), r.stderr());
        }
        assertEquals("store-not-found", results.get(1).json().get("error").get("code").asText());
        // once the bucket exists, the same commands work
        server.createBucket("no-such-bucket-13");
        c.init();
        c.backup();
        c.assertAllRestore();
    }

    @Test
    void twoGcsAtOnceFromTwoHosts() throws Exception {
        Case c = new Case(url("gcs"), 8 << 20, 4 << 20, SEED + 4).init();
        Path cacheB = tmp.resolve("cache-b");
        String old = c.backup();
        c.img.write(0, 3 << 20);
        c.backup();
        run(c.url, c.cache, "forget", old).ok();
        c.shas.remove(old);
        int packs = objectCount("gcs/packs/");

        // host A's gc goes through a proxy that holds back the answer to A's first request on the deletion lease
        // (its create): A holds the lease, and cannot go on (nor release it) until the test resumes the answers
        try (FaultProxy proxy = new FaultProxy(new InetSocketAddress("127.0.0.1", server.port()), List.of(),
            FaultProxy.Fault.NONE).pauseAfter("/" + RepositoryLayout.DELETION_LEASE);
             JBackupProcess a = spawn("gc-a", proxy.httpEndpoint(), c.url, c.cache, "gc", "--grace", "0", "--json")) {
            await("host A's deletion lease", 60, () -> {
                assertTrue(a.process.isAlive(), () -> "gc A ended: " + a.stdout() + a.stderr());
                return proxy.paused() && objectCount("gcs/" + RepositoryLayout.DELETION_LEASE) == 1;
            });
            // host B, without --wait-lock: refused at once, naming the holder; with it: waits until A is done
            Cli.Result b = run(c.url, cacheB, "gc", "--grace", "0");
            assertEquals(ExitCodes.USAGE, b.exitCode(), b.toString());
            assertTrue(b.stderr().contains("is locked for deletion: "), b.stderr());
            assertTrue(b.stderr().contains("gc by pid " + a.process.pid()), "names the holder: " + b.stderr());
            try (JBackupProcess w = spawn("gc-b", server.endpoint().toString(), c.url, cacheB, "gc", "--grace", "0",
                "--wait-lock", "120", "--json", "-v")) {
                await("gc B waiting for the lease", 60, () -> {
                    assertTrue(w.process.isAlive(), () -> "gc B did not wait: " + w.stdout() + w.stderr());
                    return w.stderr().contains("is locked for deletion");
                });
                proxy.pause(false);
                assertEquals(0, a.await(120), a.stderr());
                assertEquals(0, w.await(120), w.stderr());
                JsonNode ga = a.json();
                JsonNode gb = w.json();
                System.out.println("S3FaultsTest: two gcs at once: A " + ga + "; B (waited) " + gb
                    + "; B without --wait-lock: " + b.stderr().strip());
                assertTrue(ga.get("bytesReclaimed").asLong() > 0, "A collected the forgotten backup's data: " + ga);
                assertEquals(0, gb.get("bytesReclaimed").asLong(), "nothing left for B: " + gb);
            }
        }
        assertTrue(objectCount("gcs/packs/") < packs, "packs were deleted");
        c.assertAllRestore();
        c.assertAllRestore(cacheB);
        run(c.url, cacheB, "verify").ok();
        c.backup(cacheB);
        c.assertAllRestore();
    }

    @Test
    void cacheDeletedOrCatalogDamagedBetweenRuns() throws Exception {
        Case c = new Case(url("cache"), 8 << 20, 4 << 20, SEED + 5).init();
        c.backup();

        // the cache directory is gone: the next command rebuilds it from the bucket, and says so
        deleteTree(c.cache);
        try (JBackupProcess p = spawn("list-after-delete", server.endpoint().toString(), c.url, c.cache, "list",
            "--json", "-v")) {
            assertEquals(0, p.await(60), p.stderr());
            assertEquals(1, p.json().size(), p.stdout());
            assertTrue(p.stderr().contains("no cached catalog") && p.stderr().contains("building it from the objects"),
                p.stderr());
        }
        c.assertAllRestore();
        c.img.mutate();
        c.backup();

        // the catalog file damaged: bytes overwritten past its header, in the middle
        Path catalog;
        try (Stream<Path> s = Files.walk(c.cache)) {
            catalog = s.filter(f -> f.getFileName().toString().equals(SqliteCatalog.FILE_NAME)).findFirst()
                .orElseThrow();
        }
        try (RandomAccessFile f = new RandomAccessFile(catalog.toFile(), "rw")) {
            byte[] junk = new byte[(int) Math.min(16384, f.length() / 2)];
            new Random(SEED).nextBytes(junk);
            f.seek(f.length() / 3);
            f.write(junk);
        }
        Cli.Result list = run(c.url, c.cache, "list", "--json");
        assertEquals(0, list.exitCode(), list.toString());
        assertEquals(c.shas.size(), list.json().size(), list.stdout());
        assertTrue(list.stderr().contains("rebuilding it from the objects"), list.stderr());
        assertTrue(hasDamagedCopy(catalog), "the damaged catalog is kept aside");
        c.assertAllRestore();
        c.img.mutate();
        c.backup();
        c.assertAllRestore();
    }

    private static boolean hasDamagedCopy(Path catalog) throws IOException {
        try (Stream<Path> s = Files.list(catalog.getParent())) {
            return s.anyMatch(f -> f.getFileName().toString().startsWith(SqliteCatalog.FILE_NAME + ".damaged-"));
        }
    }

    private static void deleteTree(Path root) throws IOException {
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
        assertFalse(Files.exists(root));
    }
}
