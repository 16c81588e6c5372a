package io.jbackup.engine;

import io.jbackup.error.UsageException;
import io.jbackup.objectstore.ObjectNotFoundException;
import io.jbackup.objectstore.StoreAccessDeniedException;
import io.jbackup.objectstore.StoreNotFoundException;
import io.jbackup.objectstore.TransientStoreException;
import io.jbackup.store.BackupReader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Writes one backup's image to a {@link RestoreTarget}.
 *
 * <p>Up to {@code readAhead} chunks are in flight: they are fetched, verified and decompressed on the repository's
 * worker pool, each straight into one of {@code readAhead} direct buffers reused for the whole restore (no array per
 * chunk, and a file target writes from it without a copy), and the calling thread writes each one as soon as it is
 * ready, in completion order (not disk order), so a slow chunk does not hold up the ones behind it. A target that
 * {@link RestoreTarget#takesBuffers() takes its buffers} (an NBD export: the write goes out from the buffer the
 * chunk was decoded into) gets a new one from its pool per chunk instead. One writer is deliberate: buffered writes to one
 * file serialise on the inode lock in the kernel (ext4), and writers on the workers would spin there instead of
 * decoding; an NBD target pipelines the writes anyway. Runs of zero chunks become one hole or WRITE_ZEROES. A damaged chunk stops the restore naming the
 * disk offset and the backup, unless {@code ignoreErrors} is set, in which case zeros are written there and the
 * range is listed in the result.
 */
public final class DiskRestore {
    private static final Logger LOG = LoggerFactory.getLogger(DiskRestore.class);

    private final BackupReader reader;
    private final RestoreTarget target;
    private final boolean ignoreErrors;
    private final int readAhead;
    private final ProgressListener progress;
    private final Cancellation cancel;
    private final List<RestoreResult.DamagedRange> damaged = new ArrayList<>();
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private final AtomicLong written = new AtomicLong();

    public DiskRestore(BackupReader reader, RestoreTarget target, boolean ignoreErrors, int readAhead,
                       ProgressListener progress, Cancellation cancel) {
        if (readAhead < 1 || readAhead > 1024) {
            throw new UsageException("read-ahead " + readAhead + " (expected: 1 .. 1024)");
        }
        this.reader = reader;
        this.target = target;
        this.ignoreErrors = ignoreErrors;
        this.readAhead = readAhead;
        this.progress = progress;
        this.cancel = cancel;
    }

    public RestoreResult run() throws IOException, InterruptedException {
        long t0 = System.nanoTime();
        long size = reader.imageSize();
        int cs = reader.chunkSize();
        long n = reader.chunkCount();
        String disk = reader.info().disk();
        String label = (reader.info().vm() == null ? "" : reader.info().vm() + "/") + disk + "@" + reader.info().id();
        progress.started(label, size);
        Semaphore window = new Semaphore(readAhead);
        BlockingQueue<Done> done = new LinkedBlockingQueue<>(); // fetched chunks, in completion order
        ArrayDeque<ByteBuffer> free = new ArrayDeque<>(); // chunk buffers written out, reused (calling thread only)
        long zero = 0;
        long zeroRunStart = -1;
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
                // checked before a permit is taken: a permit taken and then left by an exception (Ctrl-C, SIGTERM)
                // has no read in flight, and the finally below would wait for it forever
                rethrow();
                cancel.check();
                while (!window.tryAcquire()) {
                    drain(done.take(), cs, size, window, free);
                }
                long index = i;
                ByteBuffer buf = free.isEmpty() ? target.allocate(cs) : free.pop();
                buf.clear().limit(reader.chunkLength(index));
                reader.readChunkAsync(index, buf).whenComplete((v, err) -> done.add(new Done(index, buf, err)));
                long now = System.nanoTime();
                if (now - lastReport > 200_000_000L) {
                    progress.progress(label, i * (long) cs, written.get());
                    lastReport = now;
                }
            }
            while (window.availablePermits() < readAhead) {
                drain(done.take(), cs, size, window, free);
            }
            rethrow();
            target.flush();
        } finally {
            while (window.availablePermits() < readAhead) {
                // stopping early: let the chunks in flight finish before the target is closed
                try {
                    Done d = done.take();
                    if (target.takesBuffers()) {
                        target.discard(d.data());
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
                window.release();
            }
            progress.progress(label, size, written.get());
            progress.finished(label);
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        List<RestoreResult.DamagedRange> d;
        synchronized (damaged) {
            d = new ArrayList<>(damaged);
        }
        d.sort(Comparator.comparingLong(RestoreResult.DamagedRange::offset));
        return new RestoreResult(disk, reader.info().id(), target.description(), target.format(), size, written.get(),
            zero, secs, secs > 0 ? size / secs / 1e6 : 0, d);
    }

    private record Done(long index, ByteBuffer data, Throwable err) {
    }

    /**
     * Whether {@code t} is a failure of the object store itself (unreachable after the retries, access refused, no
     * bucket), rather than damage: a missing pack ({@link ObjectNotFoundException}) is damage.
     */
    static boolean storeFailure(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof TransientStoreException || c instanceof StoreAccessDeniedException
                || c instanceof StoreNotFoundException) {
                return true;
            }
        }
        return false;
    }

    private void drain(Done d, int cs, long size, Semaphore window, ArrayDeque<ByteBuffer> free) throws IOException {
        boolean handedOver = false;
        try {
            handedOver = store(d.index(), d.data(), d.err(), cs, size);
        } catch (IOException | RuntimeException e) {
            failure.compareAndSet(null, e);
        } finally {
            if (!target.takesBuffers()) {
                free.push(d.data());
            } else if (!handedOver) {
                target.discard(d.data());
            }
            window.release();
        }
        rethrow();
    }

    private void rethrow() throws IOException {
        Throwable t = failure.get();
        if (t instanceof IOException io) {
            throw io;
        }
        if (t instanceof RuntimeException re) {
            throw re;
        }
        if (t instanceof Error e) {
            throw e;
        }
        if (t != null) {
            throw new IOException(t);
        }
    }

    /**
     * Writes a fetched chunk, or handles its failure (on the calling thread); returns whether {@code data} went to
     * the target.
     */
    private boolean store(long index, ByteBuffer data, Throwable err, int cs, long size) throws IOException {
        if (failure.get() != null) {
            return false; // the restore is stopping
        }
        long offset = index * (long) cs;
        int len = (int) Math.min(cs, size - offset);
        if (err != null) {
            Throwable cause = err instanceof CompletionException && err.getCause() != null ? err.getCause() : err;
            String what = "chunk " + index + " (disk offset " + offset + ", " + len + " bytes) of backup "
                + reader.info().id() + " of disk " + reader.info().disk() + " cannot be read: " + cause.getMessage();
            if (storeFailure(cause)) {
                // the object store did not answer (or refused): no chunk is known to be damaged, and zeros written
                // for every chunk of an outage would make a restore that looks partial but is mostly holes
                throw new IOException(what + "; the restore stopped: the repository's object store failed, not the "
                    + "backup (--ignore-errors writes zeros only for damaged chunks)", cause);
            }
            if (!ignoreErrors) {
                throw new IOException(what + "; the restore stopped. Run 'jbackup verify' to see every damaged chunk, "
                    + "or restore with --ignore-errors to write zeros there and continue", cause);
            }
            // the command lists every damaged range once, as its result: a warning here would say it all again
            LOG.debug("{}; writing zeros there (--ignore-errors)", what);
            synchronized (damaged) {
                damaged.add(new RestoreResult.DamagedRange(offset, len, cause.getMessage()));
            }
            target.writeZeroes(offset, len);
            return false;
        }
        if (data.position() != len) {
            throw new IOException("chunk " + index + " of backup " + reader.info().id() + " holds " + data.position()
                + " bytes, expected " + len);
        }
        data.flip();
        target.write(offset, data);
        written.addAndGet(len);
        return true;
    }
}
