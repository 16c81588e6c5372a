package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.CompletableFuture;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** base:allocation of a served backup: zero chunks are holes, and one request looks at a bounded number of chunks. */
class ChunkedImageExportTest {
    /** 4 KiB chunks, data where {@code index % 3 == 0} below {@code dataBelow}, zeros elsewhere. */
    private static ChunkSource source(long size, long dataBelow) {
        return new ChunkSource() {
            @Override
            public long size() {
                return size;
            }

            @Override
            public int chunkSize() {
                return 4096;
            }

            @Override
            public boolean isZero(long index) {
                return index >= dataBelow || index % 3 != 0;
            }

            @Override
            public Object contentKey(long index) {
                return index;
            }

            @Override
            public CompletableFuture<byte[]> readChunk(long index) {
                return CompletableFuture.completedFuture(new byte[4096]);
            }
        };
    }

    @Test
    void zeroChunksAreHolesAndDataRunsAreData() throws Exception {
        ChunkedImageExport e = new ChunkedImageExport("d", "", source(10 * 4096L + 100, 6), new ChunkCache(1 << 20), 0);
        List<Extent> got = e.allocation(0, e.size()).get();
        int hole = NbdConstants.STATE_HOLE | NbdConstants.STATE_ZERO;
        assertEquals(List.of(new Extent(0, 4096, 0), new Extent(4096, 8192, hole), new Extent(12288, 4096, 0),
            new Extent(16384, 10 * 4096L + 100 - 16384, hole)), got);
    }

    /** An all-zero export of 2^21 chunks asked in one request: the reply covers the first 2^20 chunks. */
    @Test
    void oneRequestLooksAtNoMoreThanMaxScanChunks() throws Exception {
        long size = 2 * ChunkRuns.MAX_SCAN * 4096;
        ChunkedImageExport e = new ChunkedImageExport("d", "", source(size, 0), new ChunkCache(1 << 20), 0);
        List<Extent> got = e.allocation(0, size).get();
        assertEquals(List.of(new Extent(0, ChunkRuns.MAX_SCAN * 4096,
            NbdConstants.STATE_HOLE | NbdConstants.STATE_ZERO)), got);
        List<Extent> rest = e.allocation(ChunkRuns.MAX_SCAN * 4096, size).get();
        assertEquals(size, rest.get(rest.size() - 1).offset() + rest.get(rest.size() - 1).length());
    }
}
