package io.jbackup.nbd.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdError;
import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.jbackup.nbd.protocol.NbdReplyChunkType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The server's extended headers, byte by byte: {@code NBD_OPT_EXTENDED_HEADERS}, then 32-byte requests and replies
 * that echo the request offset, {@code BLOCK_STATUS_EXT} with 64-bit extents, block-status payloads naming some of
 * the selected contexts, and every bound checked (ids, payload shape, 64-bit ranges; a WRITE without
 * {@code PAYLOAD_LEN}, or {@code EXPORT_NAME} after the option, ends the connection).
 */
class NbdServerExtendedTest {
    static final int MIB = 1 << 20;
    static final long BIG = 6L << 30; // a sparse export larger than 32-bit lengths reach
    static final int READ = 0;
    static final int WRITE = 1;
    static final int BLOCK_STATUS = 7;
    static final int PAYLOAD_LEN = NbdConstants.CMD_FLAG_PAYLOAD_LEN;

    @TempDir
    static Path dir;
    static NbdServer server;
    static Path sock;
    static byte[] rw = new byte[MIB];

    @BeforeAll
    static void start() throws IOException {
        ExtentSource dirty = (off, len) -> CompletableFuture.completedFuture(off < MIB
            ? List.of(new Extent(off, MIB - off, NbdConstants.STATE_DIRTY), new Extent(MIB, BIG - MIB, 0))
            : List.of(new Extent(off, BIG - off, 0)));
        SparseTestExport big = new SparseTestExport("big", BIG, List.of(new Extent(2 * MIB, BIG - 2 * MIB, 0)),
            Map.of("qemu:dirty-bitmap:d", dirty));
        for (int i = 0; i < rw.length; i++) {
            rw[i] = (byte) (i * 7);
        }
        SimpleExportProvider provider = new SimpleExportProvider()
            .add("big", "", () -> big)
            .add("rw", "", () -> new MemoryExport("rw", "", rw, false));
        sock = dir.resolve("nbd.sock");
        server = NbdServer.start(ServerConfig.builder().unixSocket(sock).maxPayload(2 * MIB).build(), provider);
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
    }

    /** EXTENDED_HEADERS, SET_META_CONTEXT (base:allocation id 0, the bitmap id 1), GO; returns the flags. */
    static int negotiate(RawNbdClient c, String export) throws IOException {
        c.sendOption(11, new byte[0]);
        assertEquals(NbdOptionReplyType.ACK, c.readOptionReply().replyType());
        c.sendOption(10, RawNbdClient.metaData(export, "base:allocation", "qemu:dirty-bitmap:d"));
        RawNbdClient.OptReply r;
        while ((r = c.readOptionReply()).type() == NbdOptionReplyType.META_CONTEXT.code()) {
            // ids 0, 1 in order
        }
        assertEquals(NbdOptionReplyType.ACK, r.replyType(), r.text());
        c.sendOption(7, RawNbdClient.goData(export));
        int flags = -1;
        while ((r = c.readOptionReply()).type() == NbdOptionReplyType.INFO.code()) {
            ByteBuffer d = ByteBuffer.wrap(r.data());
            if (d.getShort() == 0) {
                d.getLong();
                flags = d.getShort() & 0xffff;
            }
        }
        assertEquals(NbdOptionReplyType.ACK, r.replyType(), r.text());
        return flags;
    }

    static RawNbdClient connect() throws IOException {
        return new RawNbdClient(sock).handshake();
    }

    @Test
    void extendedHeadersNeedNoDataAndGoAdvertisesBlockStatusPayloads() throws IOException {
        try (RawNbdClient c = connect()) {
            c.sendOption(11, new byte[] {1});
            assertEquals(NbdOptionReplyType.ERR_INVALID, c.readOptionReply().replyType());
            int flags = negotiate(c, "big");
            assertTrue((flags & NbdConstants.TFLAG_BLOCK_STATUS_PAYLOAD) != 0, Integer.toHexString(flags));
            assertTrue((flags & NbdConstants.TFLAG_SEND_DF) != 0, Integer.toHexString(flags));
        }
    }

    @Test
    void readsAndWritesUseExtendedChunksThatEchoTheRequestOffset() throws IOException {
        try (RawNbdClient c = connect()) {
            negotiate(c, "rw");
            byte[] data = new byte[4096];
            Arrays.fill(data, (byte) 0x5a);
            c.sendExtendedRequest(PAYLOAD_LEN, WRITE, 1, 8192, data.length, data);
            RawNbdClient.ExtChunk w = c.readExtendedReply();
            assertEquals(NbdReplyChunkType.NONE.code(), w.type());
            assertEquals(8192, w.offset());
            assertTrue(w.done());
            c.sendExtendedRequest(0, READ, 2, 4096, 3 * 4096, null);
            ByteBuffer got = ByteBuffer.allocate(3 * 4096);
            RawNbdClient.ExtChunk r;
            do {
                r = c.readExtendedReply();
                assertEquals(2, r.cookie());
                assertEquals(4096, r.offset(), "every chunk echoes the request offset");
                if (r.type() == NbdReplyChunkType.OFFSET_DATA.code()) {
                    ByteBuffer p = ByteBuffer.wrap(r.payload());
                    long at = p.getLong();
                    got.put((int) (at - 4096), r.payload(), 8, r.payload().length - 8);
                }
            } while (!r.done());
            byte[] want = Arrays.copyOfRange(rw, 4096, 4 * 4096);
            assertArrayEquals(want, got.array());
            assertArrayEquals(data, Arrays.copyOfRange(want, 4096, 8192));
        }
    }

    @Test
    void blockStatusOverTheWholeExportWithAndWithoutAPayload() throws IOException {
        try (RawNbdClient c = connect()) {
            negotiate(c, "big");
            // 6 GiB in one request: BLOCK_STATUS_EXT with 64-bit extents, one chunk per context
            c.sendExtendedRequest(0, BLOCK_STATUS, 1, 0, BIG, null);
            List<RawNbdClient.ExtChunk> chunks = readAll(c);
            assertEquals(2, chunks.size());
            for (RawNbdClient.ExtChunk ch : chunks) {
                assertEquals(NbdReplyChunkType.BLOCK_STATUS_EXT.code(), ch.type());
            }
            assertEquals(List.of(List.of(2L * MIB, 0L), List.of(BIG - 2 * MIB, 3L)), extents(chunks.get(0), 0),
                "data, then one hole+zero extent above 4 GiB");
            assertEquals(List.of(List.of((long) MIB, 1L), List.of(BIG - MIB, 0L)), extents(chunks.get(1), 1));
            // a payload naming the bitmap only: one chunk, for id 1, with the payload's effect length
            c.sendExtendedRequest(PAYLOAD_LEN, BLOCK_STATUS, 2, 0, 12, payload(MIB / 2, 1));
            chunks = readAll(c);
            assertEquals(1, chunks.size());
            assertEquals(List.of(List.of(MIB / 2L, 1L)), extents(chunks.get(0), 1));
        }
    }

    @Test
    void badPayloadsAndRangesAreRefusedAndTheConnectionGoesOn() throws IOException {
        try (RawNbdClient c = connect()) {
            negotiate(c, "big");
            long cookie = 10;
            for (byte[] p : List.of(payload(4096, 7), payload(4096, 1, 1), new byte[8], new byte[14],
                payload(0, 0), payload(BIG + 4096, 0), payload(-4096L, 0))) {
                c.sendExtendedRequest(PAYLOAD_LEN, BLOCK_STATUS, cookie, 0, p.length, p);
                RawNbdClient.ExtChunk e = c.readExtendedReply();
                assertEquals(cookie++, e.cookie());
                assertEquals(NbdError.EINVAL.code(), e.error(), "payload " + Arrays.toString(p));
            }
            c.sendExtendedRequest(0, BLOCK_STATUS, cookie, 4096, BIG, null);
            assertEquals(NbdError.EINVAL.code(), c.readExtendedReply().error(), "past the end");
            c.sendExtendedRequest(0, READ, cookie, 0, -1, null);
            assertEquals(NbdError.EINVAL.code(), c.readExtendedReply().error(), "a 2^64 - 1 byte read");
            c.sendExtendedRequest(PAYLOAD_LEN, READ, cookie, 0, 4, new byte[4]);
            assertEquals(NbdError.EINVAL.code(), c.readExtendedReply().error(), "a READ with a payload");
            c.sendExtendedRequest(0, READ, 99, 0, 4096, null);
            RawNbdClient.ExtChunk ok = c.readExtendedReply();
            assertEquals(99, ok.cookie());
            assertEquals(0, ok.error());
        }
    }

    @Test
    void unframedWritesAndExportNameAfterTheOptionEndTheConnection() throws IOException {
        try (RawNbdClient c = connect()) {
            negotiate(c, "rw");
            c.sendExtendedRequest(0, WRITE, 1, 0, 512, new byte[512]);
            assertTrue(c.closedByServer());
        }
        try (RawNbdClient c = connect()) {
            c.sendOption(11, new byte[0]);
            assertEquals(NbdOptionReplyType.ACK, c.readOptionReply().replyType());
            c.sendOption(1, "rw".getBytes());
            assertTrue(c.closedByServer());
        }
    }

    static byte[] payload(long effect, int... ids) {
        ByteBuffer b = ByteBuffer.allocate(8 + 4 * ids.length).putLong(effect);
        for (int id : ids) {
            b.putInt(id);
        }
        return b.array();
    }

    static List<RawNbdClient.ExtChunk> readAll(RawNbdClient c) throws IOException {
        List<RawNbdClient.ExtChunk> out = new ArrayList<>();
        RawNbdClient.ExtChunk r;
        do {
            r = c.readExtendedReply();
            out.add(r);
        } while (!r.done());
        return out;
    }

    /** The (length, status) pairs of a BLOCK_STATUS_EXT chunk for context {@code id}. */
    static List<List<Long>> extents(RawNbdClient.ExtChunk ch, int id) {
        ByteBuffer p = ByteBuffer.wrap(ch.payload());
        assertEquals(id, p.getInt());
        int n = p.getInt();
        assertEquals(8 + 16 * n, ch.payload().length);
        List<List<Long>> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(List.of(p.getLong(), p.getLong()));
        }
        return out;
    }
}
