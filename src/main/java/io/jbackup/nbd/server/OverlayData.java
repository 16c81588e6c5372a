package io.jbackup.nbd.server;

import static io.jbackup.nbd.server.OverlayBlockMap.BASE;
import static io.jbackup.nbd.server.OverlayBlockMap.DATA;
import static io.jbackup.nbd.server.OverlayBlockMap.ZERO;

import io.netty.buffer.ByteBuf;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.util.concurrent.CompletionException;

/**
 * The data file of an {@link OverlayExport} and copy-on-write into it: the file holds written blocks at the
 * export's offsets (sparse: only written blocks take space), and {@link #write} and {@link #zero} change it and the
 * {@link OverlayBlockMap} block by block. A write covering whole blocks writes them to the file and marks them DATA;
 * a write covering part of a block that is not DATA yet first copies that one block from the base (or zeroes) into
 * the file - read-modify-write never touches more than the two edge blocks of a request. Blocks are written to the
 * file before their state changes, so a concurrent {@link #read} of another part of the block sees either the base
 * or the merged block, never a half-written one. {@link #write} and {@link #zero} run on one thread at a time (the
 * overlay's writer); {@link #read} may run on any thread.
 */
final class OverlayData {
    private final Path overlayFile;
    private final FileChannel channel;
    private final NbdExport base;
    private final OverlayBlockMap map;
    private final long size;
    private final long blocks;
    private final int blockShift;

    OverlayData(Path overlayFile, FileChannel channel, NbdExport base, OverlayBlockMap map, long size) {
        this.overlayFile = overlayFile;
        this.channel = channel;
        this.base = base;
        this.map = map;
        this.size = size;
        this.blocks = map.blocks();
        this.blockShift = map.blockShift();
    }

    private long blockStart(long b) {
        return b << blockShift;
    }

    private long blockEnd(long b) {
        return Math.min(size, (b + 1) << blockShift);
    }

    /** Writes {@code data} at {@code offset}: edge blocks by read-modify-write, whole blocks directly. */
    void write(long offset, ByteBuf data) throws IOException {
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
                map.mark(b, lastWhole - b, DATA);
                pos = spanEnd;
                continue;
            }
            long stop = Math.min(end, be);
            patchBlock(b, pos, data.nioBuffer(base0 + (int) (pos - offset), (int) (stop - pos)));
            pos = stop;
        }
    }

    /** Zeroes {@code [offset, offset+length)}; edge blocks are rewritten only if {@code partial} (WRITE_ZEROES). */
    void zero(long offset, long length, boolean partial) throws IOException {
        long end = offset + length;
        long pos = offset;
        while (pos < end) {
            long b = pos >>> blockShift;
            long bs = blockStart(b);
            long be = blockEnd(b);
            if (pos == bs && end >= be) {
                long lastWhole = end >= size ? blocks : (end >>> blockShift);
                map.mark(b, lastWhole - b, ZERO);
                pos = Math.min(size, lastWhole << blockShift);
                continue;
            }
            long stop = Math.min(end, be);
            if (partial && map.state(b) != ZERO) {
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
        if (map.state(b) == DATA) {
            writeFile(part, pos);
            return;
        }
        long bs = blockStart(b);
        ByteBuffer block = blockContent(b);
        block.position((int) (pos - bs));
        block.put(part);
        block.clear();
        writeFile(block, bs);
        map.mark(b, 1, DATA);
    }

    /** The current content of block {@code b} (for read-modify-write). */
    private ByteBuffer blockContent(long b) throws IOException {
        long bs = blockStart(b);
        int len = (int) (blockEnd(b) - bs);
        ByteBuffer block = ByteBuffer.allocate(len);
        byte st = map.state(b);
        if (st == DATA) {
            read(block, bs);
        } else if (st == BASE) {
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

    void read(ByteBuffer dst, long offset) throws IOException {
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
}
