package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * Finds all-zero blocks in memory with {@link ByteBuffer#mismatch} (vectorised by the JVM): a data block usually
 * differs in its first bytes, so scanning data is cheap and only zero blocks are read in full.
 */
final class ZeroScan {
    /** {@code HOLE|ZERO}: the base:allocation status of a zero region. */
    static final int ZERO_FLAGS = NbdConstants.STATE_HOLE | NbdConstants.STATE_ZERO;

    private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(64 * 1024).asReadOnlyBuffer();

    private ZeroScan() {
    }

    /** Whether {@code len} bytes of {@code buf} from absolute index {@code pos} are all zero. */
    static boolean isZero(ByteBuffer buf, int pos, int len) {
        while (len > 0) {
            int n = Math.min(len, ZEROES.capacity());
            if (buf.slice(pos, n).mismatch(ZEROES.slice(0, n)) != -1) {
                return false;
            }
            pos += n;
            len -= n;
        }
        return true;
    }

    /**
     * Index of the first nonzero byte of {@code buf} in {@code [from, to)} (absolute indexes), or -1 if all zero.
     */
    static int firstNonZero(ByteBuffer buf, int from, int to) {
        int pos = from;
        while (pos < to) {
            int n = Math.min(to - pos, ZEROES.capacity());
            int m = buf.slice(pos, n).mismatch(ZEROES.slice(0, n));
            if (m >= 0) {
                return pos + m;
            }
            pos += n;
        }
        return -1;
    }

    /**
     * Appends base:allocation extents for {@code len} bytes of {@code buf} (from index {@code pos}) that sit at
     * export offset {@code offset}: blocks of {@code granularity} bytes (a power of two, aligned to the export
     * offset, the first and last possibly short) are {@code HOLE|ZERO} if all zero, else data; neighbours with
     * equal status are merged, also with the last extent already in {@code out}. A data block is usually
     * recognised by its first word; runs of zero blocks are scanned with one vectorised comparison per 64 KiB.
     */
    static void extents(ByteBuffer buf, int pos, int len, long offset, int granularity, List<Extent> out) {
        int i = 0;
        while (i < len) {
            long at = offset + i;
            int n = (int) Math.min(len - i, granularity - (at & (granularity - 1)));
            if (n >= 8 && buf.getLong(pos + i) != 0) {
                append(out, at, n, 0);
                i += n;
                continue;
            }
            int nz = firstNonZero(buf, pos + i, pos + len);
            int zeroEnd;
            if (nz < 0) {
                zeroEnd = len;
            } else {
                int rel = nz - pos;
                zeroEnd = (int) (((offset + rel) & -granularity) - offset); // start of the block holding nz
            }
            if (zeroEnd > i) {
                append(out, at, zeroEnd - i, ZERO_FLAGS);
                i = zeroEnd;
            } else {
                append(out, at, n, 0);
                i += n;
            }
        }
    }

    /** Appends an extent, merging it into the last one if adjacent with equal flags. */
    static void append(List<Extent> out, long offset, long length, int flags) {
        int last = out.size() - 1;
        if (last >= 0) {
            Extent p = out.get(last);
            if (p.flags() == flags && p.end() == offset) {
                out.set(last, new Extent(p.offset(), p.length() + length, flags));
                return;
            }
        }
        out.add(new Extent(offset, length, flags));
    }
}
