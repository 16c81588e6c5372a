package io.jbackup.nbd.server;

import static io.jbackup.nbd.server.OverlayBlockMap.BASE;
import static io.jbackup.nbd.server.OverlayBlockMap.DATA;
import static io.jbackup.nbd.server.OverlayBlockMap.ZERO;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdError;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A writable copy-on-write view of a read-only export: writes go to a sparse local file of the export's size in
 * blocks of {@code blockSize} bytes (4 KiB by default); reads, block status and {@link #changes()} merge the
 * overlay with the base. The base is never written.
 *
 * <p><b>Block states.</b> Each block is BASE (read from the base), DATA (read from the overlay file) or ZERO (reads
 * as zeroes, after WRITE_ZEROES or TRIM of the whole block), kept by an {@link OverlayBlockMap}. Writes and zeroing
 * go block by block into the data file by copy-on-write ({@link OverlayData}: read-modify-write never touches more
 * than the two edge blocks of a request, and a concurrent read never sees a half-written block). Writes, zeroing,
 * trim and flush run one at a time on a thread of the overlay; reads run concurrently on the I/O executor.
 *
 * <p><b>Files.</b> {@code overlayFile} holds the data at the export's offsets (sparse: only written blocks take
 * space). The sidecar map {@code overlayFile + ".map"} records the block states (format: {@link OverlayBlockMap});
 * it is replaced atomically on FLUSH, FUA writes and close, after the data file was synced, so a map never refers
 * to data that is not on disk. Writes acknowledged but not flushed before a crash are lost, as on a disk with a
 * volatile cache. Reopening with the same files continues where the last persisted map left off; {@link #discard()}
 * deletes both.
 */
public final class OverlayExport implements NbdExport {
    private static final Logger log = LoggerFactory.getLogger(OverlayExport.class);

    /** Default block size of the overlay. */
    public static final int DEFAULT_BLOCK_SIZE = 4096;

    /** What a changed range holds now. */
    public enum ChangeKind { DATA, ZERO }

    /** A run of blocks that differs from the base: written data, or zeroes. */
    public record ChangedRange(long offset, long length, ChangeKind kind) {
    }

    private final NbdExport base;
    private final Path overlayFile;
    private final FileChannel channel;
    private final int blockSize;
    private final long size;
    private final Executor io;
    private final ExecutorService writer;
    private final ByteBufAllocator alloc = PooledByteBufAllocator.DEFAULT;
    private final OverlayBlockMap map;
    private final OverlayData dataFile;
    /** Set on the writer thread by the close task: later mutations fail. */
    private volatile boolean closed;
    /** Guarded by {@code writer}. */
    private boolean closing;

    private OverlayExport(NbdExport base, Path overlayFile, FileChannel channel, int blockSize, Executor io) {
        this.base = base;
        this.overlayFile = overlayFile;
        this.channel = channel;
        this.blockSize = blockSize;
        this.size = base.size();
        this.map = new OverlayBlockMap(mapFileOf(overlayFile), blockSize, size);
        this.dataFile = new OverlayData(overlayFile, channel, base, map, size);
        this.io = io;
        this.writer = Executors.newSingleThreadExecutor(new DefaultThreadFactory("nbd-overlay-writer", true));
    }

    /** The sidecar map file of an overlay file. */
    public static Path mapFileOf(Path overlayFile) {
        return OverlayBlockMap.fileOf(overlayFile);
    }

    /** Opens or creates an overlay with 4 KiB blocks on the shared {@link IoPool}. */
    public static OverlayExport open(NbdExport base, Path overlayFile) throws IOException {
        return open(base, overlayFile, Math.max(DEFAULT_BLOCK_SIZE, base.minBlockSize()), IoPool.shared());
    }

    /**
     * Opens an overlay of {@code base}: if {@code overlayFile} and its map exist they are checked against the base
     * (size, block size) and continued; otherwise a new, empty overlay is created (replacing a data file that has
     * no map, which holds nothing that was ever flushed).
     *
     * @param base        the read-only export underneath (not closed by this overlay)
     * @param blockSize   copy-on-write granularity: a power of two, 512..1 MiB, at least the base's minimum block
     * @param io          executor for blocking reads of the overlay file
     */
    public static OverlayExport open(NbdExport base, Path overlayFile, int blockSize, Executor io) throws IOException {
        if (blockSize < 512 || blockSize > (1 << 20) || Integer.bitCount(blockSize) != 1
            || blockSize < base.minBlockSize()) {
            throw new IllegalArgumentException("overlay block size " + blockSize + " (expected: power of two in "
                + "512..1048576 and >= the base's minimum block size " + base.minBlockSize() + ")");
        }
        Path map = mapFileOf(overlayFile);
        boolean existing = Files.exists(map);
        FileChannel ch = FileChannel.open(overlayFile, StandardOpenOption.CREATE, StandardOpenOption.READ,
            StandardOpenOption.WRITE);
        try {
            OverlayExport o = new OverlayExport(base, overlayFile, ch, blockSize, io);
            if (existing) {
                o.map.load();
                if (ch.size() != o.size) {
                    throw new IOException("overlay file " + overlayFile + " has " + ch.size() + " bytes but the export has "
                        + o.size + "; it belongs to another image: discard it or use another path");
                }
                log.info("reopened overlay {} of export '{}': {} bytes changed", overlayFile, base.name(),
                    o.changedBytes());
            } else {
                ch.truncate(0);
                writeSparseSize(ch, o.size);
                o.map.markDirty();
                o.map.persist();
            }
            return o;
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    private static void writeSparseSize(FileChannel ch, long size) throws IOException {
        if (size > 0) {
            ch.write(ByteBuffer.allocate(1), size - 1); // a zero byte at the end sets the size; the rest stays a hole
        }
    }

    // ---- NbdExport -----------------------------------------------------------------------------------------

    @Override
    public String name() {
        return base.name();
    }

    @Override
    public String description() {
        String d = base.description();
        return (d.isEmpty() ? "" : d + " ") + "(writable overlay)";
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public boolean readOnly() {
        return false;
    }

    /** True: one instance serves every connection, and FLUSH covers all of them. */
    @Override
    public boolean canMultiConn() {
        return true;
    }

    @Override
    public int minBlockSize() {
        return base.minBlockSize();
    }

    @Override
    public int preferredBlockSize() {
        return Math.max(base.preferredBlockSize(), blockSize);
    }

    @Override
    public int maxPayload() {
        return base.maxPayload();
    }

    /** The copy-on-write block size. */
    public int blockSize() {
        return blockSize;
    }

    /** The export underneath. */
    public NbdExport base() {
        return base;
    }

    public Path overlayFile() {
        return overlayFile;
    }

    @Override
    public CompletableFuture<ReadResult> read(long offset, int length) {
        List<OverlayBlockMap.Run> runs = map.runs(offset, length);
        List<CompletableFuture<ReadResult>> parts = new ArrayList<>(runs.size());
        for (OverlayBlockMap.Run r : runs) {
            switch (r.state()) {
                case BASE -> parts.add(base.read(r.offset(), (int) r.length()));
                case ZERO -> parts.add(CompletableFuture.completedFuture(ReadResult.zeroes((int) r.length())));
                default -> parts.add(CompletableFuture.supplyAsync(() -> readOverlay(r.offset(), (int) r.length()), io));
            }
        }
        if (parts.size() == 1) {
            return parts.get(0);
        }
        return CompletableFuture.allOf(parts.toArray(new CompletableFuture<?>[0])).handle((v, failure) -> {
            ReadResult.Builder b = ReadResult.builder();
            Throwable err = null;
            for (CompletableFuture<ReadResult> p : parts) {
                if (p.isCompletedExceptionally()) {
                    err = p.handle((x, t) -> t).join();
                    continue;
                }
                ReadResult r = p.join();
                if (err != null) {
                    r.release();
                    continue;
                }
                for (ReadResult.Segment s : r.segments()) {
                    if (s instanceof ReadResult.Data d) {
                        b.addData(d.buf());
                    } else {
                        b.addZeroes(s.length());
                    }
                }
            }
            if (err != null) {
                b.release();
                throw err instanceof CompletionException ce ? ce : new CompletionException(err);
            }
            return b.build();
        });
    }

    private ReadResult readOverlay(long offset, int length) {
        ByteBuf buf = alloc.directBuffer(length, length);
        try {
            dataFile.read(buf.internalNioBuffer(0, length), offset);
            buf.writerIndex(length);
            return ReadResult.of(buf);
        } catch (IOException e) {
            buf.release();
            throw new CompletionException(e);
        }
    }

    @Override
    public CompletableFuture<List<Extent>> allocation(long offset, long length) {
        List<OverlayBlockMap.Run> runs = map.runs(offset, length);
        List<Extent> out = new ArrayList<>();
        CompletableFuture<List<Extent>> f = CompletableFuture.completedFuture(out);
        for (OverlayBlockMap.Run r : runs) {
            f = f.thenCompose(acc -> {
                if (!acc.isEmpty() && acc.get(acc.size() - 1).end() < r.offset()) {
                    return CompletableFuture.completedFuture(acc); // the base answered short: stop there
                }
                if (r.state() == DATA) {
                    ZeroScan.append(acc, r.offset(), r.length(), 0);
                    return CompletableFuture.completedFuture(acc);
                }
                if (r.state() == ZERO) {
                    ZeroScan.append(acc, r.offset(), r.length(), ZeroScan.ZERO_FLAGS);
                    return CompletableFuture.completedFuture(acc);
                }
                return base.allocation(r.offset(), r.length()).thenApply(ext -> {
                    long pos = r.offset();
                    for (Extent e : ext) {
                        if (e.end() <= pos) {
                            continue;
                        }
                        if (e.offset() > pos) {
                            break;
                        }
                        long stop = Math.min(e.end(), r.end());
                        ZeroScan.append(acc, pos, stop - pos, e.flags());
                        pos = stop;
                        if (pos >= r.end()) {
                            break;
                        }
                    }
                    return acc;
                });
            });
        }
        return f;
    }

    @Override
    public CompletableFuture<Void> write(long offset, ByteBuf data, boolean fua) {
        return mutate(() -> {
            try {
                dataFile.write(offset, data);
            } finally {
                data.release();
            }
            if (fua) {
                doFlush();
            }
        }, data);
    }

    @Override
    public CompletableFuture<Void> writeZeroes(long offset, long length, boolean fua) {
        return mutate(() -> {
            dataFile.zero(offset, length, true);
            if (fua) {
                doFlush();
            }
        }, null);
    }

    @Override
    public CompletableFuture<Void> trim(long offset, long length) {
        return mutate(() -> dataFile.zero(offset, length, false), null);
    }

    @Override
    public CompletableFuture<Void> flush() {
        return mutate(this::doFlush, null);
    }

    private interface Mutation {
        void run() throws IOException;
    }

    /** Runs a mutation on the writer thread; {@code owned} is released if it cannot run. */
    private CompletableFuture<Void> mutate(Mutation m, ByteBuf owned) {
        try {
            return CompletableFuture.runAsync(() -> {
                try {
                    if (closed) {
                        throw new NbdExportException(NbdError.ESHUTDOWN, "overlay " + overlayFile + " is closed");
                    }
                    m.run();
                } catch (IOException e) {
                    throw new CompletionException(e);
                }
            }, writer);
        } catch (RuntimeException rejected) {
            if (owned != null) {
                owned.release();
            }
            return CompletableFuture.failedFuture(new NbdExportException(NbdError.ESHUTDOWN,
                "overlay " + overlayFile + " is closed"));
        }
    }

    private void doFlush() throws IOException {
        channel.force(false);
        map.persist();
    }


    // ---- changes -------------------------------------------------------------------------------------------

    /** The ranges that differ from the base, in order, adjacent blocks of one kind merged. */
    public List<ChangedRange> changes() {
        List<ChangedRange> out = new ArrayList<>();
        for (OverlayBlockMap.Run r : map.runs(0, size)) {
            if (r.state() != BASE) {
                out.add(new ChangedRange(r.offset(), r.length(), r.state() == DATA ? ChangeKind.DATA
                    : ChangeKind.ZERO));
            }
        }
        return out;
    }

    /** Bytes in changed blocks. */
    public long changedBytes() {
        long n = 0;
        for (ChangedRange r : changes()) {
            n += r.length();
        }
        return n;
    }

    /** Persists the map (after syncing the data) and closes the overlay file; the base is not closed. */
    @Override
    public void close() throws IOException {
        CompletableFuture<Void> f;
        synchronized (writer) {
            if (closing) {
                return;
            }
            closing = true;
            f = CompletableFuture.runAsync(() -> {
                closed = true;
                try {
                    doFlush();
                } catch (IOException e) {
                    throw new CompletionException(e);
                }
            }, writer);
        }
        try {
            f.join();
        } catch (CompletionException e) {
            Throwable c = TransmissionHandler.unwrap(e);
            throw c instanceof IOException io ? io : new IOException(c);
        } finally {
            writer.shutdown();
            channel.close();
        }
    }

    /**
     * Closes the overlay (if still open) and deletes its data and map files: all changes are dropped. Call it once
     * no connection uses the overlay any more.
     */
    public void discard() throws IOException {
        map.markClean();
        synchronized (writer) {
            closing = true;
        }
        closed = true;
        writer.shutdown();
        channel.close();
        Files.deleteIfExists(map.file());
        Files.deleteIfExists(overlayFile);
        log.info("discarded overlay {}", overlayFile);
    }
}