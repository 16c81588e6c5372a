package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdProtocolException;
import io.jbackup.nbd.protocol.ReplyDecoder;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static io.jbackup.nbd.client.BrokenServerTest.SIZE;
import static io.jbackup.nbd.client.BrokenServerTest.TFLAGS;
import static io.jbackup.nbd.client.BrokenServerTest.assertProtocolError;
import static io.jbackup.nbd.client.BrokenServerTest.opts;
import static io.jbackup.nbd.client.BrokenServerTest.readFailure;
import static io.jbackup.nbd.client.FakeNbdServer.Conn.infoBlockSize;
import static io.jbackup.nbd.client.FakeNbdServer.Conn.infoExport;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A server that lies: about sizes and block sizes, with block-status extents outside the request, too many of
 * them, cookies that belong to nothing, chunks outside or across the request. Every case ends in an
 * {@link NbdProtocolException} that names the lie, and nothing hangs or allocates what the server announces.
 * ({@link BrokenServerTest} covers servers that are broken rather than deceptive: bad magic, EOF, silence.)
 */
@Tag("reliability")
@Timeout(30)
class HostileServerTest {
    static final List<String> BASE = List.of(NbdConstants.CONTEXT_BASE_ALLOCATION);

    static NbdProtocolException connectFails(FakeNbdServer.Script script) throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(script)) {
            return assertThrows(NbdProtocolException.class, () -> NbdClient.connect(s.uri(), opts()));
        }
    }

    // ---- sizes ----

    @Test
    void exportSizeAbove2To63() throws Exception {
        NbdProtocolException e = connectFails(c -> {
            c.handshake(-4096L, TFLAGS, true, Map.of());
            c.hang();
        });
        assertTrue(e.getMessage().contains("reports export size 18446744073709547520 for ''"), e.getMessage());
        assertTrue(e.getMessage().contains("more than jbackup supports (2^63 - 1)"), e.getMessage());
    }

    @Test
    void exportSizeNotAMultipleOfTheMinimumBlockSize() throws Exception {
        NbdProtocolException e = connectFails(c -> {
            c.handshake(10_000, TFLAGS, true, Map.of(), List.of(infoExport(10_000, TFLAGS),
                infoBlockSize(4096, 4096, 1 << 20)));
            c.hang();
        });
        assertTrue(e.getMessage().contains("reports export size 10000 for '', which is not a multiple of its "
            + "minimum block size 4096: the last 1808 bytes could not be read"), e.getMessage());
    }

    @ParameterizedTest(name = "min {0} preferred {1} max {2}")
    @CsvSource({
        "0, 4096, 33554432",        // minimum 0
        "3, 4096, 33554432",        // minimum not a power of 2
        "131072, 131072, 33554432", // minimum above 64 KiB
        "512, 3000, 33554432",      // preferred not a power of 2
        "1, 256, 33554432",         // preferred below 512
        "4096, 2048, 33554432",     // preferred below minimum
        "512, 4096, 1024",          // maximum below preferred
    })
    void blockSizesOutOfRange(long min, long preferred, long max) throws Exception {
        NbdProtocolException e = connectFails(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of(), List.of(infoExport(SIZE, TFLAGS),
                infoBlockSize(min, preferred, max)));
            c.hang();
        });
        assertTrue(e.getMessage().contains("sent invalid block sizes for export '': minimum " + min + ", preferred "
            + preferred + ", maximum " + max), e.getMessage());
    }

    @Test
    void twoDifferentSizesInOneGo() throws Exception {
        NbdProtocolException e = connectFails(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of(), List.of(infoExport(SIZE, TFLAGS), infoExport(2 * SIZE, TFLAGS)));
            c.hang();
        });
        assertTrue(e.getMessage().contains("sent NBD_INFO_EXPORT twice for export '' with different values (size "
            + SIZE + " then " + 2 * SIZE), e.getMessage());
    }

    @Test
    void twoDifferentBlockSizesInOneGo() throws Exception {
        NbdProtocolException e = connectFails(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of(), List.of(infoExport(SIZE, TFLAGS), infoBlockSize(512, 4096,
                1 << 20), infoBlockSize(4096, 4096, 1 << 20)));
            c.hang();
        });
        assertTrue(e.getMessage().contains("sent NBD_INFO_BLOCK_SIZE twice"), e.getMessage());
    }

    /**
     * {@code NBD_OPT_INFO} is informational and {@code NBD_OPT_GO} binding (nbd-server reports size 0 to INFO):
     * a listing shows INFO's size, a connection uses GO's. A further multi-conn connection that negotiates a
     * different size than the first is not used.
     */
    @Test
    void sizeChangesBetweenInfoGoAndConnections() throws Exception {
        AtomicInteger gos = new AtomicInteger();
        int multi = TFLAGS | NbdConstants.TFLAG_CAN_MULTI_CONN;
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.greeting(NbdConstants.FLAG_FIXED_NEWSTYLE | NbdConstants.FLAG_NO_ZEROES);
            c.clientFlags();
            while (true) {
                FakeNbdServer.Option o = c.option();
                switch (o.code()) {
                    case 3 -> { // LIST
                        c.optReply(3, 2, new byte[4]);
                        c.optReply(3, 1, new byte[0]);
                    }
                    case 6 -> { // INFO
                        c.optReply(6, 3, infoExport(SIZE / 2, multi));
                        c.optReply(6, 1, new byte[0]);
                    }
                    case 2 -> { // ABORT
                        c.optReply(2, 1, new byte[0]);
                        return;
                    }
                    case 7 -> { // GO: the first connection sees the disk grown, the second one not
                        c.optReply(7, 3, infoExport(gos.incrementAndGet() == 1 ? 2 * SIZE : SIZE, multi));
                        c.optReply(7, 1, new byte[0]);
                        c.hang();
                        return;
                    }
                    default -> c.optReply(o.code(), 0x80000001, new byte[0]);
                }
            }
        })) {
            List<ExportInfo> list = NbdClient.listExports(s.uri(), opts());
            assertEquals(SIZE / 2, list.get(0).size(), "the listing shows what INFO said");
            try (NbdClient c = NbdClient.connect(s.uri(), opts().withConnections(2))) {
                assertEquals(2 * SIZE, c.info().size(), "the connection uses what GO said");
                assertEquals(1, c.connectionCount(), "the connection that negotiated another size is dropped");
            }
        }
    }

    // ---- block status ----

    /** Block status for [0, 64 KiB) answered with {@code descriptors} (length, status pairs) in one chunk. */
    static Throwable blockStatusFailure(boolean reqOne, long... descriptors) throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of(NbdConstants.CONTEXT_BASE_ALLOCATION, 0));
            FakeNbdServer.Req r = c.request();
            ByteBuffer b = ByteBuffer.allocate(4 + 4 * descriptors.length).putInt(0);
            for (long d : descriptors) {
                b.putInt((int) d);
            }
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 5, r.cookie(), b.array());
            c.hang();
        }); NbdClient c = NbdClient.connect(s.uri(), opts().withMetaContexts(BASE))) {
            ExecutionException e = assertThrows(ExecutionException.class,
                () -> c.blockStatus(0, 65536, reqOne).get(20, TimeUnit.SECONDS));
            return e.getCause();
        }
    }

    @Test
    void extentsPastTheEndOfTheRequest() throws Exception {
        Throwable t = blockStatusFailure(false, 32768, 0, 32768, 3, 4096, 0);
        assertProtocolError(t, "BLOCK_STATUS chunk for context base:allocation in reply to BLOCK_STATUS of 65536 "
            + "bytes at offset 0 (cookie 0x1): descriptor 3 of 3 starts at offset 65536, past the end of the request "
            + "(65536); only the last descriptor may extend past it");
    }

    @Test
    void zeroLengthExtent() throws Exception {
        Throwable t = blockStatusFailure(false, 4096, 0, 0, 3, 4096, 0);
        assertProtocolError(t, "descriptor 1 of 3 has length 0");
    }

    @Test
    void reqOneWithTwoExtents() throws Exception {
        Throwable t = blockStatusFailure(true, 4096, 0, 4096, 3);
        assertProtocolError(t, "with REQ_ONE (cookie 0x1) has 2 descriptors; it must have exactly one");
    }

    @Test
    void reqOneExtentLongerThanTheRequest() throws Exception {
        Throwable t = blockStatusFailure(true, 131072, 0);
        assertProtocolError(t, "with REQ_ONE (cookie 0x1) describes 131072 bytes, more than the 65536 requested");
    }

    @Test
    void tooManyExtentsInOneChunk() throws Exception {
        long descriptors = (1 << 20) + 1;
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of(NbdConstants.CONTEXT_BASE_ALLOCATION, 0));
            FakeNbdServer.Req r = c.request();
            // announce the chunk, send only its start: the client must refuse at the header
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 5, r.cookie(), 4 + 8 * descriptors, new byte[4]);
            c.hang();
        }); NbdClient c = NbdClient.connect(s.uri(), opts().withMetaContexts(BASE))) {
            ExecutionException e = assertThrows(ExecutionException.class,
                () -> c.blockStatus(0, SIZE, false).get(20, TimeUnit.SECONDS));
            assertProtocolError(e.getCause(), "BLOCK_STATUS(0x5) chunk for cookie 0x1 has length " + (4 + 8 * descriptors)
                + ", which exceeds the limit of " + ReplyDecoder.DEFAULT_MAX_METADATA_PAYLOAD);
        }
    }

    /** The last extent may reach past the request and the export: the client clips it to the export. */
    @Test
    void lastExtentPastTheExportEndIsClipped() throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of(NbdConstants.CONTEXT_BASE_ALLOCATION, 0));
            FakeNbdServer.Req r = c.request();
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 5, r.cookie(), ByteBuffer.allocate(20).putInt(0)
                .putInt(4096).putInt(0).putInt(1 << 30).putInt(3).array());
            c.hang();
        }); NbdClient c = NbdClient.connect(s.uri(), opts().withMetaContexts(BASE))) {
            List<Extent> got = c.blockStatus(SIZE - 65536, 65536, false).get(20, TimeUnit.SECONDS)
                .get(NbdConstants.CONTEXT_BASE_ALLOCATION);
            assertEquals(List.of(new Extent(SIZE - 65536, 4096, 0), new Extent(SIZE - 61440, 61440, 3)), got);
        }
    }

    // ---- cookies and chunks ----

    @Test
    void replyForACookieAlreadyAnswered() throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 1, r.cookie(), FakeNbdServer.Conn.offsetData(0, new byte[4096]));
            c.request();
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 0, r.cookie(), new byte[0]); // cookie 1 again, not 2
            c.hang();
        }); NbdClient c = NbdClient.connect(s.uri(), opts())) {
            c.read(0, new byte[4096], 0, 4096).get(20, TimeUnit.SECONDS);
            ExecutionException e = assertThrows(ExecutionException.class,
                () -> c.read(4096, new byte[4096], 0, 4096).get(20, TimeUnit.SECONDS));
            assertProtocolError(e.getCause(), "structured reply chunk (None) for unknown cookie 0x1, expected one of 1 "
                + "in-flight requests");
        }
    }

    @Test
    void dataChunkWithAnOffsetNear2To63() throws Exception {
        Throwable t = readFailure(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            // offset + length overflows a long: must be caught before it is used as an array index
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 1, r.cookie(),
                FakeNbdServer.Conn.offsetData(Long.MAX_VALUE - 100, new byte[4096]));
            c.hang();
        });
        assertProtocolError(t, "OFFSET_DATA chunk [9223372036854775707, 9223372036854779803) for READ of 4096 bytes "
            + "at offset 0 (cookie 0x1) lies outside the request [0, 4096)");
    }

    @Test
    void holeChunkWithAnOffsetNear2To63() throws Exception {
        Throwable t = readFailure(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 2, r.cookie(), ByteBuffer.allocate(12)
                .putLong(Long.MAX_VALUE - 10).putInt(512).array());
            c.hang();
        });
        assertProtocolError(t, "OFFSET_HOLE chunk [9223372036854775797, 9223372036854776309) for READ of 4096 bytes");
    }

    @Test
    void dataChunkBeforeTheRequest() throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 1, r.cookie(), FakeNbdServer.Conn.offsetData(r.offset() - 512,
                new byte[512]));
            c.hang();
        }); NbdClient c = NbdClient.connect(s.uri(), opts())) {
            ExecutionException e = assertThrows(ExecutionException.class,
                () -> c.read(8192, new byte[4096], 0, 4096).get(20, TimeUnit.SECONDS));
            assertProtocolError(e.getCause(), "OFFSET_DATA chunk [7680, 8192) for READ of 4096 bytes at offset 8192 "
                + "(cookie 0x1) lies outside the request [8192, 12288)");
        }
    }

    @Test
    void errorOffsetBeyond2To63() throws Exception {
        Throwable t = readFailure(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            byte[] msg = "x".getBytes(StandardCharsets.UTF_8);
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 0x8002, r.cookie(), ByteBuffer.allocate(15).putInt(5)
                .putShort((short) 1).put(msg).putLong(-1L).array());
            c.hang();
        });
        assertProtocolError(t, "ERROR_OFFSET chunk for cookie 0x1 names offset 18446744073709551615, beyond any "
            + "export");
    }

    @Test
    void manyRequestsInFlightAllFailOnOneLie() throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            List<FakeNbdServer.Req> rs = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                rs.add(c.request());
            }
            FakeNbdServer.Req r = rs.get(3);
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 2, r.cookie(), ByteBuffer.allocate(12).putLong(r.offset())
                .putInt(8192).array()); // a hole larger than the request
            c.hang();
        }); NbdClient c = NbdClient.connect(s.uri(), opts())) {
            List<java.util.concurrent.CompletableFuture<Void>> fs = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                fs.add(c.read(i * 4096L, new byte[4096], 0, 4096));
            }
            for (var f : fs) {
                ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(20, TimeUnit.SECONDS));
                assertProtocolError(e.getCause(), "OFFSET_HOLE chunk [12288, 20480) for READ of 4096 bytes at offset "
                    + "12288 (cookie 0x4) lies outside the request [12288, 16384)");
            }
        }
    }
}
