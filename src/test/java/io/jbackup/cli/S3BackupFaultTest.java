package io.jbackup.cli;

import io.jbackup.testutil.Cli;
import io.jbackup.testutil.HttpFaultProxy;
import io.jbackup.testutil.HttpFaultProxy.Kind;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.S3Proxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static io.jbackup.testutil.HttpFaultProxy.internalError;
import static io.jbackup.testutil.HttpFaultProxy.slowDown;
import static io.jbackup.testutil.HttpFaultProxy.stall;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A whole backup into an {@code s3://} repository over a bad network (s3proxy behind {@link HttpFaultProxy}: 500s,
 * SlowDowns and a stalled answer) restores bit-exact; and the S3 transfer options of the command line.
 */
class S3BackupFaultTest {
    static final String BUCKET = "backups";

    @TempDir
    static Path dir;
    static S3Proxy server;
    static HttpFaultProxy proxy;

    @BeforeAll
    static void start() throws Exception {
        server = S3Proxy.start(dir.resolve("s3"));
        server.createBucket(BUCKET);
        proxy = HttpFaultProxy.start(server.endpoint());
        System.setProperty("aws.accessKeyId", S3Proxy.IDENTITY);
        System.setProperty("aws.secretAccessKey", S3Proxy.CREDENTIAL);
    }

    @AfterAll
    static void stop() throws Exception {
        System.clearProperty("aws.accessKeyId");
        System.clearProperty("aws.secretAccessKey");
        if (proxy != null) {
            proxy.close();
        }
        if (server != null) {
            server.close();
        }
    }

    /** {@code COMMAND --repo s3://backups/PREFIX} through the proxy, then {@code more}. */
    static String[] args(String command, String prefix, String... more) {
        List<String> a = new ArrayList<>(List.of(command, "--repo", "s3://" + BUCKET + "/" + prefix,
            "--s3-endpoint", proxy.endpoint().toString(), "--s3-region", "us-east-1",
            "--cache-dir", dir.resolve("cache").toString()));
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    @Test
    void aBackupThroughFaultsRestoresBitExact() throws Exception {
        Path img = QemuImages.qcow2(dir.resolve("disk.qcow2"), "8M");
        QemuImages.io(img, "qcow2", "write -P 0x5a 0 3M", "write -P 0x17 5M 1M");
        String sha = Proc.sha256(QemuImages.toRaw(img, dir.resolve("disk.raw")));
        Cli.run(args("init", "r1", "--chunk-size", "64K", "--pack-size", "1M", "--encryption", "none",
            "--s3-storage-class", "STANDARD"))
            .ok();

        proxy.reset();
        proxy.inject(Kind.PUT, ".*", internalError(), 3).inject(Kind.PUT, ".*", slowDown(), 2)
            .inject(Kind.GET, ".*", internalError(), 2).inject(Kind.LIST, ".*", slowDown(), 1)
            .inject(Kind.PUT, ".*/packs/.*", stall(Duration.ofSeconds(5)), 1);
        String id;
        try (Proc.Background src = QemuImages.qemuNbd(dir, img, "qcow2", "-r")) {
            id = Cli.run(args("full", "r1", "--disk", "vda", "--source", QemuImages.uriOf(src), "--json",
                "--s3-timeout", "2s", "--s3-retries", "6", "--limit-upload", "100M")).ok().json()
                .get("disks").get(0).get("backupId").asText();
        }
        assertEquals(9, proxy.injected(), "every fault was met");

        proxy.inject(Kind.GET, ".*", slowDown(), 2);
        Path out = dir.resolve("restored.raw");
        Cli.run(args("restore", "r1", "--disk", "vda", "--backup", id, "--to", out.toString())).ok();
        assertEquals(sha, Proc.sha256(out));
    }

    @Test
    void archiveStorageClassesAreRefusedWithAWayOut() {
        for (String c : List.of("GLACIER", "deep_archive")) {
            Cli.Result r = Cli.run(args("init", "r2", "--encryption", "none", "--s3-storage-class", c));
            assertEquals(2, r.exitCode(), r.stderr());
            assertTrue(r.stderr().contains("cannot be read back without a restore request"), r.stderr());
            assertTrue(r.stderr().contains("lifecycle rule"), r.stderr());
        }
        Cli.Result r = Cli.run(args("list", "r2", "--s3-storage-class", "NO_SUCH_CLASS"));
        assertEquals(2, r.exitCode(), r.stderr());
        assertTrue(r.stderr().contains("unknown S3 storage class"), r.stderr());
        assertEquals(2, Cli.run(args("list", "r2", "--limit-upload", "fast")).exitCode());
        assertTrue(server.client().listObjectsV2(b -> b.bucket(BUCKET).prefix("r2/")).contents().isEmpty(),
            "nothing was created");
    }

    /**
     * An object store that stops answering in the middle of a restore is not damage: the restore stops with
     * {@code store-unavailable} (exit 5), also with {@code --ignore-errors} (which writes zeros only for damaged
     * chunks, never for an outage), removes the new target file, and a timed-out attempt is described, not "null".
     */
    @Test
    void aStoreOutageDuringARestoreIsNotDamage() throws Exception {
        Path img = QemuImages.qcow2(dir.resolve("outage.qcow2"), "4M");
        QemuImages.io(img, "qcow2", "write -P 0x3c 0 1M", "write -P 0x4d 2M 1M");
        Cli.run(args("init", "r3", "--chunk-size", "64K", "--pack-size", "1M", "--encryption", "none")).ok();
        String id;
        try (Proc.Background src = QemuImages.qemuNbd(dir, img, "qcow2", "-r")) {
            id = Cli.run(args("full", "r3", "--disk", "vda", "--source", QemuImages.uriOf(src), "--json")).ok()
                .json().get("disks").get(0).get("backupId").asText();
        }
        Cli.run(args("list", "r3")).ok(); // the catalog is fresh: the restore below reads only packs
        Path out = dir.resolve("outage.raw");
        try {
            proxy.reset();
            proxy.inject(Kind.GET, ".*/packs/.*", internalError(), 10_000);
            Cli.Result r = Cli.run(args("restore", "r3", "--disk", "vda", "--backup", id, "--to", out.toString(),
                "--ignore-errors", "--json", "--s3-retries", "1"));
            assertEquals(5, r.exitCode(), r.toString());
            assertEquals("store-unavailable", r.json().get("error").get("code").asText(), r.stdout());
            assertTrue(r.stderr().contains("object store failed, not the backup"), r.stderr());
            assertFalse(Files.exists(out), "the new target file is removed");

            proxy.reset();
            proxy.inject(Kind.GET, ".*/packs/.*", stall(Duration.ofSeconds(3)), 10_000);
            r = Cli.run(args("restore", "r3", "--disk", "vda", "--backup", id, "--to", out.toString(), "--json",
                "--s3-retries", "0", "--s3-timeout", "1s"));
            assertEquals(5, r.exitCode(), r.toString());
            assertEquals("store-unavailable", r.json().get("error").get("code").asText(), r.stdout());
            assertFalse(r.stderr().contains("failed: null"), r.stderr());
            assertTrue(r.stderr().contains("--s3-timeout"), r.stderr());
        } finally {
            proxy.reset();
        }
        Cli.run(args("restore", "r3", "--disk", "vda", "--backup", id, "--to", out.toString())).ok();
        assertEquals(Proc.sha256(QemuImages.toRaw(img, dir.resolve("outage-ref.raw"))), Proc.sha256(out));
    }

    /**
     * No credentials anywhere (no keys, no profile, no instance role): {@code access-denied} (exit 5) with the ways
     * to give them, not the SDK's list of every provider it tried under the catch-all {@code object-store}.
     */
    @Test
    void missingCredentialsAreNamedWithTheWaysToGiveThem() throws Exception {
        Assumptions.assumeTrue(System.getenv("AWS_ACCESS_KEY_ID") == null, "AWS_ACCESS_KEY_ID is set here");
        Assumptions.assumeTrue(System.getenv("AWS_WEB_IDENTITY_TOKEN_FILE") == null, "a web identity is set here");
        Path none = dir.resolve("no-such-aws-file");
        Map<String, String> props = Map.of("aws.sharedCredentialsFile", none.toString(), "aws.configFile",
            none.toString(), "aws.disableEc2Metadata", "true");
        props.forEach(System::setProperty);
        System.clearProperty("aws.accessKeyId");
        System.clearProperty("aws.secretAccessKey");
        Cli.Result r;
        try {
            r = Cli.run(args("list", "r4", "--json"));
        } finally {
            props.keySet().forEach(System::clearProperty);
            System.setProperty("aws.accessKeyId", S3Proxy.IDENTITY);
            System.setProperty("aws.secretAccessKey", S3Proxy.CREDENTIAL);
        }
        assertEquals(5, r.exitCode(), r.toString());
        assertEquals("access-denied", r.json().get("error").get("code").asText(), r.stdout());
        assertTrue(r.stderr().contains("no S3 credentials found for s3://" + BUCKET + "/r4"), r.stderr());
        assertTrue(r.stderr().contains("AWS_ACCESS_KEY_ID"), r.stderr());
        assertTrue(r.stderr().length() < 400, "one clear line, not the SDK's provider chain: " + r.stderr());
    }

    /**
     * A wrong bucket, a server that is down, a host that does not resolve and an endpoint that is not S3 each get
     * one line that names the problem and the way out, without the SDK's text (request ids, attempt counts, its own
     * advice) repeated after it.
     */
    @Test
    void endpointAndBucketMistakesAreNamedInOneLine() throws Exception {
        Cli.Result bucket = Cli.run("list", "--repo", "s3://no-such-bucket/r", "--s3-endpoint",
            server.endpoint().toString(), "--s3-region", "us-east-1", "--json");
        assertEquals(5, bucket.exitCode(), bucket.toString());
        assertEquals("store-not-found", bucket.json().get("error").get("code").asText(), bucket.stdout());
        assertEquals("jbackup: error: the bucket of s3://no-such-bucket/r does not exist (HTTP 404 NoSuchBucket): "
            + "create it, or correct the bucket name", bucket.stderr().strip());

        int closed;
        try (java.net.ServerSocket ss = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            closed = ss.getLocalPort();
        }
        Cli.Result down = Cli.run("list", "--repo", "s3://" + BUCKET + "/r", "--s3-endpoint", "http://127.0.0.1:"
            + closed, "--s3-region", "us-east-1", "--s3-retries", "0", "--json");
        assertEquals("store-unavailable", down.json().get("error").get("code").asText(), down.stdout());
        assertTrue(down.stderr().contains("opening s3://" + BUCKET + "/r failed: connection refused: the object store "
            + "at http://127.0.0.1:" + closed + " did not answer"), down.stderr());
        assertFalse(down.stderr().contains("SDK") || down.stderr().contains("Unable to execute"), down.stderr());

        Cli.Result unknown = Cli.run("list", "--repo", "s3://" + BUCKET + "/r", "--s3-endpoint",
            "http://no-such-host.invalid:9000", "--s3-region", "us-east-1", "--s3-retries", "0", "--json");
        assertEquals("store-unavailable", unknown.json().get("error").get("code").asText(), unknown.stdout());
        assertTrue(unknown.stderr().contains("failed: unknown host no-such-host.invalid: "), unknown.stderr());
        assertFalse(unknown.stderr().contains("SDK") || unknown.stderr().contains("DNS cache"), unknown.stderr());

        // a web server on the endpoint: a HEAD of the bucket answers 404, which alone reads as "no such bucket"
        com.sun.net.httpserver.HttpServer web = com.sun.net.httpserver.HttpServer.create(
            new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), 0), 0);
        web.createContext("/", x -> {
            byte[] page = "<html><body>Not Found</body></html>".getBytes(java.nio.charset.StandardCharsets.UTF_8);
            x.sendResponseHeaders(404, "HEAD".equals(x.getRequestMethod()) ? -1 : page.length);
            if (!"HEAD".equals(x.getRequestMethod())) {
                x.getResponseBody().write(page);
            }
            x.close();
        });
        web.start();
        try {
            String url = "http://127.0.0.1:" + web.getAddress().getPort();
            Cli.Result notS3 = Cli.run("list", "--repo", "s3://" + BUCKET + "/r", "--s3-endpoint", url,
                "--s3-region", "us-east-1", "--json");
            assertEquals(5, notS3.exitCode(), notS3.toString());
            assertEquals("object-store", notS3.json().get("error").get("code").asText(), notS3.stdout());
            assertEquals("jbackup: error: the endpoint " + url + " answered HTTP 404 for bucket " + BUCKET + " without "
                + "an S3 error code: it does not look like an S3 service; check the endpoint (--s3-endpoint, "
                + "AWS_ENDPOINT_URL) and the bucket name", notS3.stderr().strip());
        } finally {
            web.stop(0);
        }
    }
}
