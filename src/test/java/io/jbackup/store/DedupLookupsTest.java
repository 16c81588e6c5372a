package io.jbackup.store;

import io.jbackup.catalog.ChunkIndex;
import io.jbackup.model.RepositoryException;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The dedup lookups of the backup hot path are batched: lookups that arrive while one query runs are answered
 * together by the next, with one {@link ChunkIndex#hasChunks} call, each with its own answer.
 */
class DedupLookupsTest {
    /** A chunk index that knows the digests whose first byte is even, and records each batch it is asked. */
    private static final class FakeIndex {
        final List<Integer> batchSizes = Collections.synchronizedList(new ArrayList<>());
        final CountDownLatch firstQueryStarted = new CountDownLatch(1);
        final CountDownLatch releaseFirstQuery = new CountDownLatch(1);
        volatile RepositoryException failure;

        ChunkIndex index() {
            return (ChunkIndex) Proxy.newProxyInstance(ChunkIndex.class.getClassLoader(),
                new Class<?>[] {ChunkIndex.class}, (proxy, method, args) -> {
                    if (!method.getName().equals("hasChunks")) {
                        throw new UnsupportedOperationException(method.getName() + ": the writer asks in batches");
                    }
                    @SuppressWarnings("unchecked")
                    List<byte[]> digests = (List<byte[]>) args[0];
                    boolean first = batchSizes.isEmpty();
                    batchSizes.add(digests.size());
                    if (first) {
                        firstQueryStarted.countDown();
                        assertTrue(releaseFirstQuery.await(30, TimeUnit.SECONDS));
                    }
                    if (failure != null) {
                        throw failure;
                    }
                    BitSet known = new BitSet();
                    for (int i = 0; i < digests.size(); i++) {
                        known.set(i, digests.get(i)[0] % 2 == 0);
                    }
                    return known;
                });
        }
    }

    private static byte[] digest(int n) {
        byte[] d = new byte[32];
        d[0] = (byte) n;
        return d;
    }

    @Test
    void lookupsThatArriveDuringAQueryAreAnsweredByOneQuery() throws Exception {
        FakeIndex fake = new FakeIndex();
        DedupLookups lookups = new DedupLookups(fake.index());
        ExecutorService threads = Executors.newCachedThreadPool();
        try {
            Future<Boolean> first = threads.submit(() -> lookups.known(digest(2)));
            assertTrue(fake.firstQueryStarted.await(30, TimeUnit.SECONDS));
            List<Future<Boolean>> later = new ArrayList<>();
            for (int i = 0; i < 9; i++) {
                int n = 10 + i;
                later.add(threads.submit(() -> lookups.known(digest(n))));
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (lookups.waiting() < 9 && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            assertEquals(9, lookups.waiting(), "the later lookups wait for the running query");
            fake.releaseFirstQuery.countDown();
            assertTrue(first.get(30, TimeUnit.SECONDS));
            for (int i = 0; i < later.size(); i++) {
                assertEquals((10 + i) % 2 == 0, later.get(i).get(30, TimeUnit.SECONDS), "the answer for digest " + i);
            }
            assertEquals(List.of(1, 9), fake.batchSizes, "one query for the first, one for the nine that came during it");
            assertEquals(0, lookups.waiting());
        } finally {
            threads.shutdownNow();
        }
    }

    @Test
    void aFailedQueryFailsEveryLookupOfItsBatchAndNotTheNext() throws Exception {
        FakeIndex fake = new FakeIndex();
        fake.releaseFirstQuery.countDown();
        fake.failure = new RepositoryException("catalog: cannot look up chunks: disk I/O error");
        DedupLookups lookups = new DedupLookups(fake.index());
        RepositoryException e = assertThrows(RepositoryException.class, () -> lookups.known(digest(4)));
        assertSame(fake.failure, e);
        fake.failure = null;
        assertTrue(lookups.known(digest(4)));
        assertFalse(lookups.known(digest(5)));
    }
}
