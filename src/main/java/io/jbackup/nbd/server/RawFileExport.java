package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.Extent;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;

/**
 * An export of a raw image file through a {@link FileChannel}; blocking reads and writes run on an executor.
 *
 * <p><b>Zero detection</b> (on by default): {@code base:allocation} reads the range and reports all-zero blocks
 * of {@link #ZERO_GRANULARITY} bytes as {@code HOLE|ZERO}, so sparse-aware clients ({@code nbdcopy},
 * {@code qemu-img convert}) skip them; one call scans at most {@link #MAX_SCAN} bytes (the client asks again for
 * the rest). Reads of at least 64 KiB also send aligned all-zero 64 KiB blocks as holes. Java cannot ask the file
 * system for holes ({@code SEEK_HOLE}), so this costs a read of the scanned range, which is cheap for data
 * (the first bytes differ) and for file holes (the kernel supplies zero pages).
 *
 * <p><b>Read-only instances map the file</b> (in 1 GiB windows) and hand out read-only slices of the mapping:
 * data goes from the page cache to the socket with a single copy, and zero detection only touches the first bytes
 * of data blocks. A read whose pages are all resident ({@code mincore}) is answered on the calling thread; other
 * reads touch their pages on the I/O executor first, so the network thread does not wait for the disk. The file must not be truncated while it is served (reading a truncated mapping fails hard);
 * mappings are released by the garbage collector, never while a reply may still reference them. Writable
 * instances use positional {@code FileChannel} reads and writes. Instances are thread-safe; share one instance
 * between connections ({@link ForwardingExport#unclosable}) to share the mappings.
 *
 * <p>The size is fixed when the file is opened. A writable instance writes through to the file; FLUSH and FUA
 * call {@code fdatasync}; TRIM does nothing (allowed: trimmed contents are undefined); WRITE_ZEROES writes zeroes.
 * All instances of one file see each other's writes (one page cache), so multi-conn is advertised.
 */
public final class RawFileExport implements NbdExport {
    /** Block size of zero detection in {@code base:allocation}. */
    public static final int ZERO_GRANULARITY = 4096;
    /** Most bytes scanned by one {@code base:allocation} call. */
    public static final int MAX_SCAN = 64 << 20;
    private static final int READ_ZERO_BLOCK = 64 * 1024;
    private static final int SCAN_BUFFER = 1 << 20;
    private static final int WINDOW = 1 << 30;
    private static final int PAGE = 4096;

    private final String name;
    private final String description;
    private final Path file;
    private final FileChannel channel;
    private final long size;
    private final boolean readOnly;
    private final boolean detectZeroes;
    private final Executor io;
    private final ByteBufAllocator alloc;
    /** Read-only mappings of the file in windows of {@link #WINDOW} bytes, or null (FileChannel reads). */
    private final MappedByteBuffer[] windows;

    private RawFileExport(String name, String description, Path file, FileChannel channel, boolean readOnly,
                          boolean detectZeroes, Executor io, ByteBufAllocator alloc) throws IOException {
        this.name = name;
        this.description = description == null ? "" : description;
        this.file = file;
        this.channel = channel;
        this.size = channel.size();
        this.readOnly = readOnly;
        this.detectZeroes = detectZeroes;
        this.io = io;
        this.alloc = alloc;
        if (readOnly) {
            int n = (int) ((size + WINDOW - 1) / WINDOW);
            windows = new MappedByteBuffer[n];
            for (int i = 0; i < n; i++) {
                long start = (long) i * WINDOW;
                windows[i] = channel.map(FileChannel.MapMode.READ_ONLY, start, Math.min(WINDOW, size - start));
            }
        } else {
            windows = null;
        }
    }

    /** Opens {@code file} read-only with zero detection, on the shared {@link IoPool}. */
    public static RawFileExport open(Path file, String name, String description) throws IOException {
        return open(file, name, description, true, true, IoPool.shared(), PooledByteBufAllocator.DEFAULT);
    }

    /**
     * Opens {@code file}.
     *
     * @param readOnly     refuse writes (and open the file read-only)
     * @param detectZeroes report all-zero blocks as holes (see the class comment)
     * @param io           executor for the blocking file calls
     * @param alloc        allocator of read buffers (direct buffers are best)
     */
    public static RawFileExport open(Path file, String name, String description, boolean readOnly,
                                     boolean detectZeroes, Executor io, ByteBufAllocator alloc) throws IOException {
        FileChannel ch = readOnly ? FileChannel.open(file, StandardOpenOption.READ)
            : FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
        try {
            return new RawFileExport(name, description, file, ch, readOnly, detectZeroes, io, alloc);
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String description() {
        return description;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public boolean readOnly() {
        return readOnly;
    }

    @Override
    public boolean canMultiConn() {
        return true;
    }

    /** The image file. */
    public Path file() {
        return file;
    }

    @Override
    public CompletableFuture<ReadResult> read(long offset, int length) {
        if (windows != null) {
            if (resident(offset, length)) {
                // every page is in memory: no disk wait, so answer on the calling thread without two thread hops
                return CompletableFuture.completedFuture(mappedRead(offset, length));
            }
            return CompletableFuture.supplyAsync(() -> mappedRead(offset, length), io);
        }
        return CompletableFuture.supplyAsync(() -> {
            ByteBuf buf = alloc.directBuffer(length, length);
            try {
                readFully(buf, offset, length);
                return detectZeroes && length >= READ_ZERO_BLOCK ? split(buf, offset) : ReadResult.of(buf);
            } catch (IOException e) {
                buf.release();
                throw new java.util.concurrent.CompletionException(e);
            } catch (RuntimeException | Error e) {
                buf.release();
                throw e;
            }
        }, io);
    }

    private void readFully(ByteBuf buf, long offset, int length) throws IOException {
        ByteBuffer nio = buf.internalNioBuffer(buf.writerIndex(), length);
        long pos = offset;
        while (nio.hasRemaining()) {
            int n = channel.read(nio, pos);
            if (n < 0) {
                throw new EOFException(file + ": end of file at offset " + pos + " (the file shrank below "
                    + size + " bytes while being served)");
            }
            pos += n;
        }
        buf.writerIndex(buf.writerIndex() + length);
    }

    /** The mapped bytes {@code [offset, offset+length)} as a read-only buffer; {@code offset} is within one window. */
    private ByteBuffer mapped(long offset, int length) {
        return windows[(int) (offset / WINDOW)].slice((int) (offset % WINDOW), length);
    }

    /** Whether all pages of the range are in memory ({@code mincore}); reads of at most 1 MiB only. */
    private boolean resident(long offset, int length) {
        if (length > (1 << 20) || offset / WINDOW != (offset + length - 1) / WINDOW) {
            return false;
        }
        return ((MappedByteBuffer) mapped(offset, length)).isLoaded();
    }

    private ReadResult mappedRead(long offset, int length) {
        ReadResult.Builder b = ReadResult.builder();
        long pos = offset;
        long end = offset + length;
        while (pos < end) {
            int n = (int) Math.min(end - pos, WINDOW - pos % WINDOW);
            ByteBuffer slice = mapped(pos, n);
            int sum = 0;
            for (int i = 0; i < n; i += PAGE) {
                sum += slice.get(i); // fault the pages in here, not on the network thread
            }
            if (sum == 42) {
                Thread.onSpinWait();
            }
            if (detectZeroes && n >= READ_ZERO_BLOCK) {
                splitMapped(slice, pos, b);
            } else {
                b.addData(Unpooled.wrappedBuffer(slice));
            }
            pos += n;
        }
        return b.build();
    }

    /** Adds {@code slice} (at export offset {@code offset}) with aligned all-zero 64 KiB blocks as zero segments. */
    private static void splitMapped(ByteBuffer slice, long offset, ReadResult.Builder b) {
        int len = slice.remaining();
        int dataStart = 0;
        int i = (int) ((READ_ZERO_BLOCK - offset % READ_ZERO_BLOCK) % READ_ZERO_BLOCK);
        while (i + READ_ZERO_BLOCK <= len) {
            if (ZeroScan.isZero(slice, i, READ_ZERO_BLOCK)) {
                if (i > dataStart) {
                    b.addData(Unpooled.wrappedBuffer(slice.slice(dataStart, i - dataStart)));
                }
                b.addZeroes(READ_ZERO_BLOCK);
                dataStart = i + READ_ZERO_BLOCK;
            }
            i += READ_ZERO_BLOCK;
        }
        if (dataStart < len) {
            b.addData(Unpooled.wrappedBuffer(slice.slice(dataStart, len - dataStart)));
        }
    }

    /** Turns aligned all-zero 64 KiB blocks of a read into zero segments (releases or hands on {@code buf}). */
    private static ReadResult split(ByteBuf buf, long offset) {
        ByteBuffer nio = buf.nioBuffer();
        int len = buf.readableBytes();
        ReadResult.Builder b = ReadResult.builder();
        int dataStart = 0;
        int i = (int) ((READ_ZERO_BLOCK - offset % READ_ZERO_BLOCK) % READ_ZERO_BLOCK);
        boolean any = false;
        while (i + READ_ZERO_BLOCK <= len) {
            if (ZeroScan.isZero(nio, i, READ_ZERO_BLOCK)) {
                if (i > dataStart) {
                    b.addData(buf.retainedSlice(dataStart, i - dataStart));
                }
                b.addZeroes(READ_ZERO_BLOCK);
                dataStart = i + READ_ZERO_BLOCK;
                any = true;
            }
            i += READ_ZERO_BLOCK;
        }
        if (!any) {
            return ReadResult.of(buf);
        }
        if (dataStart < len) {
            b.addData(buf.retainedSlice(dataStart, len - dataStart));
        }
        buf.release();
        return b.build();
    }

    @Override
    public CompletableFuture<List<Extent>> allocation(long offset, long length) {
        if (!detectZeroes) {
            return NbdExport.super.allocation(offset, length);
        }
        if (windows != null) {
            return CompletableFuture.supplyAsync(() -> {
                List<Extent> out = new ArrayList<>();
                long pos = offset;
                long end = offset + Math.min(length, MAX_SCAN);
                while (pos < end) {
                    int n = (int) Math.min(end - pos, WINDOW - pos % WINDOW);
                    ZeroScan.extents(mapped(pos, n), 0, n, pos, ZERO_GRANULARITY, out);
                    pos += n;
                }
                return out;
            }, io);
        }
        return CompletableFuture.supplyAsync(() -> {
            long scan = Math.min(length, MAX_SCAN);
            List<Extent> out = new ArrayList<>();
            ByteBuf buf = alloc.directBuffer(SCAN_BUFFER, SCAN_BUFFER);
            try {
                long pos = offset;
                long end = offset + scan;
                while (pos < end) {
                    int n = (int) Math.min(SCAN_BUFFER, end - pos);
                    buf.clear();
                    readFully(buf, pos, n);
                    ZeroScan.extents(buf.nioBuffer(0, n), 0, n, pos, ZERO_GRANULARITY, out);
                    pos += n;
                }
                return out;
            } catch (IOException e) {
                throw new java.util.concurrent.CompletionException(e);
            } finally {
                buf.release();
            }
        }, io);
    }

    @Override
    public CompletableFuture<Void> write(long offset, ByteBuf data, boolean fua) {
        return runIo(() -> {
            try {
                ByteBuffer nio = data.nioBuffer();
                long pos = offset;
                while (nio.hasRemaining()) {
                    pos += channel.write(nio, pos);
                }
            } finally {
                data.release();
            }
        }, fua);
    }

    @Override
    public CompletableFuture<Void> writeZeroes(long offset, long length, boolean fua) {
        return runIo(() -> {
            ByteBuffer zeroes = ByteBuffer.allocateDirect((int) Math.min(length, SCAN_BUFFER));
            long pos = offset;
            long end = offset + length;
            while (pos < end) {
                zeroes.clear().limit((int) Math.min(zeroes.capacity(), end - pos));
                while (zeroes.hasRemaining()) {
                    pos += channel.write(zeroes, pos);
                }
            }
        }, fua);
    }

    private interface IoAction {
        void run() throws IOException;
    }

    /** Runs blocking file I/O on the executor, then {@code fdatasync} if {@code sync}. */
    private CompletableFuture<Void> runIo(IoAction action, boolean sync) {
        return CompletableFuture.runAsync(() -> {
            try {
                action.run();
                if (sync) {
                    channel.force(false);
                }
            } catch (IOException e) {
                throw new java.util.concurrent.CompletionException(e);
            }
        }, io);
    }

    @Override
    public CompletableFuture<Void> trim(long offset, long length) {
        return CompletableFuture.completedFuture(null);
    }

    @Override
    public CompletableFuture<Void> flush() {
        if (readOnly) {
            return CompletableFuture.completedFuture(null);
        }
        return runIo(() -> { }, true);
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
