package io.jbackup.store;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedByInterruptException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A new file written front to back (a pack): appends are gathered in a block-aligned direct buffer of
 * {@link #STAGE_SIZE} and written in whole blocks with O_DIRECT where the file system supports it, so a backup does
 * not go through the page cache. On this project's VMs a buffered write plus fsync costs 1.2 to 2.4 CPU-s per GB
 * (copying into the page cache, then writeback in the fsync), O_DIRECT 0.15 (bench/README.md); and a backup of a
 * host's VMs should not evict their cached data with packs it will not read again soon.
 *
 * <p>A full stage is written in the background, on one of {@link #IO_THREADS} shared {@code pack-io} threads, while
 * appends go on into the next of up to {@link #STAGES} stages: an append only copies, and blocks only when every
 * stage is still being written. (Written in the caller, a 1 MiB O_DIRECT write takes as long as hashing the chunk,
 * and the pack's lock held meanwhile left the backup of incompressible data one core instead of two.) The first
 * failure of a background write is thrown by the next {@link #write}, {@link #flush} or {@link #close}.
 *
 * <p>{@link #flush} waits for the stages in flight, writes the last partial block padded with zeros, then truncates
 * the file to its exact size; {@link #force} makes it durable. Where O_DIRECT is refused (tmpfs, some network file
 * systems) or a direct write fails, the same bytes are written buffered from then on (a real I/O error then shows
 * again, from the buffered write). Not thread-safe: the owner serialises calls. {@code -Djbackup.pack.directIo=false}
 * turns O_DIRECT off.
 */
final class StagedFileWriter implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(StagedFileWriter.class);

    /** Bytes gathered before a write. */
    static final int STAGE_SIZE = 1 << 20;
    /** Stages per writer: one filling, the others being written. */
    static final int STAGES = 3;
    /** Threads that write full stages, shared by every writer (idle ones end after a few seconds). */
    static final int IO_THREADS = 2;
    /** Largest block size O_DIRECT is used with (the stage is aligned to the file system's). */
    private static final int MAX_ALIGN = 1 << 16;
    /**
     * Stage buffers of closed writers, for the next ones (a backup opens a pack every 32 MiB): direct memory is only
     * given back when the collector finds the buffer, which an idle heap may not do for a long time.
     */
    private static final ConcurrentLinkedQueue<ByteBuffer> POOL = new ConcurrentLinkedQueue<>();
    private static final AtomicInteger POOLED = new AtomicInteger();
    private static final int MAX_POOLED = 4 * STAGES;
    private static final ExecutorService IO = io();

    private static ExecutorService io() {
        AtomicInteger n = new AtomicInteger();
        ThreadPoolExecutor e = new ThreadPoolExecutor(IO_THREADS, IO_THREADS, 5, TimeUnit.SECONDS,
            new LinkedBlockingQueue<>(), r -> {
                Thread t = new Thread(r, "pack-io-" + n.incrementAndGet());
                t.setDaemon(true);
                return t;
            });
        e.allowCoreThreadTimeOut(true);
        return e;
    }

    private final Path file;
    private final FileChannel ch;
    private final FileChannel directChannel; // the file opened with O_DIRECT, or null; closed by close()
    private volatile FileChannel direct; // directChannel while O_DIRECT works, then null: buffered writes
    private final int align;
    private final List<ByteBuffer> raws = new ArrayList<>(STAGES); // from the pool, returned by close
    private final BlockingQueue<ByteBuffer> written = new LinkedBlockingQueue<>(); // stages back from the io threads
    private final AtomicReference<IOException> failure = new AtomicReference<>();
    private ByteBuffer stage;
    private int inFlight; // stages handed to the io threads and not yet taken back
    private long stageStart; // file offset of stage[0]; block-aligned while direct != null
    private boolean closed;

    /** Creates {@code file} (which must not exist); {@code directIo} false: buffered writes only. */
    StagedFileWriter(Path file, boolean directIo) throws IOException {
        this.file = file;
        this.ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE,
            StandardOpenOption.READ);
        FileChannel d = null;
        int a = 1;
        if (directIo && !"false".equals(System.getProperty("jbackup.pack.directIo"))) {
            try {
                long bs = Files.getFileStore(file).getBlockSize();
                if (bs >= 512 && bs <= MAX_ALIGN && Long.bitCount(bs) == 1) {
                    d = FileChannel.open(file, StandardOpenOption.WRITE, com.sun.nio.file.ExtendedOpenOption.DIRECT);
                    a = (int) bs;
                }
            } catch (IOException | RuntimeException e) {
                LOG.debug("{}: no O_DIRECT ({}); buffered writes", file, e.toString());
            }
        }
        this.directChannel = d;
        this.direct = d;
        this.align = a;
        this.stage = newStage();
    }

    /** Another stage buffer, aligned: from the pool or new (at most {@link #STAGES} per writer). */
    private ByteBuffer newStage() {
        ByteBuffer r = POOL.poll();
        if (r != null) {
            POOLED.decrementAndGet();
        } else {
            r = ByteBuffer.allocateDirect(STAGE_SIZE + MAX_ALIGN);
        }
        raws.add(r);
        return r.clear().alignedSlice(align).limit(STAGE_SIZE);
    }

    /** Whether writes go around the page cache (for tests and logs). */
    boolean directIo() {
        return direct != null;
    }

    /** Bytes appended so far. */
    long size() {
        return stageStart + stage.position();
    }

    void write(byte[] b, int off, int len) throws IOException {
        write(ByteBuffer.wrap(b, off, len));
    }

    /** Appends {@code src}'s remaining bytes. */
    void write(ByteBuffer src) throws IOException {
        checkOpen();
        rethrow();
        while (src.hasRemaining()) {
            int n = Math.min(src.remaining(), stage.remaining());
            stage.put(stage.position(), src, src.position(), n);
            stage.position(stage.position() + n);
            src.position(src.position() + n);
            if (!stage.hasRemaining()) {
                handOff();
            }
        }
    }

    /**
     * Hands the full stage to an io thread and continues in a free one (a new one while fewer than {@link #STAGES}
     * exist, else the next written back). A full stage is whole blocks: its size is a multiple of any alignment.
     */
    private void handOff() throws IOException {
        ByteBuffer full = stage.flip();
        long at = stageStart;
        inFlight++;
        IO.execute(() -> {
            try {
                writeBlock(full, at);
            } catch (IOException e) {
                failure.compareAndSet(null, e);
            } catch (RuntimeException | Error e) {
                failure.compareAndSet(null, new IOException("writing " + file + " at " + at + " failed: " + e, e));
            } finally {
                written.add(full);
            }
        });
        stageStart += full.limit();
        stage = raws.size() < STAGES ? newStage() : takeWritten();
        stage.clear().limit(STAGE_SIZE);
        rethrow();
    }

    /** Writes {@code buf} at {@code at}: with O_DIRECT while that works, else buffered (on an io thread, or flush's). */
    private void writeBlock(ByteBuffer buf, long at) throws IOException {
        FileChannel d = direct;
        if (d != null) {
            try {
                FileSync.writeFully(d, buf.duplicate(), at);
                return;
            } catch (ClosedByInterruptException e) {
                throw e; // the caller was interrupted (flush): not a reason to give up O_DIRECT
            } catch (IOException e) {
                LOG.debug("{}: O_DIRECT write at {} failed ({}); buffered writes from now on", file, at, e.toString());
                direct = null;
            }
        }
        FileSync.writeFully(ch, buf.duplicate(), at);
    }

    /** The next stage written back by an io thread (waits for one). */
    private ByteBuffer takeWritten() throws IOException {
        try {
            ByteBuffer b = written.take();
            inFlight--;
            return b;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while writing " + file);
        }
    }

    /** Waits until no stage is being written. */
    private void awaitWritten() throws IOException {
        while (inFlight > 0) {
            takeWritten();
        }
    }

    private void rethrow() throws IOException {
        IOException e = failure.get();
        if (e != null) {
            throw new IOException("writing " + file + " failed: " + e.getMessage(), e);
        }
    }

    /** Writes everything appended to the file, which then has exactly {@link #size()} bytes. */
    void flush() throws IOException {
        checkOpen();
        awaitWritten();
        rethrow();
        int n = stage.position();
        if (n == 0) {
            return;
        }
        // O_DIRECT writes whole blocks: the last one padded with zeros, then the file is cut to its size (also
        // when writeBlock fell back to a buffered write of the padded block)
        int whole = direct != null ? (n + align - 1) & -align : n;
        for (int i = n; i < whole; i++) {
            stage.put(i, (byte) 0);
        }
        writeBlock(stage.duplicate().position(0).limit(whole), stageStart);
        ch.truncate(stageStart + n);
        stageStart += n;
        stage.clear().limit(STAGE_SIZE);
    }

    /** fsync. */
    void force() throws IOException {
        ch.force(true);
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException(file + " is closed"); // its stage buffers may serve another file now
        }
    }

    /** Waits for the stages in flight (their buffers go back to the pool), then closes the file. */
    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        boolean idle = true;
        try {
            awaitWritten();
        } catch (InterruptedIOException e) {
            idle = false; // a stage may still be written: leave its buffers to the collector
        }
        if (idle) {
            for (ByteBuffer r : raws) {
                if (POOLED.incrementAndGet() <= MAX_POOLED) {
                    POOL.offer(r);
                } else {
                    POOLED.decrementAndGet();
                }
            }
        }
        try {
            if (directChannel != null) {
                directChannel.close();
            }
        } finally {
            ch.close();
        }
    }
}
