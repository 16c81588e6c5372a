package io.jbackup.store;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;
import io.jbackup.model.RepositoryException;
import io.jbackup.model.RepositoryFullException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;

/**
 * The {@link BackupWriter} of a {@link Repository}. Each put runs on the worker pool: zero check, chunk id, index
 * entry, dedup lookup (open packs of this process, then the catalog, batched with the lookups of the other workers:
 * {@link DedupLookups}), then compression/encryption and an append to
 * this writer's open pack ({@link BackupPacks}, which also seals full packs in the background). At most {@code 2 × workers + 2} puts are in flight per writer; {@link #putChunk} blocks
 * beyond that. Memory per writer: those in-flight chunks (the caller's arrays), one open pack's entry list, and the
 * index draft on disk (never the digest array in memory).
 */
final class PackedBackupWriter implements BackupWriter {
    private static final Logger LOG = LoggerFactory.getLogger(PackedBackupWriter.class);

    private enum State { OPEN, COMMITTING, DONE }

    private final RepositoryContext repo;
    private final BackupInfo begun;
    private final String uuid;
    private final IndexDraft draft;
    private final long chunkCount;
    private final int chunkSize;
    private final int maxInFlight;
    private final Semaphore permits;
    private final BackupPacks packs;
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private final AtomicReference<State> state = new AtomicReference<>(State.OPEN);
    private final List<Attachments.Entry> attachments = new ArrayList<>(); // guarded by itself
    private boolean drained;
    private final LongAdder chunksNew = new LongAdder();
    private final LongAdder chunksDedup = new LongAdder();
    private final LongAdder chunksZero = new LongAdder();
    private final LongAdder bytesNew = new LongAdder();
    private final LongAdder bytesDedup = new LongAdder();
    private final LongAdder bytesZero = new LongAdder();
    private final LongAdder bytesStored = new LongAdder();

    PackedBackupWriter(RepositoryContext repo, BackupInfo begun, String uuid, IndexReader parent) throws IOException {
        this.repo = repo;
        this.begun = begun;
        this.uuid = uuid;
        this.chunkCount = begun.chunkCount();
        this.chunkSize = begun.chunkSize();
        this.maxInFlight = 2 * repo.workerThreads() + 2;
        this.permits = new Semaphore(maxInFlight);
        this.packs = new BackupPacks(repo, begun.id(), this::fail);
        Path tmp = repo.tmpDir().resolve(begun.id() + IndexFile.SUFFIX);
        this.draft = new IndexDraft(tmp, chunkCount, chunkSize);
        if (parent != null) {
            try {
                draft.copyFrom(parent);
            } catch (IOException | RuntimeException e) {
                draft.delete();
                throw e;
            }
        }
    }

    @Override
    public String id() {
        return begun.id();
    }

    @Override
    public long chunkCount() {
        return chunkCount;
    }

    private int lengthOf(long index) {
        if (index < 0 || index >= chunkCount) {
            throw new IndexOutOfBoundsException("chunk index " + index + " out of range for backup " + id() + " (0.."
                + (chunkCount - 1) + ")");
        }
        return (int) Math.min(chunkSize, begun.imageSize() - index * chunkSize);
    }

    private void checkOpen() {
        if (state.get() != State.OPEN) {
            throw new IllegalStateException("backup " + id() + " is already committed or aborted");
        }
    }

    @Override
    public CompletableFuture<Void> putChunk(long index, byte[] data, int length) {
        return putChunk(index, data, length, null);
    }

    @Override
    public ChunkHasher newHasher() {
        return repo.codec().newHasher();
    }

    @Override
    public CompletableFuture<Void> putChunk(long index, byte[] data, int length, byte[] id) {
        if (id != null && id.length != ChunkId.LENGTH) {
            throw new IllegalArgumentException("chunk id of " + id.length + " bytes (expected " + ChunkId.LENGTH + ")");
        }
        int expected = lengthOf(index);
        if (length != expected || data == null || data.length < length) {
            throw new IllegalArgumentException("chunk " + index + " of backup " + id() + " must be " + expected
                + " bytes (got length " + length + (data == null ? ", no data" : ", array of " + data.length) + ")");
        }
        checkOpen();
        try {
            permits.acquire();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return CompletableFuture.failedFuture(new InterruptedIOException("interrupted while queueing chunk " + index));
        }
        if (state.get() != State.OPEN) {
            // commit or abort began while we waited: it no longer waits for this put
            permits.release();
            checkOpen();
        }
        CompletableFuture<Void> f = new CompletableFuture<>();
        try {
            repo.pool().execute(() -> {
                try {
                    store(index, data, length, id);
                    f.complete(null);
                } catch (Throwable t) {
                    Throwable x = RepositoryFullException.translate(repo.dir(), t);
                    fail(x);
                    f.completeExceptionally(x);
                } finally {
                    permits.release();
                }
            });
        } catch (RejectedExecutionException e) {
            permits.release();
            RepositoryException re = new RepositoryException("repository " + repo.dir() + " is closed", e);
            fail(re);
            f.completeExceptionally(re);
        }
        return f;
    }

    private void store(long index, byte[] data, int len, byte[] knownId) throws IOException {
        if (ChunkId.isAllZero(data, len)) {
            draft.put(index, ChunkId.ZERO);
            chunksZero.increment();
            bytesZero.add(len);
            return;
        }
        storeChunk(index, data, len, knownId);
    }

    /**
     * Stores one non-zero chunk unless the repository has it, and returns its digest. With {@code index} >= 0 the
     * digest goes into the index at that position and the counters count the chunk; with -1 (an attachment's piece)
     * neither.
     */
    private byte[] storeChunk(long index, byte[] data, int len, byte[] knownId) throws IOException {
        boolean count = index >= 0;
        ChunkCodec codec = repo.codec();
        ChunkCodec.Scratch s = codec.borrow();
        try {
            byte[] id = knownId != null ? knownId : codec.chunkId(s, data, len);
            if (count) {
                draft.put(index, id);
            }
            ChunkId cid = new ChunkId(id);
            if (packs.reusePending(cid)) {
                if (count) {
                    dedup(len);
                }
                return id;
            }
            if (repo.dedupLookups().known(id)) {
                if (count) {
                    dedup(len);
                }
                return id;
            }
            int recLen = codec.encodeParts(s, id, data, len);
            BackupPacks.Placement placed = packs.append(cid, id, s.record(), s.body(), recLen, len);
            if (placed.reused()) {
                if (count) {
                    dedup(len);
                }
            } else if (count) {
                chunksNew.increment();
                bytesNew.add(len);
                bytesStored.add(recLen);
            }
            if (placed.full() != null) {
                packs.sealInBackground(placed.full());
            }
            return id;
        } finally {
            codec.release(s);
        }
    }

    private void dedup(int len) {
        chunksDedup.increment();
        bytesDedup.add(len);
    }

    private void fail(Throwable t) {
        if (failure.compareAndSet(null, t)) {
            LOG.debug("backup {}: put failed", id(), t);
        }
    }

    @Override
    public void putZero(long index) {
        int len = lengthOf(index);
        checkOpen();
        permits.acquireUninterruptibly();
        try {
            checkOpen(); // holding a permit: commit cannot have finished the index meanwhile
            draft.put(index, ChunkId.ZERO);
        } catch (IOException e) {
            fail(e);
            throw new UncheckedIOException("cannot write index entry " + index + " of backup " + id(), e);
        } finally {
            permits.release();
        }
        chunksZero.increment();
        bytesZero.add(len);
    }

    @Override
    public void putZeros(long first, long count) {
        if (count <= 0) {
            if (count < 0) {
                throw new IllegalArgumentException("negative run of " + count + " zero chunks");
            }
            return;
        }
        lengthOf(first);
        lengthOf(first + count - 1);
        checkOpen();
        permits.acquireUninterruptibly();
        try {
            checkOpen(); // holding a permit: commit cannot have finished the index meanwhile
            draft.putZeros(first, count);
        } catch (IOException e) {
            fail(e);
            throw new UncheckedIOException("cannot write index entries " + first + ".." + (first + count - 1)
                + " of backup " + id(), e);
        } finally {
            permits.release();
        }
        chunksZero.add(count);
        bytesZero.add(Math.min((first + count) * chunkSize, begun.imageSize()) - first * chunkSize);
    }

    @Override
    public void attach(String name, byte[] content) throws IOException {
        checkOpen();
        permits.acquireUninterruptibly(); // before the monitor: commit takes the monitor holding every permit
        try {
            synchronized (attachments) {
                checkOpen(); // holding a permit: commit cannot have finished the index meanwhile
                Attachments.validate(id(), name, content, attachments.stream().map(Attachments.Entry::name).toList());
                List<byte[]> chunks = new ArrayList<>();
                try {
                    for (int off = 0; off < content.length; off += chunkSize) {
                        int len = Math.min(chunkSize, content.length - off);
                        byte[] piece = java.util.Arrays.copyOfRange(content, off, off + len);
                        chunks.add(ChunkId.isAllZero(piece, len) ? ChunkId.ZERO : storeChunk(-1, piece, len, null));
                    }
                } catch (IOException | RuntimeException e) {
                    Throwable x = RepositoryFullException.translate(repo.dir(), e);
                    fail(x);
                    if (x instanceof IOException io) {
                        throw io;
                    }
                    if (x instanceof RuntimeException re) {
                        throw re;
                    }
                    throw e;
                }
                attachments.add(new Attachments.Entry(name, content.length, List.copyOf(chunks)));
            }
        } finally {
            permits.release();
        }
    }

    @Override
    public BackupStats stats() {
        long n = chunksNew.sum();
        long d = chunksDedup.sum();
        long z = chunksZero.sum();
        return new BackupStats(n + d + z, n, d, z, bytesNew.sum(), bytesDedup.sum(), bytesZero.sum(), bytesStored.sum());
    }

    private void drain() throws InterruptedIOException {
        if (drained) {
            return;
        }
        try {
            permits.acquire(maxInFlight);
            drained = true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for the chunks of backup " + id());
        }
    }

    @Override
    public BackupInfo commit() throws IOException {
        if (!state.compareAndSet(State.OPEN, State.COMMITTING)) {
            throw new IllegalStateException("backup " + id() + " is already committed or aborted");
        }
        boolean renamed = false;
        try {
            drain();
            Throwable f = failure.get();
            if (f != null) {
                throw new RepositoryException("backup " + id() + " failed: " + f.getMessage(), f);
            }
            packs.sealOwn();
            packs.sealDependencies();
            Instant completed = Instant.now().truncatedTo(ChronoUnit.MILLIS);
            BackupStats st = stats();
            BackupInfo done = begun.completedAt(completed, st);
            ObjectNode metadata = IndexFile.metadata(done, uuid, repo.config().id());
            List<Attachments.Entry> attached;
            synchronized (attachments) {
                attached = List.copyOf(attachments);
            }
            if (!attached.isEmpty()) {
                metadata.set(Attachments.KEY, Attachments.toJson(attached));
                repo.catalog().setAttachments(id(), Attachments.infos(attached)); // the row is still incomplete
            }
            draft.finish(Json.bytes(metadata), repo::metaMac);
            draft.close();
            CrashPoints.reached("index-written");
            long indexSize = Files.size(draft.tmp);
            repo.storage().publishIndex(draft.tmp, id());
            renamed = true;
            CrashPoints.reached("index-renamed");
            if (repo.storage().remote()) {
                Manifest.checkReusedPacks(repo, this);
                Manifest.write(repo, metadata, indexSize);
                CrashPoints.reached("manifest-written");
            }
            repo.catalog().completeBackup(id(), completed, st);
            CrashPoints.reached("backup-completed");
            state.set(State.DONE);
            packs.shutdown();
            permits.release(maxInFlight);
            repo.writerDone(this);
            LOG.info("backup {} of {} complete: {} chunks, {} new, {} dedup, {} zero, {} bytes stored", id(),
                begun.diskLabel(), st.chunksTotal(), st.chunksNew(), st.chunksDedup(), st.chunksZero(),
                st.bytesStored());
            return done;
        } catch (IOException | RuntimeException | Error e) {
            if (renamed) {
                try {
                    repo.storage().unpublishIndex(id());
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            abortNow();
            RepositoryFullException full = RepositoryFullException.of(repo.dir(), e);
            if (full != null && full != e) {
                throw new RepositoryException("backup " + id() + " failed: " + full.getMessage(), full);
            }
            throw e;
        }
    }

    @Override
    public void abort() {
        if (state.compareAndSet(State.OPEN, State.DONE)) {
            abortNow();
        }
    }

    private void abortNow() {
        state.set(State.DONE);
        try {
            try {
                drain();
            } catch (InterruptedIOException e) {
                LOG.warn("backup {}: interrupted while aborting; {} is cleaned up by the next run", id(), draft.tmp);
                return;
            }
            try {
                packs.sealOwn();
            } catch (IOException e) {
                LOG.warn("backup {}: could not keep the chunks written so far: {}", id(), e.getMessage());
            }
            draft.delete();
            try {
                repo.catalog().deleteBackup(id());
            } catch (IOException e) {
                LOG.warn("backup {}: could not remove its catalog row ({}); the next run removes it", id(),
                    e.getMessage());
            }
            LOG.info("backup {} of {} aborted", id(), begun.diskLabel());
        } finally {
            packs.shutdown();
            if (drained) {
                permits.release(maxInFlight); // wake puts blocked on a full pipeline: they see the backup is done
            }
            repo.writerDone(this);
        }
    }

    @Override
    public void close() {
        abort();
    }
}
