package io.jbackup.store;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedByInterruptException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A new file written front to back (a pack): appends are gathered in a block-aligned direct buffer of
 * {@link #STAGE_SIZE} and written in whole blocks with O_DIRECT where the file system supports it, so a backup does
 * not go through the page cache. On this project's VMs a buffered write plus fsync costs 1.2 to 2.4 CPU-s per GB
 * (copying into the page cache, then writeback in the fsync), O_DIRECT 0.15 (bench/README.md); and a backup of a
 * host's VMs should not evict their cached data with packs it will not read again soon.
 *
 * <p>{@link #flush} writes the last partial block padded with zeros, then truncates the file to its exact size;
 * {@link #force} makes it durable. Where O_DIRECT is refused (tmpfs, some network file systems) or a direct write
 * fails, the same bytes are written buffered from then on (a real I/O error then shows again, from the buffered
 * write). Not thread-safe: the owner serialises calls. {@code -Djbackup.pack.directIo=false} turns O_DIRECT off.
 */
final class StagedFileWriter implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(StagedFileWriter.class);

    /** Bytes gathered before a write. */
    static final int STAGE_SIZE = 1 << 20;
    /** Largest block size O_DIRECT is used with (the stage is aligned to the file system's). */
    private static final int MAX_ALIGN = 1 << 16;
    /**
     * Stage buffers of closed writers, for the next ones (a backup opens a pack every 32 MiB): direct memory is only
     * given back when the collector finds the buffer, which an idle heap may not do for a long time.
     */
    private static final ConcurrentLinkedQueue<ByteBuffer> POOL = new ConcurrentLinkedQueue<>();
    private static final AtomicInteger POOLED = new AtomicInteger();
    private static final int MAX_POOLED = 4;

    private final Path file;
    private final FileChannel ch;
    private FileChannel direct; // null: buffered writes
    private final int align;
    private final ByteBuffer raw; // from the pool, returned by close
    private final ByteBuffer stage;
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
        this.direct = d;
        this.align = a;
        ByteBuffer r = POOL.poll();
        if (r != null) {
            POOLED.decrementAndGet();
        } else {
            r = ByteBuffer.allocateDirect(STAGE_SIZE + MAX_ALIGN);
        }
        this.raw = r;
        this.stage = r.clear().alignedSlice(a).limit(STAGE_SIZE);
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
        while (src.hasRemaining()) {
            int n = Math.min(src.remaining(), stage.remaining());
            stage.put(stage.position(), src, src.position(), n);
            stage.position(stage.position() + n);
            src.position(src.position() + n);
            if (!stage.hasRemaining()) {
                drain(false);
            }
        }
    }

    /** Writes everything appended to the file, which then has exactly {@link #size()} bytes. */
    void flush() throws IOException {
        checkOpen();
        drain(true);
    }

    /** fsync. */
    void force() throws IOException {
        ch.force(true);
    }

    /**
     * Writes the staged bytes: with O_DIRECT the whole blocks (and with {@code last} the final partial block,
     * padded, after which the file is cut to its size), else all of them; keeps what is left at the stage's start.
     */
    private void drain(boolean last) throws IOException {
        int n = stage.position();
        if (direct != null) {
            int whole = last ? (n + align - 1) & -align : n & -align;
            if (whole > 0) {
                for (int i = n; i < whole; i++) {
                    stage.put(i, (byte) 0);
                }
                try {
                    FileSync.writeFully(direct, stage.duplicate().position(0).limit(whole), stageStart);
                    if (last) {
                        ch.truncate(stageStart + n);
                        stageStart += n;
                        stage.clear().limit(STAGE_SIZE);
                        return;
                    }
                    int rest = n - whole;
                    stage.put(0, stage, whole, rest);
                    stage.clear().limit(STAGE_SIZE).position(rest);
                    stageStart += whole;
                    return;
                } catch (ClosedByInterruptException e) {
                    throw e;
                } catch (IOException e) {
                    LOG.debug("{}: O_DIRECT write at {} failed ({}); buffered writes from now on", file, stageStart,
                        e.toString());
                    direct.close();
                    direct = null;
                }
            } else if (!last) {
                return;
            }
        }
        FileSync.writeFully(ch, stage.duplicate().position(0).limit(n), stageStart);
        if (last) {
            ch.truncate(stageStart + n); // a failed direct write may have left a padded block
        }
        stageStart += n;
        stage.clear().limit(STAGE_SIZE);
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException(file + " is closed"); // its stage buffer may serve another file now
        }
    }

    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        if (POOLED.incrementAndGet() <= MAX_POOLED) {
            POOL.offer(raw);
        } else {
            POOLED.decrementAndGet();
        }
        try {
            if (direct != null) {
                direct.close();
            }
        } finally {
            ch.close();
        }
    }
}
