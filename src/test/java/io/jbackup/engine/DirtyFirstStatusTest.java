package io.jbackup.engine;

import io.jbackup.nbd.protocol.Extent;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The allocation requests of an incremental cover the dirty chunks only, and the reply reads as one request's. */
class DirtyFirstStatusTest {
    static final int K = 1024;

    @Test
    void dirtyExtentsWidenToChunksClipToTheWindowAndMergeAcrossSmallGaps() {
        DirtyFirstStatus s = new DirtyFirstStatus("qemu:dirty-bitmap:b", true, true, 64 * K, 128 * K);
        List<Extent> dirty = List.of(new Extent(0, 100 * K, 0), new Extent(100 * K, 4 * K, 1), // chunk 1
            new Extent(104 * K, 150 * K, 0), new Extent(254 * K, 2 * K, 1), // chunk 3: 128k gap after chunk 1 -> merged
            new Extent(256 * K, 1024 * K, 0), new Extent(1280 * K, 10 * K, 1), // chunk 20: far -> its own run
            new Extent(1290 * K, 6 * K, 0));
        List<long[]> runs = s.dirtyRuns(dirty, 0, 1296 * K);
        assertEquals(2, runs.size());
        assertArrayEquals(new long[] {64 * K, 256 * K}, runs.get(0));
        assertArrayEquals(new long[] {1280 * K, 1296 * K}, runs.get(1), "the last run ends with the window");
        // a window starting inside a dirty chunk: the run starts at the window
        List<long[]> mid = s.dirtyRuns(List.of(new Extent(70 * K, 20 * K, 1)), 70 * K, 90 * K);
        assertArrayEquals(new long[] {70 * K, 90 * K}, mid.get(0));
    }

    @Test
    void theAssembledAllocationCoversTheWindowWithStandInsBetweenTheRuns() {
        List<long[]> runs = List.of(new long[] {64 * K, 256 * K}, new long[] {1280 * K, 1296 * K});
        List<List<Extent>> real = List.of(
            List.of(new Extent(64 * K, 64 * K, 0), new Extent(128 * K, 128 * K, 3)),
            List.of(new Extent(1280 * K, 16 * K, 0)));
        assertEquals(List.of(new Extent(0, 64 * K, 0), new Extent(64 * K, 64 * K, 0), new Extent(128 * K, 128 * K, 3),
            new Extent(256 * K, 1024 * K, 0), new Extent(1280 * K, 16 * K, 0), new Extent(1296 * K, 4 * K, 0)),
            DirtyFirstStatus.assemble(0, 1300 * K, runs, real, 0));
        assertEquals(List.of(new Extent(0, 10 * K, 1)), DirtyFirstStatus.assemble(0, 10 * K, List.of(), List.of(), 1),
            "no dirty chunk: one stand-in, depth 1");
    }
}
