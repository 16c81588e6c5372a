package io.jbackup.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.server.ChunkRuns;
import java.util.List;
import org.junit.jupiter.api.Test;

/** {@link BackupContexts#runs}: runs on the chunk grid, clipped to the request and image, bounded per call. */
class BackupContextsTest {
    @Test
    void runsFollowTheChunkGridAndClipToTheRequestAndImage() {
        // chunks of 4 bytes, image of 22 bytes: chunks 1, 2 and 5 set
        List<Extent> r = ChunkRuns.of(22, 4, 2, 100, i -> i == 1 || i == 2 || i == 5, 1);
        assertEquals(List.of(new Extent(2, 2, 0), new Extent(4, 8, 1), new Extent(12, 8, 0), new Extent(20, 2, 1)), r);
        assertEquals(List.of(new Extent(5, 3, 1)), ChunkRuns.of(22, 4, 5, 3, i -> i == 1, 1));
    }

    @Test
    void oneCallLooksAtABoundedNumberOfChunks() {
        long chunks = 3 * ChunkRuns.MAX_SCAN;
        List<Extent> r = ChunkRuns.of(chunks * 512, 512, 0, chunks * 512, i -> true, 1);
        assertEquals(List.of(new Extent(0, ChunkRuns.MAX_SCAN * 512, 1)), r,
            "a reply may cover less than asked; the caller continues from its end");
    }
}
