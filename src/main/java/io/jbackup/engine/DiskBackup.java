package io.jbackup.engine;

import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdClient;
import io.jbackup.nbd.client.NbdCommandException;
import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdError;
import io.jbackup.nbd.protocol.NbdHeaderMode;
import io.jbackup.nbd.protocol.NbdProtocolException;
import io.jbackup.store.BackupSpec;
import io.jbackup.store.BackupWriter;
import io.jbackup.store.Repository;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Backs up one disk from an NBD export into the repository.
 *
 * <p>The pipeline, all driven by one thread per disk:
 * <ol>
 *   <li>BLOCK_STATUS for {@code base:allocation}, {@code qemu:allocation-depth} and (incremental) the dirty bitmap,
 *       asked in bounded windows; the next window is requested while the previous one's reads are in flight. With
 *       extended headers the first window is the whole export (one 64-bit length); else the configured one (1 GiB).
 *       The window doubles (up to 4 GiB, or the whole export with extended headers) after a reply of few extents,
 *       and returns to the configured one after a fragmented reply.</li>
 *   <li>{@link ChunkPlanner#planRuns} turns extents into chunk tasks on the fixed chunk grid; a run of zero chunks is
 *       one task, and an incremental's clean chunks are skipped a run at a time, so an empty or unchanged region
 *       costs work per run, not per chunk.</li>
 *   <li>Each READ task takes a chunk buffer from a bounded {@link BufferPool} and reads only its data ranges
 *       (the NBD client splits and pipelines them); ZERO tasks store the zero digest without reading
 *       ({@link BackupWriter#putZeros} for a run).</li>
 *   <li>While the repository's workers are busy compressing ({@link ChunkHash#onReadPays}), each piece of a read
 *       is hashed as it lands, on the I/O thread that copied it, while it is still in that core's cache
 *       ({@link ChunkHash}); completed reads go to {@link BackupWriter#putChunk} with that chunk id (or without, and
 *       the workers hash), which compresses and stores on the repository's worker pool; the buffer returns to the
 *       pool when the put completes.</li>
 * </ol>
 * The loop waits (for a read or a block-status reply, which both wake it) only when nothing else is ready.
 * A dropped connection is retried with exponential backoff: in-flight reads are drained, the client reconnects,
 * and the failed chunks are read again; chunks already put stay. A protocol violation is not retried (it recurs on
 * every connection; see {@link SourceFailures}). Any other failure or cancellation aborts the writer, so the
 * repository keeps no half backup.
 */
public final class DiskBackup {
    private static final Logger LOG = LoggerFactory.getLogger(DiskBackup.class);

    private final Repository repo;
    private final DiskJob job;
    private final EngineOptions options;
    private final ProgressListener progress;
    private final Cancellation cancel;
    private final CommitCheck commitCheck;

    private NbdClient client;
    private SourceReconnects reconnects;
    /** Successful reads and block-status windows so far (copy thread only): what "progress" means for retries. */
    private long steps;
    private final AtomicLong bytesRead = new AtomicLong();

    public DiskBackup(Repository repo, DiskJob job, EngineOptions options, ProgressListener progress,
                      Cancellation cancel) {
        this(repo, job, options, progress, cancel, CommitCheck.NONE);
    }

    public DiskBackup(Repository repo, DiskJob job, EngineOptions options, ProgressListener progress,
                      Cancellation cancel, CommitCheck commitCheck) {
        this.commitCheck = commitCheck;
        this.repo = repo;
        this.job = job;
        this.options = options;
        this.progress = progress;
        this.cancel = cancel;
    }

    private String dirtyContext() {
        return job.bitmap() == null ? null : NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX + job.bitmap();
    }

    private ClientOptions clientOptions() {
        List<String> ctx = new ArrayList<>(List.of(NbdConstants.CONTEXT_BASE_ALLOCATION,
            NbdConstants.CONTEXT_ALLOCATION_DEPTH));
        if (dirtyContext() != null) {
            ctx.add(dirtyContext());
        }
        return job.client().withMetaContexts(ctx);
    }

    /** Runs the backup; returns its result, or throws when the disk could not be backed up. */
    public DiskResult run() throws IOException, InterruptedException {
        long t0 = System.nanoTime();
        String label = job.vm() == null ? job.disk() : job.vm() + "/" + job.disk();
        client = NbdClient.connect(job.uri(), clientOptions());
        reconnects = new SourceReconnects(job.uri(), options, progress, cancel,
            java.util.Set.copyOf(client.metaContexts().keySet()));
        try {
            long size = client.info().size();
            IncrementalDecision d = IncrementalDecision.decide(repo, job, client, size);
            if (d.fallback() != null && d.fallback().code().notAsAsked()) {
                progress.warning(label, d.reason());
            } else if (d.reason() != null) {
                progress.message(label, d.reason());
            }
            Map<String, String> source = new LinkedHashMap<>();
            source.put("uri", job.uri().toString());
            source.put("export", client.info().name() == null ? job.uri().export() : client.info().name());
            source.put("exportSize", Long.toString(size));
            if (job.bitmap() != null) {
                source.put("bitmap", job.bitmap());
            }
            source.put("contexts", String.join(",", client.metaContexts().keySet()));
            BackupSpec spec = new BackupSpec(job.vm(), job.disk(), size, d.chunkSize(),
                d.incremental() ? d.parent().id() : null, d.incremental() ? "incremental" : "full",
                job.labels(), job.note(), source);
            BackupWriter writer = repo.beginBackup(spec);
            try {
                progress.started(label, size);
                copy(writer, size, d.chunkSize(), d.incremental(), label);
                for (Map.Entry<String, byte[]> a : job.attachments().entrySet()) {
                    writer.attach(a.getKey(), a.getValue());
                }
                commitCheck.check(job);
                BackupInfo info = writer.commit();
                double secs = (System.nanoTime() - t0) / 1e9;
                BackupStats st = info.stats() != null ? info.stats() : writer.stats();
                long read = bytesRead.get();
                IncrementalDecision.Refusal fb = d.fallback();
                return new DiskResult(job.vm(), job.disk(), "ok", info.id(), info.type(), info.parentId(), d.reason(),
                    fb == null ? null : fb.code(), fb == null ? List.of() : fb.offered(), size, read, st.bytesNew(), st.bytesDedup(), st.bytesZero(), st.bytesStored(), secs,
                    secs > 0 ? read / secs / 1e6 : 0, reconnects.retriesUsed(), null);
            } catch (Throwable t) {
                writer.abort();
                throw t;
            } finally {
                progress.finished(label);
            }
        } finally {
            closeQuietly(client);
        }
    }

    // ---------------------------------------------------------------- the copy loop

    /** A finished read: the task, its buffer, and the failure if any; or {@link #WAKE}. */
    private record Completion(ChunkTask task, byte[] buffer, ChunkHash hash, Throwable error) {
        boolean isWake() {
            return task == null;
        }
    }

    /** Queued when a block-status reply arrives, so the copy loop wakes for it instead of waiting out a poll. */
    private static final Completion WAKE = new Completion(null, null, null, null);

    /** Chunks read, and how many of them were hashed as their pieces landed (copy thread only; for the log). */
    private long chunksRead;
    private long hashedOnRead;

    /** Chunk hashes for the reads in flight, reused (at most one per chunk buffer). */
    private final ChunkHash.Pool hashes = new ChunkHash.Pool();

    private void copy(BackupWriter writer, long size, int chunkSize, boolean incremental, String label)
        throws IOException, InterruptedException {
        Map<String, Integer> ctx = client.metaContexts();
        boolean haveAlloc = ctx.containsKey(NbdConstants.CONTEXT_BASE_ALLOCATION);
        boolean haveDepth = ctx.containsKey(NbdConstants.CONTEXT_ALLOCATION_DEPTH);
        if (!haveAlloc && !incremental) {
            LOG.info("{}: the server offers no base:allocation; reading every byte", label);
        }
        ChunkPlanner planner = new ChunkPlanner(size, chunkSize, haveAlloc, haveDepth, incremental);
        // the contexts the planner reads; with BLOCK_STATUS_PAYLOAD the server computes no others
        List<String> wanted = new ArrayList<>();
        if (haveAlloc) {
            wanted.add(NbdConstants.CONTEXT_BASE_ALLOCATION);
        }
        if (haveDepth) {
            wanted.add(NbdConstants.CONTEXT_ALLOCATION_DEPTH);
        }
        if (incremental) {
            wanted.add(dirtyContext());
        }
        // where the server computes only the contexts a request names: the bitmap first, allocation for dirty chunks
        DirtyFirstStatus dirtyFirst = incremental && (haveAlloc || haveDepth) && DirtyFirstStatus.applies(client)
            ? new DirtyFirstStatus(dirtyContext(), haveAlloc, haveDepth, chunkSize, DIRTY_RUN_GAP_CHUNKS * chunkSize)
            : null;
        int buffers = (int) Math.max(2, Math.min(4096, options.bufferBytes() / chunkSize));
        BufferPool pool = new BufferPool(buffers, chunkSize);
        Deque<ChunkTask> pending = new ArrayDeque<>();
        LinkedBlockingQueue<Completion> completions = new LinkedBlockingQueue<>();
        List<ChunkTask> failed = new ArrayList<>();
        AtomicReference<Throwable> putError = new AtomicReference<>();
        AtomicLong outstanding = new AtomicLong(); // bytes planned but not yet stored
        int readsInFlight = 0;
        CompletableFuture<Map<String, List<Extent>>> status = null;
        Throwable transportError = null;
        long lastReport = 0;
        long statusRequests = 0;
        // with extended headers the first request covers the whole export in one 64-bit length (the server answers
        // as far as its extent limit, and the next request goes on from there); else the configured window. Either
        // way it doubles while replies have few extents and returns to the configured one after a fragmented reply.
        long window = client.headerMode() == NbdHeaderMode.EXTENDED ? client.maxStatusLength()
            : options.statusWindow();
        long zeroRuns = 0;
        long started = System.nanoTime();

        while (true) {
            if (cancel.isCancelled()) {
                drain(completions, readsInFlight, pool);
                cancel.check();
            }
            Throwable pe = putError.get();
            if (pe != null) {
                drain(completions, readsInFlight, pool);
                throw asIo(pe, "storing a chunk of " + label);
            }
            // 1. completed reads -> repository
            Completion c;
            boolean worked = false; // whether this round advanced; if not, wait for a read or a block-status reply
            while ((c = completions.poll()) != null) {
                if (c.isWake()) {
                    continue;
                }
                readsInFlight--;
                worked = true;
                transportError = handle(c, writer, pool, failed, putError, outstanding, transportError);
            }
            // 2. a dropped connection: wait for in-flight reads, reconnect, retry the failed chunks
            if (transportError != null || (status != null && status.isCompletedExceptionally())) {
                if (transportError == null) {
                    transportError = failureOf(status);
                }
                if (!SourceFailures.isTransient(transportError)) {
                    drain(completions, readsInFlight, pool);
                    throw asIo(transportError, "reading " + label);
                }
                if (readsInFlight > 0) {
                    c = completions.poll(100, TimeUnit.MILLISECONDS);
                    if (c != null && !c.isWake()) {
                        completions.add(c);
                    }
                    continue;
                }
                status = null;
                closeQuietly(client);
                client = null;
                client = reconnects.reconnect(size, label, transportError, steps, this::clientOptions);
                transportError = null;
                failed.sort(Comparator.comparingLong(ChunkTask::index).reversed());
                for (ChunkTask t : failed) {
                    pending.addFirst(t);
                }
                failed.clear();
                continue;
            }
            // 3. block status: integrate a finished window, plan chunks, ask the next window early
            if (status != null && status.isDone()) {
                long before = planner.coveredEnd();
                Map<String, List<Extent>> reply = status.join();
                feed(planner, reply, haveAlloc, haveDepth, incremental);
                window = nextWindow(window, reply);
                status = null;
                steps++;
                worked = true;
                if (planner.coveredEnd() <= before) {
                    throw new NbdProtocolException("the server's block status for " + label
                        + " did not advance past offset " + before);
                }
            }
            if (pending.size() < buffers) {
                for (ChunkTask t : planner.planRuns(buffers * 2)) {
                    outstanding.addAndGet(t.span());
                    pending.add(t);
                    worked = true;
                }
            }
            if (status == null && planner.coveredEnd() < size && pending.size() < buffers
                && planner.coveredEnd() - planner.nextChunkOffset() < window) {
                long from = planner.coveredEnd();
                long len = Math.min(window, size - from);
                status = dirtyFirst != null ? dirtyFirst.fetch(client, from, len)
                    : client.blockStatus(from, len, false, wanted);
                status.whenComplete((v, e) -> completions.add(WAKE));
                statusRequests++;
            }
            // 4. issue reads while buffers are free
            while (!pending.isEmpty()) {
                ChunkTask t = pending.peekFirst();
                if (t.kind() == ChunkTask.Kind.ZERO) {
                    pending.pollFirst();
                    if (t.count() == 1) {
                        writer.putZero(t.index());
                    } else {
                        writer.putZeros(t.index(), t.count());
                        zeroRuns++;
                    }
                    outstanding.addAndGet(-t.span());
                    worked = true;
                    continue;
                }
                byte[] buf = pool.tryAcquire();
                if (buf == null) {
                    break;
                }
                pending.pollFirst();
                readsInFlight++;
                worked = true;
                issueRead(t, buf, hashes.forRead(writer, buf, t.length()), completions);
            }
            // 5. done?
            if (pending.isEmpty() && planner.done() && status == null && readsInFlight == 0) {
                break;
            }
            long now = System.nanoTime();
            if (now - lastReport > 200_000_000L) {
                progress.progress(label, planner.nextChunkOffset() - outstanding.get(), bytesRead.get());
                lastReport = now;
            }
            c = worked ? completions.poll() : completions.poll(20, TimeUnit.MILLISECONDS);
            if (c != null && !c.isWake()) {
                readsInFlight--;
                transportError = handle(c, writer, pool, failed, putError, outstanding, transportError);
            }
        }
        progress.progress(label, size, bytesRead.get());
        LOG.debug("{}: copied in {} ms: {} block-status requests, {} zero runs, {} bytes read, {} of {} chunks hashed "
            + "as they landed", label, (System.nanoTime() - started) / 1_000_000, statusRequests, zeroRuns,
            bytesRead.get(), hashedOnRead, chunksRead);
    }

    /** Dirty chunks at most this many chunks apart share one allocation request ({@link DirtyFirstStatus}). */
    static final long DIRTY_RUN_GAP_CHUNKS = 16;

    /** Extents in one block-status reply (all contexts) up to which the window doubles for the next request. */
    static final int FEW_EXTENTS = 16;

    /**
     * The next block-status window: doubled (up to {@link NbdClient#maxStatusLength()}: the whole export with extended
     * headers) after a reply of few extents,
     * so a big empty or clean region costs a few requests, not one per configured window; back to the configured
     * window after a fragmented reply, which keeps replies and the planner's buffered extents small.
     */
    private long nextWindow(long window, Map<String, List<Extent>> reply) {
        int extents = 0;
        for (List<Extent> l : reply.values()) {
            extents += l.size();
        }
        if (extents > FEW_EXTENTS) {
            return options.statusWindow();
        }
        return Math.min(client.maxStatusLength(), window * 2);
    }

    private static void feed(ChunkPlanner planner, Map<String, List<Extent>> ext, boolean alloc, boolean depth,
                             boolean incremental) {
        if (alloc) {
            planner.addAllocation(ext.getOrDefault(NbdConstants.CONTEXT_BASE_ALLOCATION, List.of()));
        }
        if (depth) {
            planner.addDepth(ext.getOrDefault(NbdConstants.CONTEXT_ALLOCATION_DEPTH, List.of()));
        }
        if (incremental) {
            for (Map.Entry<String, List<Extent>> e : ext.entrySet()) {
                if (e.getKey().startsWith(NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX)) {
                    planner.addDirty(e.getValue());
                }
            }
        }
    }

    /**
     * Reads a chunk's data ranges into {@code buf}, zeroing the gaps; {@code hash}, when not null, hashes each piece as
     * it lands.
     */
    private void issueRead(ChunkTask t, byte[] buf, ChunkHash hash, LinkedBlockingQueue<Completion> completions) {
        long[] r = t.ranges();
        // zero the gaps between data ranges (buffers are reused)
        long pos = t.offset();
        CompletableFuture<?>[] reads = new CompletableFuture<?>[r.length / 2];
        for (int i = 0; i < r.length; i += 2) {
            if (r[i] > pos) {
                Arrays.fill(buf, (int) (pos - t.offset()), (int) (r[i] - t.offset()), (byte) 0);
                if (hash != null) {
                    hash.received((int) (pos - t.offset()), (int) (r[i] - pos));
                }
            }
            reads[i / 2] = client.read(r[i], buf, (int) (r[i] - t.offset()), (int) (r[i + 1] - r[i]), hash);
            pos = r[i + 1];
        }
        if (pos < t.offset() + t.length()) {
            Arrays.fill(buf, (int) (pos - t.offset()), t.length(), (byte) 0);
            if (hash != null) {
                hash.received((int) (pos - t.offset()), (int) (t.offset() + t.length() - pos));
            }
        }
        CompletableFuture<?> all = reads.length == 1 ? reads[0] : CompletableFuture.allOf(reads);
        all.whenComplete((v, e) -> completions.add(new Completion(t, buf, hash, e)));
    }

    /** Handles one finished read; returns the transport error to recover from, if any. */
    private Throwable handle(Completion c, BackupWriter writer, BufferPool pool, List<ChunkTask> failed,
                             AtomicReference<Throwable> putError, AtomicLong outstanding, Throwable transportError)
        throws IOException {
        // the id hashed while the pieces landed (null when the reads did not report the chunk exactly once)
        byte[] id = null;
        if (c.hash() != null) {
            id = c.error() == null ? c.hash().id() : null;
            hashedOnRead += id != null ? 1 : 0;
            hashes.give(c.hash());
        }
        if (c.error() != null) {
            pool.release(c.buffer());
            Throwable e = unwrap(c.error());
            if (e instanceof NbdCommandException ce && !ce.error().equals(NbdError.ESHUTDOWN)) {
                throw new IOException("the NBD server failed to read " + job.disk() + " at offset "
                    + c.task().offset() + " (" + c.task().length() + " bytes): " + e.getMessage(), e);
            }
            failed.add(c.task());
            return transportError != null ? transportError : e;
        }
        bytesRead.addAndGet(c.task().bytesToRead());
        steps++;
        chunksRead++;
        CompletableFuture<Void> put = writer.putChunk(c.task().index(), c.buffer(), c.task().length(), id);
        put.whenComplete((v, e) -> {
            pool.release(c.buffer());
            outstanding.addAndGet(-c.task().length());
            if (e != null) {
                putError.compareAndSet(null, unwrap(e));
            }
        });
        return transportError;
    }

    private void drain(LinkedBlockingQueue<Completion> completions, int inFlight, BufferPool pool)
        throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (inFlight > 0 && System.nanoTime() < deadline) {
            Completion c = completions.poll(100, TimeUnit.MILLISECONDS);
            if (c != null && !c.isWake()) {
                inFlight--;
                hashes.give(c.hash());
                pool.release(c.buffer());
            }
        }
    }

    private static Throwable failureOf(CompletableFuture<?> f) {
        try {
            f.get();
            return null;
        } catch (ExecutionException e) {
            return unwrap(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return e;
        } catch (CancellationException e) {
            return e;
        }
    }

    static Throwable unwrap(Throwable e) {
        while ((e instanceof CompletionException || e instanceof ExecutionException) && e.getCause() != null) {
            e = e.getCause();
        }
        return e;
    }

    private static IOException asIo(Throwable t, String what) {
        t = unwrap(t);
        if (t instanceof IOException io) {
            return io;
        }
        if (t instanceof RuntimeException re) {
            throw re;
        }
        return new IOException(what + ": " + t, t);
    }

    static void closeQuietly(NbdClient c) {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (Exception e) {
            LOG.debug("closing NBD client", e);
        }
    }
}
