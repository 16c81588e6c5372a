package io.jbackup.engine;

import io.jbackup.model.BackupStats;
import io.jbackup.store.ChunkHasher;
import org.junit.jupiter.api.Test;

import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link ChunkHash}: pieces reported in any order give the SHA-256 of the whole buffer; a piece reported twice,
 * overlapping or missing gives no id (the repository then hashes the chunk itself); a hash is reusable.
 */
class ChunkHashTest {
    /** Cuts [0, n) into random pieces. */
    static List<int[]> pieces(int n, Random r) {
        List<int[]> p = new ArrayList<>();
        for (int at = 0; at < n; ) {
            int len = Math.min(n - at, 1 + r.nextInt(n / 8));
            p.add(new int[] {at, len});
            at += len;
        }
        return p;
    }

    @Test
    void piecesInAnyOrderGiveTheHashOfTheWholeBuffer() throws Exception {
        Random r = new Random(11);
        ChunkHash h = new ChunkHash(ChunkHasher.sha256());
        for (int round = 0; round < 200; round++) {
            byte[] buf = new byte[1 + r.nextInt(64 * 1024)];
            r.nextBytes(buf);
            List<int[]> p = pieces(buf.length, r);
            if (round % 2 == 1) {
                Collections.shuffle(p, r);
            }
            h.start(buf, buf.length);
            for (int[] x : p) {
                h.received(x[0], x[1]);
            }
            assertArrayEquals(MessageDigest.getInstance("SHA-256").digest(buf), h.id(), "round " + round);
        }
    }

    @Test
    void aMissingTwiceReportedOrOverlappingPieceGivesNoIdAndTheNextChunkIsUnaffected() throws Exception {
        byte[] buf = new byte[4096];
        new Random(12).nextBytes(buf);
        ChunkHash h = new ChunkHash(ChunkHasher.sha256());
        h.start(buf, buf.length).received(0, 1000); // missing the rest
        assertNull(h.id());
        h.start(buf, buf.length).received(0, 4096);
        h.received(100, 10); // twice
        assertNull(h.id());
        h.start(buf, buf.length).received(2000, 2096);
        h.received(0, 2100); // overlaps the piece waiting ahead
        assertNull(h.id());
        h.start(buf, buf.length).received(4000, 200); // past the end
        assertNull(h.id());
        // after every kind of failure, a clean chunk still gets its true id (what was fed before is dropped)
        h.start(buf, buf.length).received(0, 3000);
        h.start(buf, buf.length).received(0, 4096);
        assertArrayEquals(MessageDigest.getInstance("SHA-256").digest(buf), h.id());
    }

    @Test
    void theIoThreadHashesOnlyWhileTheWorkersCompressNewData() {
        // mostly new data that compressed: the workers are busy with zstd
        assertTrue(ChunkHash.onReadPays(new BackupStats(10, 10, 0, 0, 10L << 20, 0, 0, 4L << 20)));
        // new data that did not compress, data that deduplicated, nothing stored yet: the workers have time
        assertFalse(ChunkHash.onReadPays(new BackupStats(10, 10, 0, 0, 10L << 20, 0, 0, 10L << 20)));
        assertFalse(ChunkHash.onReadPays(new BackupStats(10, 1, 9, 0, 1L << 20, 9L << 20, 0, 1L << 19)));
        assertFalse(ChunkHash.onReadPays(BackupStats.EMPTY));
    }
}
