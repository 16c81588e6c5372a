package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.Extent;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * A read-only test export of {@code size} bytes: configured zero ranges read as zero and are reported as
 * {@code HOLE|ZERO} (and sent as OFFSET_HOLE); everything else is deterministic pseudo-random data that depends
 * only on the offset. {@link #writeReference} writes the same content to a file for SHA-256 comparisons.
 */
final class SparseTestExport implements NbdExport {
    private final String name;
    private final long size;
    private final List<Extent> zeroRanges;
    private final Map<String, ExtentSource> contexts;

    /** @param zeroRanges sorted, non-overlapping ranges that read as zero (flags ignored) */
    SparseTestExport(String name, long size, List<Extent> zeroRanges, Map<String, ExtentSource> contexts) {
        this.name = name;
        this.size = size;
        this.zeroRanges = List.copyOf(zeroRanges);
        this.contexts = contexts;
    }

    /** The byte at {@code offset} outside zero ranges (never 0, so data never looks like a hole). */
    static byte dataByte(long offset) {
        long x = (offset >>> 3) * 0x9E3779B97F4A7C15L;
        x ^= x >>> 29;
        int b = (int) (x >>> (8 * (offset & 7))) & 0xff;
        return (byte) (b == 0 ? 1 : b);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String description() {
        return "sparse test export of " + size + " bytes";
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public boolean readOnly() {
        return true;
    }

    @Override
    public Map<String, ExtentSource> metaContexts() {
        return contexts;
    }

    /** Extents of the whole export: zero ranges as HOLE|ZERO, the rest as data. */
    List<Extent> map() {
        List<Extent> out = new ArrayList<>();
        long pos = 0;
        for (Extent z : zeroRanges) {
            if (z.offset() > pos) {
                out.add(new Extent(pos, z.offset() - pos, 0));
            }
            out.add(new Extent(z.offset(), z.length(), ZeroScan.ZERO_FLAGS));
            pos = z.end();
        }
        if (pos < size) {
            out.add(new Extent(pos, size - pos, 0));
        }
        return out;
    }

    @Override
    public CompletableFuture<ReadResult> read(long offset, int length) {
        ReadResult.Builder b = ReadResult.builder();
        long end = offset + length;
        for (Extent e : map()) {
            long s = Math.max(e.offset(), offset);
            long t = Math.min(e.end(), end);
            if (s >= t) {
                continue;
            }
            if (e.flags() != 0) {
                b.addZeroes((int) (t - s));
            } else {
                ByteBuf buf = Unpooled.buffer((int) (t - s));
                for (long o = s; o < t; o++) {
                    buf.writeByte(dataByte(o));
                }
                b.addData(buf);
            }
        }
        return CompletableFuture.completedFuture(b.build());
    }

    @Override
    public CompletableFuture<List<Extent>> allocation(long offset, long length) {
        List<Extent> out = new ArrayList<>();
        for (Extent e : map()) {
            if (e.end() > offset && e.offset() < offset + length) {
                long s = Math.max(e.offset(), offset);
                out.add(new Extent(s, e.end() - s, e.flags()));
            }
        }
        return CompletableFuture.completedFuture(out);
    }

    /** Writes the export's content to {@code file} (zero ranges as file holes). */
    void writeReference(Path file) throws IOException {
        try (OutputStream out = Files.newOutputStream(file)) {
            byte[] chunk = new byte[1 << 16];
            for (long pos = 0; pos < size; ) {
                int n = (int) Math.min(chunk.length, size - pos);
                ReadResult r = read(pos, n).join();
                int i = 0;
                for (ReadResult.Segment s : r.segments()) {
                    if (s instanceof ReadResult.Data d) {
                        d.buf().getBytes(d.buf().readerIndex(), chunk, i, s.length());
                    } else {
                        java.util.Arrays.fill(chunk, i, i + s.length(), (byte) 0);
                    }
                    i += s.length();
                }
                r.release();
                out.write(chunk, 0, n);
                pos += n;
            }
        }
    }
}
