package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.Extent;

import java.util.ArrayList;
import java.util.List;

/**
 * Block-status extents of an image made of fixed-size chunks, from a per-chunk test: runs of chunks where the test
 * holds get one status, the others 0. One call produces at most {@link #MAX_EXTENTS} extents and looks at no more
 * than {@link #MAX_SCAN} chunks: with extended headers one request may span the whole export, a reply may cover less
 * than asked ({@code doc/proto.md}), and the network thread must not stall on one request. Callers continue from
 * where the last extent ends.
 */
public final class ChunkRuns {
    /** Extents per call, at most. */
    public static final int MAX_EXTENTS = 65536;
    /** Chunks looked at per call, at most (1 TiB of 1 MiB chunks). */
    public static final long MAX_SCAN = 1 << 20;

    private ChunkRuns() {
    }

    /** Whether a chunk index has the status. */
    @FunctionalInterface
    public interface ChunkTest {
        boolean test(long index);
    }

    /**
     * Runs of {@code [offset, offset + length)}, clipped to {@code size}: status {@code flag} where {@code set}
     * holds, 0 elsewhere; the last run ends early when a limit is reached.
     */
    public static List<Extent> of(long size, int chunkSize, long offset, long length, ChunkTest set, int flag) {
        long end = Math.min(size, offset + length);
        List<Extent> out = new ArrayList<>();
        long pos = offset;
        long scanned = 0;
        while (pos < end && out.size() < MAX_EXTENTS && scanned < MAX_SCAN) {
            long idx = pos / chunkSize;
            boolean on = set.test(idx);
            scanned++;
            long runEnd = Math.min(end, (idx + 1) * chunkSize);
            while (runEnd < end && scanned < MAX_SCAN && set.test(runEnd / chunkSize) == on) {
                runEnd = Math.min(end, (runEnd / chunkSize + 1) * chunkSize);
                scanned++;
            }
            out.add(new Extent(pos, runEnd - pos, on ? flag : 0));
            pos = runEnd;
        }
        return out;
    }
}
