package io.jbackup.store;

import io.jbackup.catalog.ChunkIndex;
import io.jbackup.model.RepositoryException;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * The catalog lookups of deduplication ("may this backup reuse the chunk with this digest?"), batched across the
 * worker threads of every writer of a repository, like a group commit: a lookup that finds no query running runs
 * one for itself at once; lookups that arrive while a query runs gather, and one of them asks the catalog for all
 * of them with one {@link ChunkIndex#hasChunks} when it ends. An idle repository answers as fast as before, a busy
 * one with a query per batch instead of one per chunk.
 *
 * <p>The answer is the catalog's at the time of the query, as with a query per chunk: chunks condemned by a running
 * gc or quarantined as damaged are not known. Chunks of this process's open packs are found before the catalog is
 * asked ({@link Repository#pendingGet}), and two puts of the same new chunk in one batch are told apart when they
 * claim it ({@link Repository#pendingClaim}).
 */
final class DedupLookups {
    private final ChunkIndex index;
    private final Object lock = new Object();
    private List<Lookup> gathering = new ArrayList<>(); // guarded by lock
    private boolean querying; // guarded by lock

    /** One digest waiting for its answer. */
    private static final class Lookup {
        final byte[] digest;
        boolean done;
        boolean known;
        Throwable failure;

        Lookup(byte[] digest) {
            this.digest = digest;
        }
    }

    DedupLookups(ChunkIndex index) {
        this.index = index;
    }

    /** Whether a backup may deduplicate against the chunk with {@code digest} ({@link ChunkIndex#hasChunk}). */
    boolean known(byte[] digest) throws IOException {
        Lookup me = new Lookup(digest);
        List<Lookup> batch = null;
        synchronized (lock) {
            gathering.add(me);
            while (querying && !me.done) {
                try {
                    lock.wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new InterruptedIOException("interrupted while looking up a chunk in the catalog");
                }
            }
            if (!me.done) {
                querying = true;
                batch = gathering;
                gathering = new ArrayList<>();
            }
        }
        if (batch != null) {
            query(batch);
        }
        if (me.failure instanceof RepositoryException e) {
            throw e;
        }
        if (me.failure instanceof RuntimeException e) {
            throw e;
        }
        if (me.failure instanceof Error e) {
            throw e;
        }
        return me.known;
    }

    /** Asks the catalog for {@code batch} and hands out the answers (or the failure) to everyone in it. */
    private void query(List<Lookup> batch) {
        BitSet known = null;
        Throwable failure = null;
        try {
            List<byte[]> digests = new ArrayList<>(batch.size());
            for (Lookup l : batch) {
                digests.add(l.digest);
            }
            known = index.hasChunks(digests);
        } catch (RepositoryException | RuntimeException | Error e) {
            failure = e;
        } finally {
            synchronized (lock) {
                for (int i = 0; i < batch.size(); i++) {
                    Lookup l = batch.get(i);
                    l.known = known != null && known.get(i);
                    l.failure = failure;
                    l.done = true;
                }
                querying = false;
                lock.notifyAll();
            }
        }
    }

    /** Lookups gathered for the next query (for tests). */
    int waiting() {
        synchronized (lock) {
            return gathering.size();
        }
    }
}
