package io.jbackup.store;

import io.jbackup.objectstore.ListPage;
import io.jbackup.objectstore.LocalObjectStore;
import io.jbackup.objectstore.ObjectInfo;
import io.jbackup.objectstore.ObjectSource;
import io.jbackup.objectstore.ObjectStore;
import io.jbackup.objectstore.ObjectVersion;
import io.jbackup.objectstore.S3ObjectStore;
import io.jbackup.objectstore.TransientStoreException;
import io.jbackup.objectstore.VersionedObject;
import io.jbackup.testutil.S3Proxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The deletion lease against a local store and against S3 (a real s3proxy). s3proxy checks conditions before it
 * writes rather than atomically, so on S3 the tests acquire one after the other; the tight race runs locally.
 */
class DeletionLeaseTest {
    static final String KEY = "locks/deletion";
    static final Duration HOUR = Duration.ofHours(1);
    static final Duration NO_SKEW = Duration.ZERO;
    static final AtomicInteger PREFIXES = new AtomicInteger();

    enum Kind { LOCAL, S3 }

    @TempDir
    static Path serverDir;
    static S3Proxy server;

    @TempDir
    Path tmp;

    final List<AutoCloseable> toClose = new ArrayList<>();

    @BeforeAll
    static void startServer() {
        server = S3Proxy.start(serverDir);
        server.createBucket("leases");
    }

    @AfterAll
    static void stopServer() {
        if (server != null) {
            server.close();
        }
    }

    @AfterEach
    void closeAll() throws Exception {
        for (int i = toClose.size() - 1; i >= 0; i--) {
            toClose.get(i).close();
        }
    }

    /** A fresh, empty store of that kind. */
    ObjectStore open(Kind kind) throws IOException {
        ObjectStore s = kind == Kind.LOCAL
            ? LocalObjectStore.open(Files.createDirectories(tmp.resolve("store" + PREFIXES.incrementAndGet())))
            : S3ObjectStore.open(server.settings("leases", "t" + PREFIXES.incrementAndGet()));
        toClose.add(s);
        return s;
    }

    DeletionLease acquire(ObjectStore store, String purpose, Duration ttl, Duration wait, Duration skew)
        throws IOException {
        DeletionLease l = DeletionLease.acquire(store, KEY, purpose, ttl, wait, skew);
        toClose.add(l);
        return l;
    }

    static DeletionLease.Lease stored(ObjectStore store) throws IOException {
        return DeletionLease.read(store.get(KEY)).orElseThrow(() -> new AssertionError("unreadable lease"));
    }

    static byte[] foreignLease() {
        Instant now = Instant.now();
        return new DeletionLease.Lease("other-host/4711/1000", "prune", "00112233445566778899aabbccddeeff", now,
            now.plus(HOUR)).toJson();
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void aSecondAcquirerFailsAtOnceNamingTheHolder(Kind kind) throws Exception {
        ObjectStore store = open(kind);
        DeletionLease first = acquire(store, "gc", HOUR, Duration.ZERO, NO_SKEW);
        first.check();
        assertEquals(first.lease(), stored(store));

        long t0 = System.nanoTime();
        RepositoryLockedException e = assertThrows(RepositoryLockedException.class,
            () -> acquire(store, "prune", HOUR, Duration.ZERO, NO_SKEW));
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(3), "did not fail at once");
        String m = e.getMessage();
        for (String part : List.of("gc by pid " + ProcessHandle.current().pid() + " on " + Owner.current().host(),
            "since " + first.lease().acquired(), "expiring at " + first.lease().expires(), KEY, "--wait-lock",
            store.describe())) {
            assertTrue(m.contains(part), "'" + part + "' missing in: " + m);
        }
        assertEquals(first.lease(), stored(store), "the loser changed the lease");
        first.check();
    }

    /** Local conditional writes are atomic: of racing acquirers, exactly one wins in every round. */
    @Test
    void ofRacingAcquirersExactlyOneWins() throws Exception {
        int threads = 8;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            for (int round = 0; round < 10; round++) {
                ObjectStore store = open(Kind.LOCAL);
                CyclicBarrier start = new CyclicBarrier(threads);
                List<Future<DeletionLease>> results = new ArrayList<>();
                for (int i = 0; i < threads; i++) {
                    results.add(pool.submit(() -> {
                        start.await();
                        try {
                            return DeletionLease.acquire(store, KEY, "gc", HOUR, Duration.ZERO, NO_SKEW);
                        } catch (RepositoryLockedException e) {
                            assertTrue(e.getMessage().contains("gc by pid"), e.getMessage());
                            return null;
                        }
                    }));
                }
                List<DeletionLease> winners = new ArrayList<>();
                for (Future<DeletionLease> f : results) {
                    DeletionLease l = f.get(30, TimeUnit.SECONDS);
                    if (l != null) {
                        winners.add(l);
                        toClose.add(l);
                    }
                }
                assertEquals(1, winners.size(), "round " + round + ": winners");
                assertEquals(winners.get(0).lease().nonce(), stored(store).nonce());
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void withAWaitTheSecondGetsItAfterTheFirstCloses(Kind kind) throws Exception {
        ObjectStore store = open(kind);
        DeletionLease first = acquire(store, "gc", HOUR, Duration.ZERO, NO_SKEW);
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            Future<DeletionLease> second = pool.submit(() -> acquire(store, "forget", HOUR, Duration.ofSeconds(30),
                NO_SKEW));
            Thread.sleep(700);
            assertFalse(second.isDone(), "the second did not wait");
            first.close();
            DeletionLease got = second.get(20, TimeUnit.SECONDS);
            got.check();
            assertEquals(got.lease(), stored(store));
            assertEquals("forget", stored(store).purpose());
            got.close();
            assertTrue(store.stat(KEY).isEmpty(), "close left the lease object");
        } finally {
            pool.shutdownNow();
        }
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void anExpiredLeaseOfACrashedHolderIsTakenOverAfterTheSkew(Kind kind) throws Exception {
        ObjectStore store = open(kind);
        DeletionLease crashed = acquire(store, "gc", Duration.ofSeconds(2), Duration.ZERO, NO_SKEW);
        crashed.simulateCrash();
        assertThrows(RepositoryLockedException.class, () -> acquire(store, "gc", HOUR, Duration.ZERO, NO_SKEW),
            "taken over before its expiry");
        sleepUntil(crashed.lease().expires().plusMillis(100));

        RepositoryLockedException e = assertThrows(RepositoryLockedException.class,
            () -> acquire(store, "gc", HOUR, Duration.ZERO, Duration.ofSeconds(30)), "taken over within the skew");
        assertTrue(e.getMessage().contains("lapses 30s after it expires"), e.getMessage());

        DeletionLease next = acquire(store, "prune", HOUR, Duration.ZERO, NO_SKEW);
        next.check();
        assertEquals(next.lease(), stored(store));
        LeaseLostException lost = assertThrows(LeaseLostException.class, crashed::check);
        assertTrue(lost.getMessage().contains("without a successful renewal"), lost.getMessage());
        crashed.close();
        assertEquals(next.lease(), stored(store), "the crashed holder's close deleted the new lease");
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void renewalKeepsALeaseAlivePastItsTtl(Kind kind) throws Exception {
        ObjectStore store = open(kind);
        DeletionLease lease = acquire(store, "gc", Duration.ofMillis(900), Duration.ZERO, NO_SKEW);
        Instant firstExpiry = lease.lease().expires();
        Thread.sleep(3000);
        lease.check();
        assertTrue(stored(store).expires().isAfter(firstExpiry.plusSeconds(1)), "not renewed: " + stored(store));
        assertEquals(lease.lease().nonce(), stored(store).nonce());
        assertThrows(RepositoryLockedException.class, () -> acquire(store, "gc", HOUR, Duration.ZERO, NO_SKEW));
        lease.close();
        assertTrue(store.stat(KEY).isEmpty(), "close left the lease object");
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void aLeaseReplacedBehindOurBackMakesCheckThrow(Kind kind) throws Exception {
        ObjectStore store = open(kind);
        DeletionLease lease = acquire(store, "gc", Duration.ofMillis(1500), Duration.ZERO, NO_SKEW);
        byte[] foreign = foreignLease();
        store.put(KEY, foreign);
        LeaseLostException e = awaitLost(lease, Duration.ofSeconds(5));
        assertTrue(e.getMessage().contains("taken over by prune by pid 4711 on other-host"), e.getMessage());
        lease.close();
        assertArrayEquals(foreign, store.get(KEY), "close touched the other holder's lease");
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void aLeaseDeletedBehindOurBackMakesCheckThrow(Kind kind) throws Exception {
        ObjectStore store = open(kind);
        DeletionLease lease = acquire(store, "gc", Duration.ofMillis(1500), Duration.ZERO, NO_SKEW);
        store.delete(KEY);
        LeaseLostException e = awaitLost(lease, Duration.ofSeconds(5));
        assertTrue(e.getMessage().contains("was deleted by another process"), e.getMessage());
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void closeDeletesOnlyItsOwnLease(Kind kind) throws Exception {
        ObjectStore store = open(kind);
        DeletionLease lease = acquire(store, "gc", HOUR, Duration.ZERO, NO_SKEW);
        byte[] foreign = foreignLease();
        store.put(KEY, foreign); // no renewal runs within the hour: only close can notice
        lease.close();
        assertArrayEquals(foreign, store.get(KEY));

        store.delete(KEY);
        DeletionLease own = acquire(store, "gc", HOUR, Duration.ZERO, NO_SKEW);
        own.close();
        assertTrue(store.stat(KEY).isEmpty(), "close left its own lease object");
        assertThrows(LeaseLostException.class, own::check, "check after close");
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void aGarbageLeaseObjectBlocksForATtlAfterItsWriteThenIsTakenOver(Kind kind) throws Exception {
        ObjectStore store = open(kind);
        store.put(KEY, "{ not json".getBytes(StandardCharsets.UTF_8));
        RepositoryLockedException e = assertThrows(RepositoryLockedException.class,
            () -> acquire(store, "gc", HOUR, Duration.ZERO, NO_SKEW));
        assertTrue(e.getMessage().contains("an unreadable lease object (not JSON) written at"), e.getMessage());
        // no process wrote it: the way out is its expiry or deleting it, not "if that process died"
        assertFalse(e.getMessage().contains("process died"), e.getMessage());
        assertTrue(e.getMessage().contains("delete the lease object by hand"), e.getMessage());

        store.put(KEY, "{\"version\":2}".getBytes(StandardCharsets.UTF_8));
        e = assertThrows(RepositoryLockedException.class, () -> acquire(store, "gc", HOUR, Duration.ZERO, NO_SKEW));
        assertTrue(e.getMessage().contains("format version 2, not 1"), e.getMessage());

        // S3 modification times have whole seconds: a ttl of 1 s frees it within 2 s
        long t0 = System.nanoTime();
        DeletionLease lease = acquire(store, "gc", Duration.ofSeconds(1), Duration.ofSeconds(20), NO_SKEW);
        lease.check();
        assertEquals(lease.lease(), stored(store));
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(10), "waited too long");
    }

    /** The answer to a conditional write that landed is lost (S3 clients retry, and the retry gets 412). */
    @ParameterizedTest
    @EnumSource(Kind.class)
    void aWriteOfOursWhoseAnswerWasLostIsStillOurs(Kind kind) throws Exception {
        FaultyStore store = new FaultyStore(open(kind));
        store.lostCreateAnswers.set(1);
        store.lostReplaceAnswers.set(Integer.MAX_VALUE);
        DeletionLease lease = acquire(store, "gc", Duration.ofMillis(900), Duration.ZERO, NO_SKEW);
        assertEquals(0, store.lostCreateAnswers.get(), "the create's answer was not lost");
        Thread.sleep(2500);
        lease.check();
        assertTrue(stored(store).expires().isAfter(Instant.now()), "not renewed: " + stored(store));
        lease.close();
        assertTrue(store.stat(KEY).isEmpty(), "close left the lease object");
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void aLeaseThatCannotBeRenewedForATtlMakesCheckThrow(Kind kind) throws Exception {
        FaultyStore store = new FaultyStore(open(kind));
        DeletionLease lease = acquire(store, "gc", Duration.ofMillis(900), Duration.ZERO, NO_SKEW);
        store.unreachable = true;
        LeaseLostException e = awaitLost(lease, Duration.ofSeconds(5));
        assertTrue(e.getMessage().contains("without a successful renewal (last error: "), e.getMessage());
        assertTrue(e.getMessage().contains("store unreachable"), e.getMessage());
    }

    static LeaseLostException awaitLost(DeletionLease lease, Duration within) throws InterruptedException {
        long deadline = System.nanoTime() + within.toNanos();
        while (System.nanoTime() < deadline) {
            try {
                lease.check();
            } catch (LeaseLostException e) {
                return e;
            }
            Thread.sleep(20);
        }
        return fail("check() still passes after " + within);
    }

    static void sleepUntil(Instant t) throws InterruptedException {
        long ms = Duration.between(Instant.now(), t).toMillis();
        if (ms > 0) {
            Thread.sleep(ms);
        }
    }

    /**
     * A real store with injected faults: answers of conditional writes that landed are reported lost, or every
     * replace fails as if the store were unreachable.
     */
    static final class FaultyStore implements ObjectStore {
        final ObjectStore real;
        final AtomicInteger lostCreateAnswers = new AtomicInteger();
        final AtomicInteger lostReplaceAnswers = new AtomicInteger();
        volatile boolean unreachable;

        FaultyStore(ObjectStore real) {
            this.real = real;
        }

        @Override
        public Optional<ObjectVersion> create(String key, ObjectSource data) throws IOException {
            Optional<ObjectVersion> v = real.create(key, data);
            return v.isPresent() && lostCreateAnswers.getAndDecrement() > 0 ? Optional.empty() : v;
        }

        @Override
        public Optional<ObjectVersion> replace(String key, ObjectVersion expected, ObjectSource data)
            throws IOException {
            if (unreachable) {
                throw new TransientStoreException("store unreachable", null);
            }
            Optional<ObjectVersion> v = real.replace(key, expected, data);
            return v.isPresent() && lostReplaceAnswers.getAndDecrement() > 0 ? Optional.empty() : v;
        }

        @Override
        public void put(String key, ObjectSource data) throws IOException {
            real.put(key, data);
        }

        @Override
        public Optional<VersionedObject> getVersioned(String key) throws IOException {
            return real.getVersioned(key);
        }

        @Override
        public byte[] get(String key, long offset, int length) throws IOException {
            return real.get(key, offset, length);
        }

        @Override
        public Optional<ObjectInfo> stat(String key) throws IOException {
            return real.stat(key);
        }

        @Override
        public ListPage list(String prefix, String startAfter) throws IOException {
            return real.list(prefix, startAfter);
        }

        @Override
        public void delete(String key) throws IOException {
            real.delete(key);
        }

        @Override
        public int pageSize() {
            return real.pageSize();
        }

        @Override
        public String describe() {
            return real.describe();
        }

        @Override
        public void close() throws IOException {
            real.close();
        }
    }
}
