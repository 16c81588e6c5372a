package io.jbackup.engine;

import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.model.BackupInfo;
import io.jbackup.nbd.server.ChunkCache;
import io.jbackup.nbd.server.ChunkedImageExport;
import io.jbackup.nbd.server.OverlayExport;
import io.jbackup.nbd.server.ReadResult;
import io.jbackup.store.BackupReader;
import io.jbackup.store.BackupSpec;
import io.jbackup.store.BackupWriter;
import io.jbackup.store.DiskLock;
import io.jbackup.store.FileMutex;
import io.jbackup.store.Repository;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * {@code jbackup commit-overlay}: saves the image seen through a writable overlay ({@code serve --writable}) as a
 * new backup - an incremental whose parent is the served backup. Only chunk positions the overlay changed are
 * read (from the overlay, merged with the parent where a chunk changed only in part) and stored; every other
 * position keeps the parent's chunk, and stored chunks are deduplicated as in any backup.
 */
public final class OverlayCommit {
    private static final Logger LOG = LoggerFactory.getLogger(OverlayCommit.class);
    private static final int WINDOW = 8;
    private static final long CACHE_BYTES = 32L << 20;

    /**
     * The outcome.
     *
     * @param backupId      the new backup
     * @param parentId      the backup the overlay was made on
     * @param disk          disk name (and {@code vm}, or null)
     * @param overlay       the overlay's data file
     * @param changedBytes  bytes the overlay changed (whole overlay blocks)
     * @param chunks        chunk positions stored (changed chunks)
     * @param zeroChunks    of those, positions that are now all zero
     * @param overlayKept   false if the overlay files were deleted after the commit
     */
    public record Result(String backupId, String parentId, String vm, String disk, String overlay, long changedBytes,
                         long chunks, long zeroChunks, long bytesNew, boolean overlayKept) {
    }

    private OverlayCommit() {
    }

    /**
     * Commits the overlay in {@code files} (locked by the caller) to {@code repo}; deletes the overlay files
     * afterwards unless {@code keep}.
     */
    public static Result run(Repository repo, OverlayFiles files, String note, boolean keep) throws IOException {
        return run(repo, files, note, keep, new Cancellation());
    }

    /**
     * As {@link #run(Repository, OverlayFiles, String, boolean)}; a cancellation aborts the new backup (nothing of
     * it stays visible) and leaves the overlay as it was.
     */
    public static Result run(Repository repo, OverlayFiles files, String note, boolean keep, Cancellation cancel)
        throws IOException {
        OverlayFiles.Meta m = files.meta();
        if (!m.repositoryId().equals(repo.config().id())) {
            throw new UsageException("overlay " + files.data() + " was made on a backup of repository "
                + m.repositoryId() + ", not of " + repo.dir() + " (" + repo.config().id() + ")");
        }
        BackupInfo parent = repo.backup(m.backupId()).orElseThrow(() -> new NotFoundException("overlay "
            + files.data() + " was made on backup " + m.backupId() + ", which is no longer in the repository; "
            + "the overlay alone is not an image and cannot be committed"));
        Result result;
        try (BackupReader reader = repo.openBackup(parent.id())) {
            ChunkCache cache = new ChunkCache(CACHE_BYTES);
            ChunkedImageExport base = new ChunkedImageExport(parent.disk() + "@" + parent.id(), "",
                new BackupExports.ReaderSource(reader), cache, 0);
            OverlayExport overlay = OverlayExport.open(base, files.data());
            try {
                result = commit(repo, files, parent, overlay, note, cancel);
            } finally {
                overlay.close();
                cache.close();
            }
        }
        if (!keep) {
            files.delete();
            LOG.info("deleted overlay {} (its changes are backup {})", files.data(), result.backupId());
        }
        return new Result(result.backupId(), result.parentId(), result.vm(), result.disk(), result.overlay(),
            result.changedBytes(), result.chunks(), result.zeroChunks(), result.bytesNew(), keep);
    }

    private static Result commit(Repository repo, OverlayFiles files, BackupInfo parent, OverlayExport overlay,
                                 String note, Cancellation cancel) throws IOException {
        int cs = parent.chunkSize();
        long size = parent.imageSize();
        TreeSet<Long> touched = new TreeSet<>();
        long changedBytes = 0;
        for (OverlayExport.ChangedRange r : overlay.changes()) {
            changedBytes += r.length();
            for (long i = r.offset() / cs; i <= (r.offset() + r.length() - 1) / cs; i++) {
                touched.add(i);
            }
        }
        Map<String, String> labels = new LinkedHashMap<>();
        labels.put("origin", "commit-overlay");
        Map<String, String> source = new LinkedHashMap<>();
        source.put("overlay", files.data().toAbsolutePath().toString());
        source.put("overlayCreated", files.meta().created().toString());
        source.put("parent", parent.id());
        String n = note != null ? note : "changes made through a writable overlay of backup " + parent.id();
        BackupSpec spec = new BackupSpec(parent.vm(), parent.disk(), size, cs, parent.id(), BackupSpec.INCREMENTAL,
            labels, n, source);
        long zero = 0;
        String label = parent.vm() == null ? parent.disk() : parent.vm() + "/" + parent.disk();
        // the disk lock of every backup: no other backup of this disk writes while the overlay is committed
        try (FileMutex lock = DiskLock.acquire(repo.dir(), parent.vm(), parent.disk(), "jbackup commit-overlay of "
                 + label, Duration.ZERO, cancel::isCancelled);
             BackupWriter w = repo.beginBackup(spec)) {
            Deque<long[]> order = new ArrayDeque<>();
            Deque<CompletableFuture<ReadResult>> reads = new ArrayDeque<>();
            List<CompletableFuture<Void>> puts = new ArrayList<>();
            var it = touched.iterator();
            while (it.hasNext() || !reads.isEmpty()) {
                cancel.check();
                while (it.hasNext() && reads.size() < WINDOW) {
                    long i = it.next();
                    int len = (int) Math.min(cs, size - i * cs);
                    order.add(new long[] {i, len});
                    reads.add(overlay.read(i * cs, len));
                }
                long[] next = order.poll();
                ReadResult rr;
                try {
                    rr = reads.poll().join();
                } catch (CompletionException e) {
                    throw new IOException("reading chunk " + next[0] + " (disk offset " + next[0] * cs
                        + ") through overlay " + files.data() + ": " + e.getCause().getMessage(), e.getCause());
                }
                try {
                    byte[] data = toBytes(rr, (int) next[1]);
                    if (data == null) {
                        w.putZero(next[0]);
                        zero++;
                    } else {
                        puts.add(w.putChunk(next[0], data, (int) next[1]));
                    }
                } finally {
                    rr.release();
                }
            }
            BackupInfo done = w.commit();
            LOG.info("committed overlay {} as backup {} ({} chunk positions changed, {} now zero)", files.data(),
                done.id(), touched.size(), zero);
            return new Result(done.id(), parent.id(), parent.vm(), parent.disk(), files.data().toString(), changedBytes,
                touched.size(), zero, done.stats().bytesNew(), true);
        }
    }

    /** The bytes of a read, or null if it is all zero segments. */
    private static byte[] toBytes(ReadResult r, int len) throws IOException {
        if (r.length() != len) {
            throw new IOException("overlay read returned " + r.length() + " bytes, expected " + len);
        }
        boolean allZero = true;
        for (ReadResult.Segment s : r.segments()) {
            allZero &= s instanceof ReadResult.Zero;
        }
        if (allZero) {
            return null;
        }
        byte[] out = new byte[len];
        int pos = 0;
        for (ReadResult.Segment s : r.segments()) {
            if (s instanceof ReadResult.Data d) {
                d.buf().getBytes(d.buf().readerIndex(), out, pos, s.length());
            }
            pos += s.length();
        }
        return out;
    }
}
