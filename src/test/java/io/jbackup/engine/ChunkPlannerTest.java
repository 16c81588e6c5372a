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
    /** Random extents of one context over [0, size): lengths are multiples of 4 KiB (the last may be short). */
    private static List<Extent> randomExtents(java.util.Random r, long size, int[] flagChoices, int maxPieces) {
        List<Extent> out = new ArrayList<>();
        long pos = 0;
        while (pos < size) {
            long len = Math.min(size - pos, 4096L * (1 + r.nextInt(r.nextBoolean() ? 8 : 64 * maxPieces)));
            out.add(e(pos, len, flagChoices[r.nextInt(flagChoices.length)]));
            pos += len;
        }
        return out;
    }

    /** Feeds the extents ending at or before {@code upTo} that were not fed yet; returns the next index. */
    private static int feed(List<Extent> ext, int from, long upTo, java.util.function.Consumer<List<Extent>> sink) {
        int i = from;
        while (i < ext.size() && ext.get(i).offset() < upTo) {
            i++;
        }
        if (i > from) {
            sink.accept(ext.subList(from, i));
        }
        return i;
    }

    @Test
    void runsDecideEveryChunkExactlyAsPerChunkPlanning() {
        java.util.Random r = new java.util.Random(15);
        for (int round = 0; round < 400; round++) {
            int chunk = K64 << r.nextInt(3);
            long size = 4096L * (1 + r.nextInt(2000)) + (r.nextBoolean() ? 0 : r.nextInt(4096) & ~511);
            boolean alloc = r.nextInt(4) > 0;
            boolean depth = r.nextBoolean();
            boolean inc = r.nextBoolean();
            // mostly-zero disks with long runs, and fragmented ones
            List<Extent> a = randomExtents(r, size, new int[] {DATA, HOLE_ZERO, HOLE_ZERO, 2}, 1 + r.nextInt(16));
            List<Extent> d = randomExtents(r, size, new int[] {0, 0, 1, 2}, 1 + r.nextInt(16));
            List<Extent> dirty = randomExtents(r, size, new int[] {0, 0, 0, 1}, 1 + r.nextInt(16));
            ChunkPlanner one = new ChunkPlanner(size, chunk, alloc, depth, inc);
            ChunkPlanner runs = new ChunkPlanner(size, chunk, alloc, depth, inc);
            List<ChunkTask> expected = new ArrayList<>();
            List<ChunkTask> got = new ArrayList<>();
            int ai = 0;
            int di = 0;
            int xi = 0;
            long window = 0;
            while (!one.done() || !runs.done()) {
                window = Math.min(size, window + 4096L * (1 + r.nextInt(300)));
                for (ChunkPlanner p : List.of(one, runs)) {
                    if (alloc) {
                        feed(a, ai, window, p::addAllocation);
                    }
                    if (depth) {
                        feed(d, di, window, p::addDepth);
                    }
                    if (inc) {
                        feed(dirty, xi, window, p::addDirty);
                    }
                }
                ai = alloc ? feed(a, ai, window, l -> { }) : ai;
                di = depth ? feed(d, di, window, l -> { }) : di;
                xi = inc ? feed(dirty, xi, window, l -> { }) : xi;
                List<ChunkTask> b;
                while (!(b = one.plan(1 + r.nextInt(5))).isEmpty()) {
                    expected.addAll(b);
                }
                while (!(b = runs.planRuns(1 + r.nextInt(5))).isEmpty()) {
                    for (ChunkTask t : b) {
                        long covered = 0;
                        for (long k = 0; k < t.count(); k++) {
                            long off = (t.index() + k) * chunk;
                            int len = (int) Math.min(chunk, size - off);
                            got.add(new ChunkTask(t.index() + k, off, len, t.kind(), t.count() == 1 ? t.ranges()
                                : new long[0]));
                            covered += len;
                        }
                        assertEquals(covered, t.span(), "span of " + t);
                        assertEquals(t.index() * chunk, t.offset());
                    }
                }
                assertEquals(one.nextChunkOffset(), runs.nextChunkOffset(), "both planners advance alike");
            }
            assertEquals(expected.size(), got.size(), "round " + round);
            for (int i = 0; i < expected.size(); i++) {
                ChunkTask x = expected.get(i);
                ChunkTask y = got.get(i);
                String where = "round " + round + " task " + i;
                assertEquals(x.index(), y.index(), where);
                assertEquals(x.length(), y.length(), where);
                assertEquals(x.kind(), y.kind(), where);
                assertArrayEquals(x.ranges(), y.ranges(), where);
            }
        }
    }

    @Test
    void anEmptyTerabyteIsOneRunPerWindowAndACleanIncrementalPlansNothing() {
        long size = 1L << 40;
        int chunk = 1 << 20;
        ChunkPlanner p = new ChunkPlanner(size, chunk, true, true, false);
        p.addAllocation(List.of(e(0, size, HOLE_ZERO)));
        p.addDepth(List.of(e(0, size, 0)));
        List<ChunkTask> t = p.planRuns(10);
        assertEquals(1, t.size());
        assertEquals(size / chunk, t.get(0).count());
        assertEquals(size, t.get(0).span());
        assertTrue(p.done());

        ChunkPlanner inc = new ChunkPlanner(size, chunk, true, true, true);
        inc.addAllocation(List.of(e(0, size, HOLE_ZERO)));
        inc.addDepth(List.of(e(0, size, 0)));
        inc.addDirty(List.of(e(0, 512L << 30, 0), e(512L << 30, 4096, 1), e((512L << 30) + 4096, size
            - (512L << 30) - 4096, 0)));
        t = inc.planRuns(10);
        assertEquals(1, t.size(), "only the dirty chunk: " + t);
        assertEquals((512L << 30) / chunk, t.get(0).index());
        assertEquals(ChunkTask.Kind.ZERO, t.get(0).kind());
        assertEquals(1, t.get(0).count());
        assertTrue(inc.done());
    }
}
