package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.Extent;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * An export backed by a byte array (tests, small scratch disks). Operations complete at once on the calling
 * thread. {@code base:allocation} reports all-zero 4 KiB blocks as {@code HOLE|ZERO}. Instances are thread-safe;
 * one instance may be shared by several connections.
 */
public final class MemoryExport implements NbdExport {
    private static final int GRANULARITY = 4096;

    private final String name;
    private final String description;
    private final byte[] data;
    private final boolean readOnly;

    /** Serves {@code data} itself (not a copy): writes change the array. */
    public MemoryExport(String name, String description, byte[] data, boolean readOnly) {
        this.name = name;
        this.description = description == null ? "" : description;
        this.data = data;
        this.readOnly = readOnly;
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
        return data.length;
    }

    @Override
    public boolean readOnly() {
        return readOnly;
    }

    @Override
    public boolean canMultiConn() {
        return true;
    }

    /** The backing array. */
    public byte[] data() {
        return data;
    }

    @Override
    public synchronized CompletableFuture<ReadResult> read(long offset, int length) {
        return CompletableFuture.completedFuture(ReadResult.of(Unpooled.copiedBuffer(data, (int) offset, length)));
    }

    @Override
    public synchronized CompletableFuture<List<Extent>> allocation(long offset, long length) {
        List<Extent> out = new ArrayList<>();
        ZeroScan.extents(ByteBuffer.wrap(data), (int) offset, (int) length, offset, GRANULARITY, out);
        return CompletableFuture.completedFuture(out);
    }

    @Override
    public CompletableFuture<Void> write(long offset, ByteBuf buf, boolean fua) {
        try {
            synchronized (this) {
                buf.getBytes(buf.readerIndex(), data, (int) offset, buf.readableBytes());
            }
            return CompletableFuture.completedFuture(null);
        } finally {
            buf.release();
        }
    }

    @Override
    public synchronized CompletableFuture<Void> writeZeroes(long offset, long length, boolean fua) {
        java.util.Arrays.fill(data, (int) offset, (int) (offset + length), (byte) 0);
        return CompletableFuture.completedFuture(null);
    }

    @Override
    public CompletableFuture<Void> trim(long offset, long length) {
        return writeZeroes(offset, length, false);
    }
}
