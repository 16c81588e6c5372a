package io.jbackup.objectstore;

import io.jbackup.testutil.S3Proxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Map;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The contract against a real S3 server (s3proxy), and the S3 particulars: credentials, buckets, 412s. */
class S3ObjectStoreTest extends ObjectStoreContract {
    static final String BUCKET = "contract";
    static final AtomicInteger PREFIXES = new AtomicInteger();

    @TempDir
    static Path serverDir;
    static S3Proxy server;

    @BeforeAll
    static void startServer() {
        server = S3Proxy.start(serverDir);
        server.createBucket(BUCKET);
    }

    @AfterAll
    static void stopServer() {
        if (server != null) {
            server.close();
        }
    }

    /** Each test gets its own prefix in the one bucket: a fresh, empty store. */
    @Override
    ObjectStore open(int pageSize) throws Exception {
        return S3ObjectStore.open(server.settings(BUCKET, "t" + PREFIXES.incrementAndGet() + "/repo")
            .withPageSize(pageSize).withMultipart(6L << 20, S3Settings.MIN_PART_SIZE));
    }

    /** Above the 6 MiB threshold of {@link #open}: three parts of 5, 5 and 2 MiB. */
    @Override
    int largeSize() {
        return 12 << 20;
    }

    /** s3proxy's filesystem backend lists its temporary upload files (see the contract). */
    @Override
    boolean listsCompleteObjectsOnly() {
        return false;
    }

    /** s3proxy checks conditions before it writes, not atomically (see the contract). */
    @Override
    boolean atomicConditionalWrites() {
        return false;
    }

    /** More rounds than locally: the SDK's retry trap showed in about 4% of rounds. */
    @Override
    int raceRounds() {
        return 25;
    }

    @Test
    void aWrongSecretKeyIsTypedAccessDenied() {
        S3Settings wrong = server.settings(BUCKET, "x").withCredentials(S3Proxy.IDENTITY, "not-the-secret");
        StoreAccessDeniedException e = assertThrows(StoreAccessDeniedException.class, () -> S3ObjectStore.open(wrong));
        assertTrue(e.getMessage().contains("secret key"), e.getMessage());
    }

    @Test
    void aMissingBucketIsTypedStoreNotFound() {
        StoreNotFoundException e = assertThrows(StoreNotFoundException.class,
            () -> S3ObjectStore.open(server.settings("no-such-bucket", "x")));
        assertTrue(e.getMessage().contains("s3://no-such-bucket/x"), e.getMessage());
    }

    /**
     * The SDK's own retry of a conditional PUT whose first attempt landed gets 412 for the object it wrote itself:
     * replaying the same request (same nonce) must report the win, and only a foreign nonce a loss.
     */
    @Test
    void a412OnOurOwnEarlierAttemptIsAWin() throws Exception {
        S3ObjectStore s3 = (S3ObjectStore) store;
        ObjectSource lease = ObjectSource.of(bytes("lease of host A"));
        ObjectVersion first = s3.create("lease", lease, "nonce-a").orElseThrow();
        assertEquals(first, s3.create("lease", lease, "nonce-a").orElseThrow(), "the retried create");
        assertTrue(s3.create("lease", ObjectSource.of(bytes("host B")), "nonce-b").isEmpty(), "another writer");

        ObjectVersion second = s3.replace("lease", first, ObjectSource.of(bytes("renewed by A")), "nonce-a2")
            .orElseThrow();
        assertEquals(second, s3.replace("lease", first, ObjectSource.of(bytes("renewed by A")), "nonce-a2")
            .orElseThrow(), "the retried replace");
        assertTrue(s3.replace("lease", first, ObjectSource.of(bytes("host B")), "nonce-b2").isEmpty());
        assertArrayEquals(bytes("renewed by A"), s3.get("lease"));
    }

    /** Every HTTP request is counted by what it is billed as: the figures the store logs when it closes. */
    @Test
    void requestsAreCountedByKind() throws Exception {
        S3Settings settings = server.settings(BUCKET, "t" + PREFIXES.incrementAndGet() + "/count");
        try (S3ObjectStore s3 = S3ObjectStore.open(settings)) {
            S3RequestCounter c = s3.requests();
            assertEquals(1, c.count(S3RequestCounter.Kind.HEAD), "the bucket check of open");
            s3.put("a", bytes("first"));
            s3.put("b", bytes("second"));
            s3.get("a", 0, 3);
            s3.listAll("");
            s3.delete("a");
            // retries are counted too (one was seen on a loaded machine): each kind at least what was asked, and a
            // retry or two at most
            Map<S3RequestCounter.Kind, Integer> asked = Map.of(S3RequestCounter.Kind.PUT, 2,
                S3RequestCounter.Kind.GET, 1, S3RequestCounter.Kind.LIST, 1, S3RequestCounter.Kind.DELETE, 1,
                S3RequestCounter.Kind.HEAD, 1);
            long sum = 0;
            for (Map.Entry<S3RequestCounter.Kind, Integer> e : asked.entrySet()) {
                long n = c.count(e.getKey());
                assertTrue(n >= e.getValue() && n <= e.getValue() + 2, e.getKey() + ": " + n + " " + c.summary());
                sum += n;
            }
            assertEquals(sum, c.total(), c.summary());
            assertTrue(c.summary().matches(c.total() + " \\(PUT [0-9]+, GET [0-9]+, LIST [0-9]+, HEAD [0-9]+, "
                + "DELETE [0-9]+\\), [0-9]+ bytes sent.*"), c.summary());
        }
    }

    /** A GET whose body ends early with no error is read again from where it stopped, not returned short. */
    @Test
    void aRangedReadThatEndsEarlyIsReadAgain() throws Exception {
        S3Settings settings = server.settings(BUCKET, "t" + PREFIXES.incrementAndGet() + "/short");
        byte[] data = random(1 << 20, 6);
        try (ObjectStore direct = S3ObjectStore.open(settings)) {
            direct.put("obj", data);
        }
        ShortReadingS3Client twice = new ShortReadingS3Client(S3ObjectStore.client(settings), 2);
        try (ObjectStore s3 = new S3ObjectStore(twice, settings)) {
            assertArrayEquals(Arrays.copyOfRange(data, 1000, 801_000), s3.get("obj", 1000, 800_000));
            assertEquals(3, twice.gets.get(), "two short reads, then the rest");
        }
        ShortReadingS3Client always = new ShortReadingS3Client(S3ObjectStore.client(settings), 100);
        try (ObjectStore s3 = new S3ObjectStore(always, settings.withReadAttempts(3))) {
            TransientStoreException e = assertThrows(TransientStoreException.class, () -> s3.get("obj", 0, 1000));
            assertTrue(e.getMessage().contains("3 times"), e.getMessage());
            assertEquals(3, always.gets.get());
        }
    }

    /** S3 gives at most 1000 keys a response: a listing of more takes several, even at the largest page size. */
    @Test
    void listingMoreThan1000KeysPages() throws Exception {
        try (ObjectStore big = open(1000)) {
            ExecutorService ex = Executors.newFixedThreadPool(8);
            List<String> expected = new ArrayList<>();
            List<Future<?>> puts = new ArrayList<>();
            try {
                for (int i = 0; i < 1003; i++) {
                    String k = "many/" + String.format("%04d", i);
                    expected.add(k);
                    puts.add(ex.submit(() -> {
                        big.put(k, bytes(k));
                        return null;
                    }));
                }
                for (Future<?> f : puts) {
                    f.get();
                }
            } finally {
                ex.shutdownNow();
            }
            ListPage first = big.list("many/", null);
            assertEquals(1000, first.objects().size());
            assertTrue(first.truncated());
            assertEquals(expected, keys(big.listAll("many/")));
        }
    }
}
