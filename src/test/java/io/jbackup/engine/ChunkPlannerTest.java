package io.jbackup.engine;

import io.jbackup.nbd.protocol.Extent;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ChunkPlannerTest {
    private static final int K64 = 64 * 1024;
    private static final int DATA = 0;
    private static final int HOLE_ZERO = 3;

    private static Extent e(long off, long len, int flags) {
        return new Extent(off, len, flags);
    }

    private static List<ChunkTask> planAll(ChunkPlanner p) {
        List<ChunkTask> all = new ArrayList<>();
        List<ChunkTask> batch;
        while (!(batch = p.plan(3)).isEmpty()) {
            all.addAll(batch);
        }
        return all;
    }

    @Test
    void fullBackupReadsOnlyDataRangesAndZeroesEmptyChunks() {
        // 4 chunks of 64 KiB: chunk 0 data, chunk 1 half data, chunk 2 zero, chunk 3 data at the end
        ChunkPlanner p = new ChunkPlanner(4L * K64, K64, true, false, false);
        p.addAllocation(List.of(e(0, K64 + K64 / 2, DATA), e(K64 + K64 / 2, K64 + K64 / 2, HOLE_ZERO),
            e(3L * K64, K64, DATA)));
        List<ChunkTask> t = planAll(p);
        assertEquals(4, t.size());
        assertEquals(ChunkTask.Kind.READ, t.get(0).kind());
        assertArrayEquals(new long[] {0, K64}, t.get(0).ranges());
        assertArrayEquals(new long[] {K64, K64 + K64 / 2}, t.get(1).ranges());
        assertEquals(ChunkTask.Kind.ZERO, t.get(2).kind());
        assertEquals(ChunkTask.Kind.READ, t.get(3).kind());
        assertTrue(p.done());
    }

    @Test
    void allocationDepthZeroCountsAsZero() {
        ChunkPlanner p = new ChunkPlanner(2L * K64, K64, true, true, false);
        // base:allocation says data everywhere (e.g. unknown), depth says chunk 1 unallocated in the chain
        p.addAllocation(List.of(e(0, 2L * K64, DATA)));
        p.addDepth(List.of(e(0, K64, 2), e(K64, K64, 0)));
        List<ChunkTask> t = planAll(p);
        assertEquals(ChunkTask.Kind.READ, t.get(0).kind());
        assertEquals(ChunkTask.Kind.ZERO, t.get(1).kind());
    }

    @Test
    void incrementalPlansOnlyDirtyChunksAndTrimmedDirtyBecomesZero() {
        ChunkPlanner p = new ChunkPlanner(4L * K64, K64, true, false, true);
        p.addAllocation(List.of(e(0, 2L * K64, DATA), e(2L * K64, 2L * K64, HOLE_ZERO)));
        // a 4 KiB dirty write in chunk 1 and a dirty (trimmed) region in chunk 3
        p.addDirty(List.of(e(0, K64 + 4096, 0), e(K64 + 4096, 4096, 1), e(K64 + 8192, 2L * K64 - 8192, 0),
            e(3L * K64, K64, 1)));
        List<ChunkTask> t = planAll(p);
        assertEquals(2, t.size());
        assertEquals(1, t.get(0).index());
        assertEquals(ChunkTask.Kind.READ, t.get(0).kind());
        assertArrayEquals(new long[] {K64, 2L * K64}, t.get(0).ranges(), "the whole dirty chunk is read");
        assertEquals(3, t.get(1).index());
        assertEquals(ChunkTask.Kind.ZERO, t.get(1).kind());
    }

    @Test
    void waitsUntilEveryContextCoversAChunk() {
        ChunkPlanner p = new ChunkPlanner(4L * K64, K64, true, false, true);
        p.addAllocation(List.of(e(0, 4L * K64, DATA)));
        p.addDirty(List.of(e(0, K64 + 100, 1)));
        assertEquals(K64 + 100, p.coveredEnd());
        List<ChunkTask> t = p.plan(100);
        assertEquals(1, t.size(), "only chunk 0 is covered by both contexts");
        p.addDirty(List.of(e(K64 + 100, 3L * K64 - 100, 0)));
        t = p.plan(100);
        assertEquals(1, t.size());
        assertEquals(1, t.get(0).index());
        assertTrue(p.done());
    }

    @Test
    void lastPartialChunkHasShortLength() {
        ChunkPlanner p = new ChunkPlanner(K64 + 512, K64, true, false, false);
        p.addAllocation(List.of(e(0, K64 + 512, DATA)));
        List<ChunkTask> t = planAll(p);
        assertEquals(2, t.size());
        assertEquals(512, t.get(1).length());
    }

    @Test
    void withoutContextsEveryChunkIsReadWhole() {
        ChunkPlanner p = new ChunkPlanner(3L * K64, K64, false, false, false);
        List<ChunkTask> t = planAll(p);
        assertEquals(3, t.size());
        for (ChunkTask c : t) {
            assertArrayEquals(new long[] {c.offset(), c.offset() + K64}, c.ranges());
        }
    }

    @Test
    void gapInExtentsIsRejected() {
        ChunkPlanner p = new ChunkPlanner(4L * K64, K64, true, false, false);
        assertThrows(IllegalStateException.class, () -> p.addAllocation(List.of(e(K64, K64, DATA))));
    }
}
