package io.jbackup.objectstore;

import io.jbackup.testutil.HttpFaultProxy;
import io.jbackup.testutil.HttpFaultProxy.Kind;
import io.jbackup.testutil.S3Proxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import software.amazon.awssdk.core.exception.ApiCallAttemptTimeoutException;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;

import static io.jbackup.testutil.HttpFaultProxy.cutRequest;
import static io.jbackup.testutil.HttpFaultProxy.cutResponse;
import static io.jbackup.testutil.HttpFaultProxy.internalError;
import static io.jbackup.testutil.HttpFaultProxy.slowDown;
import static io.jbackup.testutil.HttpFaultProxy.stall;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link S3ObjectStore} on a bad network: a real s3proxy behind {@link HttpFaultProxy}. Every fault that passes ends
 * with the operation done and the object bit-exact; a fault that stays fails with {@link TransientStoreException} and
 * leaves no object and no multipart upload behind.
 */
class S3FaultTest {
    static final String BUCKET = "faults";
    static final AtomicInteger PREFIXES = new AtomicInteger();
    /** Few attempts and short waits, so that the persistent faults fail fast. */
    static final S3Transfer FAST = S3Transfer.defaults().withAttempts(4).withMaxBackoff(Duration.ofMillis(200))
        .withAttemptTimeout(Duration.ofSeconds(2));

    @TempDir
    static Path serverDir;
    static S3Proxy server;
    static HttpFaultProxy proxy;

    String prefix;
    S3ObjectStore store;

    @BeforeAll
    static void start() throws Exception {
        server = S3Proxy.start(serverDir);
        server.createBucket(BUCKET);
        proxy = HttpFaultProxy.start(server.endpoint());
    }

    @AfterAll
    static void stop() throws Exception {
        if (proxy != null) {
            proxy.close();
        }
        if (server != null) {
            server.close();
        }
    }

    @BeforeEach
    void open() throws Exception {
        proxy.reset();
        prefix = "t" + PREFIXES.incrementAndGet();
        store = S3ObjectStore.open(server.settings(BUCKET, prefix).withEndpoint(proxy.endpoint())
            .withMultipart(6L << 20, S3Settings.MIN_PART_SIZE).withTransfer(FAST));
    }

    static byte[] random(int size, long seed) {
        byte[] b = new byte[size];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void internalErrorsAndSlowDownsAreRetried() throws Exception {
        byte[] data = random(1 << 20, 1);
        proxy.inject(Kind.PUT, ".*/obj", internalError(), 2).inject(Kind.PUT, ".*/obj", slowDown(), 1)
            .inject(Kind.GET, ".*/obj", slowDown(), 2).inject(Kind.GET, ".*/obj", internalError(), 1);
        store.put("obj", data);
        assertEquals(4, proxy.count(Kind.PUT), "three faults, then the PUT");
        assertArrayEquals(data, store.get("obj"));
        assertArrayEquals(Arrays.copyOfRange(data, 100, 200_100), store.get("obj", 100, 200_000));
        assertEquals(6, proxy.injected());
    }

    @Test
    void aSinglePutCutHalfwayIsSentAgain() throws Exception {
        byte[] data = random(2 << 20, 2);
        proxy.inject(Kind.PUT, ".*/obj", cutRequest(500_000), 2);
        store.put("obj", data);
        assertEquals(2, proxy.injected());
        assertEquals(3, proxy.count(Kind.PUT));
        assertArrayEquals(data, store.get("obj"));
    }

    @Test
    void aMultipartPartCutHalfwayIsSentAgainAndALostCompletionIsASuccess() throws Exception {
        byte[] data = random(12 << 20, 3);
        proxy.inject(Kind.PUT, ".*/big\\?partNumber=2&.*", cutRequest(1 << 20), 1)
            .inject(Kind.PUT, ".*/big\\?partNumber=3&.*", internalError(), 1)
            .inject(Kind.POST, ".*/big\\?uploadId=.*", cutResponse(30), 1);
        Optional<ObjectVersion> v = store.create("big", ObjectSource.of(data));
        assertTrue(v.isPresent(), "the create won, though its completion's answer was lost");
        assertEquals(3, proxy.injected());
        assertTrue(proxy.count(Kind.PUT) >= 5, "3 parts and 2 sent again: " + proxy.count(Kind.PUT));
        assertEquals(3, proxy.count(Kind.POST), "the upload's creation, the completion and its second try");
        assertArrayEquals(data, store.get("big"));
        assertNoUploads();
    }

    /** A completion whose 200 came with no body at all (no ETag) is settled by the object's size and nonce. */
    @Test
    void aCompletionAnsweredWithAnEmptyBodyIsASuccess() throws Exception {
        byte[] data = random(7 << 20, 9);
        proxy.inject(Kind.POST, ".*/big\\?uploadId=.*", cutResponse(0), 1);
        assertTrue(store.create("big", ObjectSource.of(data)).isPresent());
        assertEquals(1, proxy.injected());
        assertArrayEquals(data, store.get("big"));
        assertTrue(store.create("big", ObjectSource.of(data)).isEmpty(), "a second create loses");
    }

    @Test
    void aGetBodyCutHalfwayIsReadAgain() throws Exception {
        byte[] data = random(3 << 20, 4);
        store.put("obj", data);
        proxy.inject(Kind.GET, ".*/obj", cutResponse(700_000), 3);
        assertArrayEquals(Arrays.copyOfRange(data, 10, 2_000_010), store.get("obj", 10, 2_000_000));
        assertArrayEquals(data, store.get("obj"));
        assertEquals(3, proxy.injected());
    }

    /** A server that ignores a byte range and sends the whole object: an error, never the wrong bytes. */
    @Test
    void aRangeTheServerIgnoresIsAnErrorNotTheWrongBytes() throws Exception {
        byte[] data = random(300_000, 6);
        store.put("ranged", data);
        proxy.inject(Kind.GET, ".*/ranged", HttpFaultProxy.dropRange(), 1);
        ObjectStoreException e = assertThrows(ObjectStoreException.class, () -> store.get("ranged", 1000, 5000));
        assertTrue(e.getMessage().contains("ignored the byte range") && e.getMessage().contains("ranged"),
            e.getMessage());
        // from the start, the first bytes of the whole object are the ones asked for
        proxy.inject(Kind.GET, ".*/ranged", HttpFaultProxy.dropRange(), 1);
        assertArrayEquals(Arrays.copyOfRange(data, 0, 5000), store.get("ranged", 0, 5000));
        assertEquals(2, proxy.injected());
    }

    @Test
    void aStalledResponseIsAbandonedAndRetried() throws Exception {
        byte[] data = random(100_000, 5);
        proxy.inject(Kind.PUT, ".*/obj", stall(Duration.ofSeconds(6)), 1)
            .inject(Kind.GET, ".*/obj", stall(Duration.ofSeconds(6)), 1);
        store.put("obj", data);
        assertArrayEquals(data, store.get("obj", 0, data.length));
        assertEquals(2, proxy.injected());
        assertEquals(2, proxy.count(Kind.GET));
    }

    @Test
    void aListingCutHalfwayIsRetried() throws Exception {
        List<String> keys = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            keys.add("many/" + i);
            store.put("many/" + i, new byte[] {(byte) i});
        }
        keys.sort(null);
        proxy.inject(Kind.LIST, ".*", cutResponse(1500), 2);
        assertEquals(keys, store.listAll("many/").stream().map(ObjectInfo::key).toList());
        assertEquals(2, proxy.injected());
    }

    @Test
    void aPersistentFaultFailsTypedAndLeavesNothing() throws Exception {
        String probe = server.client().createMultipartUpload(b -> b.bucket(BUCKET).key(prefix + "/probe")).uploadId();
        assertThrows(AssertionError.class, this::assertNoUploads, "the check sees an upload left behind");
        server.client().abortMultipartUpload(b -> b.bucket(BUCKET).key(prefix + "/probe").uploadId(probe));

        proxy.inject(Kind.PUT, ".*/obj", internalError(), 100);
        assertThrows(TransientStoreException.class, () -> store.put("obj", random(1000, 6)));
        assertEquals(4, proxy.count(Kind.PUT), "as many attempts as configured");

        proxy.inject(Kind.PUT, ".*/big\\?partNumber=2&.*", cutRequest(100_000), 100);
        Path file = serverDir.resolve("big.bin");
        Files.write(file, random(11 << 20, 7));
        assertThrows(TransientStoreException.class, () -> store.put("big", file));

        proxy.inject(Kind.GET, ".*/obj2", slowDown(), 100);
        store.put("obj2", random(1000, 8));
        assertThrows(TransientStoreException.class, () -> store.get("obj2"));

        proxy.reset();
        proxy.inject(Kind.GET, ".*/obj2", stall(Duration.ofSeconds(3)), 100);
        try (S3ObjectStore impatient = S3ObjectStore.open(server.settings(BUCKET, prefix)
                .withEndpoint(proxy.endpoint()).withTransfer(FAST.withAttempts(2)
                .withAttemptTimeout(Duration.ofMillis(700))))) {
            TransientStoreException e = assertThrows(TransientStoreException.class,
                () -> impatient.get("obj2", 0, 10), "stalled for good");
            assertInstanceOf(ApiCallAttemptTimeoutException.class, e.getCause());
            assertEquals(2, proxy.injected());
        }

        proxy.reset();
        assertTrue(store.stat("obj").isEmpty());
        assertTrue(store.stat("big").isEmpty());
        assertNoUploads();
    }

    /** No multipart upload was left behind under the test's prefix. */
    void assertNoUploads() {
        assertEquals(List.of(), server.client().listMultipartUploads(b -> b.bucket(BUCKET).prefix(prefix + "/"))
            .uploads());
    }

    @Test
    void theUploadLimiterPacesBytesAtItsRate() throws Exception {
        long[] now = {0};
        List<Long> waits = new ArrayList<>();
        UploadLimiter limiter = new UploadLimiter(1 << 20, () -> now[0], n -> {
            waits.add(n);
            now[0] += n;
        });
        assertEquals(0, limiter.acquire(256 << 10), "a quarter second of burst");
        assertEquals(1_000_000_000L, limiter.acquire(1 << 20), "a MiB at 1 MiB/s waits a second");
        now[0] += 500_000_000L;
        assertEquals(0, limiter.acquire(128 << 10), "half a second earned 512 KiB, capped at 256 KiB");
        assertEquals(125_000_000L, limiter.acquire(256 << 10));
        byte[] sink = new byte[4 << 20];
        try (var in = limiter.wrap(new java.io.ByteArrayInputStream(sink))) {
            in.readAllBytes();
        }
        long total = waits.stream().mapToLong(Long::longValue).sum();
        assertEquals(5_125_000_000L, total, 1_000_000, "4 MiB more at 1 MiB/s: 4 seconds more");
    }
}
