package io.jbackup.engine;

import io.jbackup.store.BackupReader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * Writes one backup's image to a {@link RestoreTarget}.
 *
 * <p>Chunks are fetched, verified and decompressed on the repository's worker pool with a bounded read-ahead
 * window, and written in order by the calling thread; runs of zero chunks become one hole or WRITE_ZEROES. A
 * damaged chunk stops the restore naming the disk offset and the backup, unless {@code ignoreErrors} is set, in
 * which case zeros are written there and the range is listed in the result.
 */
public final class DiskRestore {
    private static final Logger LOG = LoggerFactory.getLogger(DiskRestore.class);

    private final BackupReader reader;
    private final RestoreTarget target;
    private final boolean ignoreErrors;
    private final int readAhead;
    private final ProgressListener progress;
    private final Cancellation cancel;

    public DiskRestore(BackupReader reader, RestoreTarget target, boolean ignoreErrors, int readAhead,
                       ProgressListener progress, Cancellation cancel) {
        if (readAhead < 1 || readAhead > 1024) {
            throw new IllegalArgumentException("read-ahead " + readAhead + " (expected: 1 .. 1024)");
        }
        this.reader = reader;
        this.target = target;
        this.ignoreErrors = ignoreErrors;
        this.readAhead = readAhead;
        this.progress = progress;
        this.cancel = cancel;
    }

    private record Pending(long index, CompletableFuture<byte[]> data) {
    }

    public RestoreResult run() throws IOException, InterruptedException {
        long t0 = System.nanoTime();
        long size = reader.imageSize();
        int cs = reader.chunkSize();
        long n = reader.chunkCount();
        String disk = reader.info().disk();
        String label = (reader.info().vm() == null ? "" : reader.info().vm() + "/") + disk + "@" + reader.info().id();
        progress.started(label, size);
        Deque<Pending> window = new ArrayDeque<>();
        List<RestoreResult.DamagedRange> damaged = new ArrayList<>();
        long written = 0;
        long zero = 0;
        long zeroRunStart = -1;
        long done = 0;
        long lastReport = 0;
        try {
            for (long i = 0; i <= n; i++) {
                if (i < n && reader.isZero(i)) {
                    if (zeroRunStart < 0) {
                        zeroRunStart = i * (long) cs;
                    }
                    continue;
                }
                // end of a zero run: one hole / WRITE_ZEROES for the whole run
                if (zeroRunStart >= 0) {
                    long end = Math.min(i * (long) cs, size);
                    if (target.needsZeroes()) {
                        target.writeZeroes(zeroRunStart, end - zeroRunStart);
                    }
                    zero += end - zeroRunStart;
                    zeroRunStart = -1;
                }
                if (i == n) {
                    break;
                }
                window.addLast(new Pending(i, reader.readChunkAsync(i)));
                while (window.size() >= readAhead) {
                    written += writeNext(window.pollFirst(), cs, size, damaged);
                }
                cancel.check();
                done = i * (long) cs;
                long now = System.nanoTime();
                if (now - lastReport > 200_000_000L) {
                    progress.progress(label, done, written);
                    lastReport = now;
                }
            }
            while (!window.isEmpty()) {
                written += writeNext(window.pollFirst(), cs, size, damaged);
            }
            target.flush();
        } finally {
            for (Pending p : window) {
                p.data().cancel(false);
            }
            progress.progress(label, size, written);
            progress.finished(label);
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        return new RestoreResult(disk, reader.info().id(), target.toString(), size, written, zero, secs,
            secs > 0 ? size / secs / 1e6 : 0, damaged);
    }

    private long writeNext(Pending p, int cs, long size, List<RestoreResult.DamagedRange> damaged)
        throws IOException, InterruptedException {
        long offset = p.index() * (long) cs;
        int len = (int) Math.min(cs, size - offset);
        byte[] data;
        try {
            data = p.data().get();
        } catch (ExecutionException e) {
            Throwable cause = DiskBackup.unwrap(e);
            String what = "chunk " + p.index() + " (disk offset " + offset + ", " + len + " bytes) of backup "
                + reader.info().id() + " of disk " + reader.info().disk() + " cannot be read: " + cause.getMessage();
            if (!ignoreErrors) {
                throw new IOException(what + "; the restore stopped. Run 'jbackup verify' to see every damaged chunk, "
                    + "or restore with --ignore-errors to write zeros there and continue", cause);
            }
            LOG.warn("{}; writing zeros there (--ignore-errors)", what);
            damaged.add(new RestoreResult.DamagedRange(offset, len, cause.getMessage()));
            target.writeZeroes(offset, len);
            return 0;
        }
        if (data.length < len) {
            throw new IOException("chunk " + p.index() + " of backup " + reader.info().id() + " holds " + data.length
                + " bytes, expected " + len);
        }
        target.write(offset, data, len);
        return len;
    }
}
