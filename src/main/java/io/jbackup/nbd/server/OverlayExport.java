package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdError;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A writable copy-on-write view of a read-only export: writes go to a sparse local file of the export's size in
 * blocks of {@code blockSize} bytes (4 KiB by default); reads, block status and {@link #changes()} merge the
 * overlay with the base. The base is never written.
 *
 * <p><b>Block states.</b> Each block is BASE (read from the base), DATA (read from the overlay file) or ZERO (reads
 * as zeroes, after WRITE_ZEROES or TRIM of the whole block). A write covering whole blocks writes them to the file
 * and marks them DATA; a write covering part of a block that is not DATA yet first copies that one block from the
 * base (or zeroes) into the file - read-modify-write never touches more than the two edge blocks of a request.
 * Blocks are written to the file before their state changes, so a concurrent read of another part of the block
 * sees either the base or the merged block, never a half-written one. Writes, zeroing, trim and flush run one at
 * a time on a thread of the overlay; reads run concurrently on the I/O executor.
 *
 * <p><b>Files.</b> {@code overlayFile} holds the data at the export's offsets (sparse: only written blocks take
 * space). The sidecar map {@code overlayFile + ".map"} records the block states; it is replaced atomically (write
 * to {@code .map.tmp}, fsync, rename, fsync directory) on FLUSH, FUA writes and close, after the data file was
 * synced, so a map never refers to data that is not on disk. Writes acknowledged but not flushed before a crash
 * are lost, as on a disk with a volatile cache. Map format (big-endian):
 * <pre>
 *   magic     8  "JBOVLMAP"
 *   version   4  1
 *   blockSize 4  bytes per block (power of two)
 *   size      8  export size in bytes
 *   runs      4  number of runs that follow
 *   runs x { firstBlock 8, blockCount 8, state 1 (1 = DATA, 2 = ZERO) }   sorted, non-overlapping
 *   crc32c    4  of every byte before it
 * </pre>
 * Reopening with the same files continues where the last persisted map left off; {@link #discard()} deletes both.
 */
public final class OverlayExport implements NbdExport {
    private static final Logger log = LoggerFactory.getLogger(OverlayExport.class);

    /** Default block size of the overlay. */
    public static final int DEFAULT_BLOCK_SIZE = 4096;
    private static final byte[] MAGIC = {'J', 'B', 'O', 'V', 'L', 'M', 'A', 'P'};
    private static final int VERSION = 1;
    private static final byte STATE_BASE = 0;
    private static final byte STATE_DATA = 1;
    private static final byte STATE_ZERO = 2;

    /** What a changed range holds now. */
    public enum ChangeKind { DATA, ZERO }

    /** A run of blocks that differs from the base: written data, or zeroes. */
    public record ChangedRange(long offset, long length, ChangeKind kind) {
    }

    private final NbdExport base;
    private final Path overlayFile;
    private final Path mapFile;
    private final FileChannel channel;
    private final int blockSize;
    private final int blockShift;
    private final long size;
    private final long blocks;
    private final Executor io;
    private final ExecutorService writer;
    private final ByteBufAllocator alloc = PooledByteBufAllocator.DEFAULT;
    /** Bit set: block holds data in the overlay file. Guarded by {@code this}. */
    private final long[] dataBits;
    /** Bit set: block reads as zero. Guarded by {@code this}. */
    private final long[] zeroBits;
    private boolean mapDirty;
    /** Set on the writer thread by the close task: later mutations fail. */
    private volatile boolean closed;
    /** Guarded by {@code writer}. */
    private boolean closing;

    private OverlayExport(NbdExport base, Path overlayFile, FileChannel channel, int blockSize, Executor io) {
        this.base = base;
        this.overlayFile = overlayFile;
        this.mapFile = mapFileOf(overlayFile);
        this.channel = channel;
        this.blockSize = blockSize;
        this.blockShift = Integer.numberOfTrailingZeros(blockSize);
        this.size = base.size();
        this.blocks = (size + blockSize - 1) >>> blockShift;
        if (blocks > (long) Integer.MAX_VALUE * 64) {
            throw new IllegalArgumentException("export of " + size + " bytes has too many blocks of " + blockSize);
        }
        int words = (int) ((blocks + 63) >>> 6);
        this.dataBits = new long[words];
        this.zeroBits = new long[words];
        this.io = io;
        this.writer = Executors.newSingleThreadExecutor(new DefaultThreadFactory("nbd-overlay-writer", true));
    }

    /** The sidecar map file of an overlay file. */
    public static Path mapFileOf(Path overlayFile) {
        return overlayFile.resolveSibling(overlayFile.getFileName() + ".map");
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
                o.loadMap();
                if (ch.size() != o.size) {
                    throw new IOException("overlay file " + overlayFile + " has " + ch.size() + " bytes but the export has "
                        + o.size + "; it belongs to another image: discard it or use another path");
                }
                log.info("reopened overlay {} of export '{}': {} bytes changed", overlayFile, base.name(),
                    o.changedBytes());
            } else {
                ch.truncate(0);
                writeSparseSize(ch, o.size);
                o.mapDirty = true;
                o.persistMap();
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

    /** A run of blocks in one state, in bytes (clipped to the export size). */
    private record Run(long offset, long length, byte state) {
        long end() {
            return offset + length;
        }
    }

    private synchronized byte state(long block) {
        int w = (int) (block >>> 6);
        long bit = 1L << (block & 63);
        return (dataBits[w] & bit) != 0 ? STATE_DATA : (zeroBits[w] & bit) != 0 ? STATE_ZERO : STATE_BASE;
    }

    /** Sets blocks {@code [firstBlock, firstBlock+count)} to {@code state}, a 64-bit word at a time. */
    private synchronized void mark(long firstBlock, long count, byte state) {
        long b = firstBlock;
        long end = firstBlock + count;
        while (b < end) {
            int w = (int) (b >>> 6);
            int from = (int) (b & 63);
            int to = (int) Math.min(64, from + (end - b));
            long mask = (to == 64 ? -1L : (1L << to) - 1) & (-1L << from);
            dataBits[w] = state == STATE_DATA ? dataBits[w] | mask : dataBits[w] & ~mask;
            zeroBits[w] = state == STATE_ZERO ? zeroBits[w] | mask : zeroBits[w] & ~mask;
            b += to - from;
        }
        mapDirty = true;
    }

    /** Bits of word {@code w} whose block is in {@code state}. */
    private long inState(int w, byte state) {
        return switch (state) {
            case STATE_DATA -> dataBits[w];
            case STATE_ZERO -> zeroBits[w];
            default -> ~(dataBits[w] | zeroBits[w]);
        };
    }

    /** The first block at or after {@code b} not in {@code state}, or {@code limit}. */
    private synchronized long runEnd(long b, byte state, long limit) {
        int w = (int) (b >>> 6);
        long other = ~inState(w, state) & (-1L << (b & 63));
        while (other == 0) {
            w++;
            if (((long) w << 6) >= limit) {
                return limit;
            }
            other = ~inState(w, state);
        }
        return Math.min(limit, ((long) w << 6) + Long.numberOfTrailingZeros(other));
    }

    /** The block-state runs overlapping {@code [offset, offset+length)}, clipped to it. */
    private synchronized List<Run> runs(long offset, long length) {
        List<Run> out = new ArrayList<>();
        long end = offset + length;
        long lastBlock = (end - 1) >>> blockShift;
        long b = offset >>> blockShift;
        long pos = offset;
        while (pos < end) {
            byte st = state(b);
            long b2 = runEnd(b, st, lastBlock + 1);
            long stop = Math.min(end, b2 << blockShift);
            out.add(new Run(pos, stop - pos, st));
            pos = stop;
            b = b2;
        }
        return out;
    }

    @Override
    public CompletableFuture<ReadResult> read(long offset, int length) {
        List<Run> runs = runs(offset, length);
        List<CompletableFuture<ReadResult>> parts = new ArrayList<>(runs.size());
        for (Run r : runs) {
            switch (r.state()) {
                case STATE_BASE -> parts.add(base.read(r.offset(), (int) r.length()));
                case STATE_ZERO -> parts.add(CompletableFuture.completedFuture(ReadResult.zeroes((int) r.length())));
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
            readFile(buf.internalNioBuffer(0, length), offset);
            buf.writerIndex(length);
            return ReadResult.of(buf);
        } catch (IOException e) {
            buf.release();
            throw new CompletionException(e);
        }
    }

    private void readFile(ByteBuffer dst, long offset) throws IOException {
        long pos = offset;
        while (dst.hasRemaining()) {
            int n = channel.read(dst, pos);
            if (n < 0) {
                throw new EOFException("overlay file " + overlayFile + " ends at " + pos + " (expected " + size
                    + " bytes)");
            }
            pos += n;
        }
    }

    @Override
    public CompletableFuture<List<Extent>> allocation(long offset, long length) {
        List<Run> runs = runs(offset, length);
        List<Extent> out = new ArrayList<>();
        CompletableFuture<List<Extent>> f = CompletableFuture.completedFuture(out);
        for (Run r : runs) {
            f = f.thenCompose(acc -> {
                if (!acc.isEmpty() && acc.get(acc.size() - 1).end() < r.offset()) {
                    return CompletableFuture.completedFuture(acc); // the base answered short: stop there
                }
                if (r.state() == STATE_DATA) {
                    ZeroScan.append(acc, r.offset(), r.length(), 0);
                    return CompletableFuture.completedFuture(acc);
                }
                if (r.state() == STATE_ZERO) {
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
                doWrite(offset, data);
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
            doZero(offset, length, true);
            if (fua) {
                doFlush();
            }
        }, null);
    }

    @Override
    public CompletableFuture<Void> trim(long offset, long length) {
        return mutate(() -> doZero(offset, length, false), null);
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

    private long blockStart(long b) {
        return b << blockShift;
    }

    private long blockEnd(long b) {
        return Math.min(size, (b + 1) << blockShift);
    }

    /** Writes {@code data} at {@code offset}: edge blocks by read-modify-write, whole blocks directly. */
    private void doWrite(long offset, ByteBuf data) throws IOException {
        long end = offset + data.readableBytes();
        int base0 = data.readerIndex();
        long pos = offset;
        while (pos < end) {
            long b = pos >>> blockShift;
            long bs = blockStart(b);
            long be = blockEnd(b);
            if (pos == bs && end >= be) {
                // a span of whole blocks
                long lastWhole = end >= size ? blocks : (end >>> blockShift);
                long spanEnd = Math.min(size, lastWhole << blockShift);
                ByteBuffer src = data.nioBuffer(base0 + (int) (pos - offset), (int) (spanEnd - pos));
                writeFile(src, pos);
                mark(b, lastWhole - b, STATE_DATA);
                pos = spanEnd;
                continue;
            }
            long stop = Math.min(end, be);
            patchBlock(b, pos, data.nioBuffer(base0 + (int) (pos - offset), (int) (stop - pos)));
            pos = stop;
        }
    }

    /** Zeroes {@code [offset, offset+length)}; edge blocks are rewritten only if {@code partial} (WRITE_ZEROES). */
    private void doZero(long offset, long length, boolean partial) throws IOException {
        long end = offset + length;
        long pos = offset;
        while (pos < end) {
            long b = pos >>> blockShift;
            long bs = blockStart(b);
            long be = blockEnd(b);
            if (pos == bs && end >= be) {
                long lastWhole = end >= size ? blocks : (end >>> blockShift);
                mark(b, lastWhole - b, STATE_ZERO);
                pos = Math.min(size, lastWhole << blockShift);
                continue;
            }
            long stop = Math.min(end, be);
            if (partial && state(b) != STATE_ZERO) {
                patchBlock(b, pos, ByteBuffer.allocate((int) (stop - pos)));
            }
            pos = stop;
        }
    }

    /**
     * Writes {@code part} at export offset {@code pos} inside block {@code b}: straight into the file if the block
     * is DATA already, else by writing the whole block (its current content with {@code part} on top) and then
     * marking it DATA.
     */
    private void patchBlock(long b, long pos, ByteBuffer part) throws IOException {
        if (state(b) == STATE_DATA) {
            writeFile(part, pos);
            return;
        }
        long bs = blockStart(b);
        ByteBuffer block = blockContent(b);
        block.position((int) (pos - bs));
        block.put(part);
        block.clear();
        writeFile(block, bs);
        mark(b, 1, STATE_DATA);
    }

    /** The current content of block {@code b} (for read-modify-write). */
    private ByteBuffer blockContent(long b) throws IOException {
        long bs = blockStart(b);
        int len = (int) (blockEnd(b) - bs);
        ByteBuffer block = ByteBuffer.allocate(len);
        byte st = state(b);
        if (st == STATE_DATA) {
            readFile(block, bs);
        } else if (st == STATE_BASE) {
            ReadResult r;
            try {
                r = base.read(bs, len).join();
            } catch (CompletionException e) {
                Throwable c = TransmissionHandler.unwrap(e);
                throw c instanceof IOException io ? io : new IOException("reading block " + b + " of the base: " + c, c);
            }
            try {
                if (r.length() != len) {
                    throw new IOException("base export returned " + r.length() + " bytes for a read of " + len);
                }
                for (ReadResult.Segment s : r.segments()) {
                    if (s instanceof ReadResult.Data d) {
                        d.buf().getBytes(d.buf().readerIndex(), block.array(), block.position(), s.length());
                    }
                    block.position(block.position() + s.length());
                }
            } finally {
                r.release();
            }
        }
        block.clear();
        return block;
    }

    private void writeFile(ByteBuffer src, long offset) throws IOException {
        long pos = offset;
        while (src.hasRemaining()) {
            pos += channel.write(src, pos);
        }
    }

    private void doFlush() throws IOException {
        channel.force(false);
        persistMap();
    }

    // ---- map file ------------------------------------------------------------------------------------------

    private void persistMap() throws IOException {
        byte[] bytes;
        synchronized (this) {
            if (!mapDirty) {
                return;
            }
            bytes = encodeMap();
            mapDirty = false;
        }
        Path tmp = mapFile.resolveSibling(mapFile.getFileName() + ".tmp");
        try (FileChannel out = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
            StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer b = ByteBuffer.wrap(bytes);
            while (b.hasRemaining()) {
                out.write(b);
            }
            out.force(true);
        } catch (IOException e) {
            synchronized (this) {
                mapDirty = true;
            }
            throw e;
        }
        try {
            Files.move(tmp, mapFile, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, mapFile, StandardCopyOption.REPLACE_EXISTING);
        }
        Path dir = mapFile.toAbsolutePath().getParent();
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException e) {
            log.debug("cannot fsync directory {}: {}", dir, e.toString());
        }
    }

    private synchronized byte[] encodeMap() throws IOException {
        List<long[]> runs = new ArrayList<>();
        long b = 0;
        while (b < blocks) {
            byte st = state(b);
            long b2 = runEnd(b, st, blocks);
            if (st != STATE_BASE) {
                runs.add(new long[] {b, b2 - b, st});
            }
            b = b2;
        }
        ByteArrayOutputStream bos = new ByteArrayOutputStream(32 + 17 * runs.size());
        DataOutputStream out = new DataOutputStream(bos);
        out.write(MAGIC);
        out.writeInt(VERSION);
        out.writeInt(blockSize);
        out.writeLong(size);
        out.writeInt(runs.size());
        for (long[] r : runs) {
            out.writeLong(r[0]);
            out.writeLong(r[1]);
            out.writeByte((int) r[2]);
        }
        CRC32C crc = new CRC32C();
        crc.update(bos.toByteArray());
        out.writeInt((int) crc.getValue());
        out.flush();
        return bos.toByteArray();
    }

    private void loadMap() throws IOException {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(mapFile);
        } catch (NoSuchFileException e) {
            throw new IOException("overlay map " + mapFile + " is missing", e);
        }
        String where = "overlay map " + mapFile;
        if (bytes.length < 32) {
            throw new IOException(where + " is truncated (" + bytes.length + " bytes)");
        }
        CRC32C crc = new CRC32C();
        crc.update(bytes, 0, bytes.length - 4);
        int stored = ByteBuffer.wrap(bytes, bytes.length - 4, 4).getInt();
        if ((int) crc.getValue() != stored) {
            throw new IOException(where + " is corrupt (checksum mismatch); discard the overlay to start over");
        }
        DataInputStream in = new DataInputStream(new java.io.ByteArrayInputStream(bytes, 0, bytes.length - 4));
        byte[] magic = in.readNBytes(8);
        if (!java.util.Arrays.equals(magic, MAGIC)) {
            throw new IOException(where + " is not an overlay map (bad magic)");
        }
        int version = in.readInt();
        if (version != VERSION) {
            throw new IOException(where + " has version " + version + " (expected " + VERSION + ")");
        }
        int bs = in.readInt();
        long sz = in.readLong();
        if (bs != blockSize || sz != size) {
            throw new IOException(where + " is for block size " + bs + " and size " + sz + ", but the export has size "
                + size + " and the overlay block size is " + blockSize + "; it belongs to another image");
        }
        int count = in.readInt();
        if (count < 0 || (long) count * 17 != bytes.length - 4 - 28) {
            throw new IOException(where + ": " + count + " runs do not match its length " + bytes.length);
        }
        long prevEnd = 0;
        for (int i = 0; i < count; i++) {
            long first = in.readLong();
            long n = in.readLong();
            byte st = in.readByte();
            if (first < prevEnd || n <= 0 || first + n > blocks || (st != STATE_DATA && st != STATE_ZERO)) {
                throw new IOException(where + ": run " + i + " (block " + first + ", " + n + " blocks, state " + st
                    + ") is out of order or beyond " + blocks + " blocks");
            }
            mark(first, n, st);
            prevEnd = first + n;
        }
        synchronized (this) {
            mapDirty = false;
        }
    }

    // ---- changes -------------------------------------------------------------------------------------------

    /** The ranges that differ from the base, in order, adjacent blocks of one kind merged. */
    public synchronized List<ChangedRange> changes() {
        List<ChangedRange> out = new ArrayList<>();
        for (Run r : runs(0, size)) {
            if (r.state() != STATE_BASE) {
                out.add(new ChangedRange(r.offset(), r.length(), r.state() == STATE_DATA ? ChangeKind.DATA
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
        synchronized (this) {
            mapDirty = false;
        }
        synchronized (writer) {
            closing = true;
        }
        closed = true;
        writer.shutdown();
        channel.close();
        Files.deleteIfExists(mapFile);
        Files.deleteIfExists(overlayFile);
        log.info("discarded overlay {}", overlayFile);
    }
}
