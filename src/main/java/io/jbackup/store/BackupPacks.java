package io.jbackup.store;

import io.jbackup.model.RepositoryException;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.function.Consumer;

/**
 * The packs of one {@link PackedBackupWriter}: the open pack its workers append new chunks to, the packs it filled
 * that are not yet sealed, and the packs of other writers that hold chunks this backup reuses (pending claims in
 * {@link RepositoryContext}). Full packs are sealed in the background while the backup goes on; commit and abort seal
 * the rest. Thread-safe: appends are serialized on the pack lock, which the packs share.
 */
final class BackupPacks {
    static final int REMOTE_UPLOADS = 4;

    /**
     * Where {@link #append} put a chunk: {@code reused} when another writer's pack had claimed it first (that pack is
     * now a dependency and nothing was appended); {@code full} is the pack the append filled, to be sealed, or null.
     */
    record Placement(boolean reused, PackWriter full) {
    }

    private final RepositoryContext repo;
    private final String backupId;
    private final long packSize;
    private final Consumer<Throwable> onFailure;
    private final Object packLock = new Object();
    private final List<PackWriter> ownPacks = new ArrayList<>(); // guarded by packLock: not yet sealed
    private PackWriter current; // guarded by packLock
    private final Set<PackWriter> dependencies = ConcurrentHashMap.newKeySet();
    /**
     * Seals full packs while the backup goes on: one thread for a local repository (an fsync and a rename), several
     * for an object store, where sealing is an upload ({@value #REMOTE_UPLOADS} in flight; the packs wait on disk
     * under {@code tmp/}, so memory does not grow with the queue).
     */
    private final java.util.concurrent.ExecutorService sealer;
    /** Full packs sealing or waiting to: at most twice the uploads in flight (unbounded for a local repository). */
    private final Semaphore sealQueue;

    /** {@code onFailure} receives what a background seal throws (it fails the backup). */
    BackupPacks(RepositoryContext repo, String backupId, Consumer<Throwable> onFailure) {
        this.repo = repo;
        this.backupId = backupId;
        this.packSize = repo.config().packSize();
        this.onFailure = onFailure;
        java.util.concurrent.atomic.AtomicInteger n = new java.util.concurrent.atomic.AtomicInteger();
        this.sealQueue = new Semaphore(repo.storage().remote() ? 2 * REMOTE_UPLOADS : Integer.MAX_VALUE);
        this.sealer = java.util.concurrent.Executors.newFixedThreadPool(repo.storage().remote() ? REMOTE_UPLOADS : 1,
            r -> {
                Thread t = new Thread(r, "pack-sealer-" + n.incrementAndGet());
                t.setDaemon(true);
                return t;
            });
    }

    /** Whether a pack still being written (by any writer of this process) holds {@code cid}; it becomes a dependency. */
    boolean reusePending(ChunkId cid) {
        PackWriter holder = repo.pendingGet(cid);
        if (holder != null) {
            dependencies.add(holder);
            return true;
        }
        return false;
    }

    /**
     * Claims {@code cid} and appends its encoded record ({@code record[0, recLen)}, {@code len} bytes of data) to the
     * open pack, opening one if needed, unless another pack claimed the chunk first. The caller seals
     * {@link Placement#full()} with {@link #sealInBackground}.
     */
    Placement append(ChunkId cid, byte[] id, byte[] record, byte[] body, int recLen, int len) throws IOException {
        PackWriter holder;
        PackWriter full = null;
        synchronized (packLock) {
            if (current == null || current.closed()) {
                current = new PackWriter(repo, repo.tmpDir(), packLock);
                ownPacks.add(current);
            }
            holder = repo.pendingClaim(cid, current);
            if (holder == null) {
                current.append(id, record, body, recLen, len);
                if (current.size() >= packSize) {
                    full = current;
                    current = null;
                }
            }
        }
        if (holder != null) {
            dependencies.add(holder);
        }
        return new Placement(holder != null, full);
    }

    /**
     * Seals a full pack on this writer's sealer thread, so the worker that filled it goes on hashing and compressing
     * while the pack is fsynced and registered. The pack stays in {@code ownPacks} until sealed; commit and abort
     * seal every own pack again, which waits for a seal in progress ({@link PackWriter#seal()} is idempotent).
     */
    void sealInBackground(PackWriter full) throws IOException {
        try {
            sealQueue.acquire(); // backpressure: a slow upload holds the backup, not the host's disk
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for pack uploads of backup " + backupId);
        }
        Runnable task = () -> {
            try {
                full.seal();
                synchronized (packLock) {
                    ownPacks.remove(full);
                }
            } catch (Throwable t) {
                onFailure.accept(t);
            } finally {
                sealQueue.release();
            }
        };
        try {
            sealer.execute(task);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            task.run(); // commit or abort already began: seal here
        }
    }

    /** Seals this writer's open packs (their chunks stay reusable whatever happens to the backup). */
    void sealOwn() throws IOException {
        List<PackWriter> packs;
        synchronized (packLock) {
            packs = new ArrayList<>(ownPacks);
            current = null;
        }
        IOException first = null;
        for (PackWriter p : packs) {
            try {
                p.seal();
                synchronized (packLock) {
                    ownPacks.remove(p);
                }
            } catch (IOException e) {
                if (first == null) {
                    first = e;
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    /** Waits until the other writers' packs holding chunks this backup reuses are sealed. */
    void sealDependencies() throws IOException {
        for (PackWriter p : dependencies) {
            try {
                p.seal();
            } catch (IOException e) {
                throw new RepositoryException("backup " + backupId + " reuses chunks that another backup was writing "
                    + "to pack " + p.name + ", which failed: " + e.getMessage(), e);
            }
        }
    }

    /** Stops the sealer thread(s) once the backup is committed or aborted; a later full pack is sealed in place. */
    void shutdown() {
        sealer.shutdown();
    }
}
