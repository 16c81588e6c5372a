package io.jbackup.nbd.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdError;
import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.jbackup.nbd.protocol.NbdReplyChunkType;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A raw-socket client sends malformed handshakes and requests; each misbehaving connection is dropped or answered
 * with the right error, and the server keeps serving a well-behaved client meanwhile.
 */
@Tag("reliability")
class NbdServerRobustnessTest {
    private static final int MIB = 1 << 20;
    private static final int READ = 0;
    private static final int WRITE = 1;
    private static final int DISC = 2;
    private static final int FLUSH = 3;
    private static final int TRIM = 4;
    private static final int WRITE_ZEROES = 6;
    private static final int BLOCK_STATUS = 7;

    @TempDir
    static Path dir;
    static NbdServer server;
    static Path sock;
    static byte[] mem;
    static byte[] rw;
    static final AtomicInteger gatedReads = new AtomicInteger();
    static final AtomicInteger gatedCloses = new AtomicInteger();
    static volatile CompletableFuture<Void> gate = new CompletableFuture<>();

    /** Reads complete only when {@link #gate} completes. */
    static final class GatedExport extends ForwardingExport {
        GatedExport(NbdExport d) {
            super(d);
        }

        @Override
        public String name() {
            return "gated";
        }

        @Override
        public CompletableFuture<ReadResult> read(long offset, int length) {
            gatedReads.incrementAndGet();
            return gate.thenCompose(v -> delegate.read(offset, length));
        }

        @Override
        public void close() {
            gatedCloses.incrementAndGet();
        }
    }

    @BeforeAll
    static void start() throws IOException {
        mem = new byte[4 * MIB];
        for (int i = 0; i < mem.length; i++) {
            mem[i] = (byte) (i * 31 + (i >>> 12));
        }
        Arrays.fill(mem, MIB, 2 * MIB, (byte) 0);
        rw = new byte[MIB];
        SimpleExportProvider provider = new SimpleExportProvider()
            .add("mem", "read-only memory", () -> new MemoryExport("mem", "read-only memory", mem, true))
            .add("rw", "writable memory", () -> new MemoryExport("rw", "writable memory", rw, false))
            .add("gated", "slow reads", () -> new GatedExport(new MemoryExport("gated", "", mem, true)));
        sock = dir.resolve("nbd.sock");
        server = NbdServer.start(ServerConfig.builder().unixSocket(sock).handshakeTimeout(Duration.ofSeconds(2))
            .maxInFlight(16).maxInFlightBytes(8L * MIB).maxPayload(2 * MIB).build(), provider);
    }

    @AfterAll
    static void stop() {
        gate.complete(null);
        if (server != null) {
            server.close();
        }
    }

    private static RawNbdClient connect() throws IOException {
        return new RawNbdClient(sock).handshake();
    }

    /** A well-behaved client reads 64 KiB at {@code offset} and checks the bytes. */
    private static void healthyRead(long offset) throws IOException {
        try (RawNbdClient c = connect()) {
            c.go("mem", true);
            c.sendRequest(0, READ, 99, offset, 65536, null);
            byte[] got = readAll(c, 99, offset, 65536);
            assertArrayEquals(Arrays.copyOfRange(mem, (int) offset, (int) offset + 65536), got);
            c.sendRequest(0, DISC, 100, 0, 0, null);
            assertTrue(c.closedByServer());
        }
    }

    /** Collects the chunks of one structured READ reply into bytes. */
    private static byte[] readAll(RawNbdClient c, long cookie, long offset, int length) throws IOException {
        byte[] out = new byte[length];
        RawNbdClient.Chunk ch;
        do {
            ch = c.readReply(length);
            assertEquals(cookie, ch.cookie());
            assertEquals(0, ch.error(), () -> "error chunk");
            ByteBuffer p = ByteBuffer.wrap(ch.payload());
            if (ch.type() == NbdReplyChunkType.OFFSET_DATA.code()) {
                long at = p.getLong() - offset;
                p.get(out, (int) at, p.remaining());
            } else if (ch.type() == NbdReplyChunkType.OFFSET_HOLE.code()) {
                long at = p.getLong() - offset;
                Arrays.fill(out, (int) at, (int) at + p.getInt(), (byte) 0);
            }
        } while (!ch.done());
        return out;
    }

    // ---- handshake -----------------------------------------------------------------------------------------

    @Test
    void badOptionMagicClosesOnlyThatConnection() throws IOException {
        try (RawNbdClient c = connect()) {
            c.write(ByteBuffer.allocate(16).putLong(0x4141414141414141L).putInt(7).putInt(0).flip());
            assertTrue(c.closedByServer());
        }
        healthyRead(0);
    }

    @Test
    void garbageInsteadOfAGreetingReplyIsDropped() throws IOException {
        try (RawNbdClient c = new RawNbdClient(sock)) {
            c.read(18);
            byte[] junk = new byte[4096];
            Arrays.fill(junk, (byte) 0x5a);
            c.write(junk);
            assertTrue(c.closedByServer());
        }
        healthyRead(4096);
    }

    @Test
    void unknownClientFlagsClose() throws IOException {
        try (RawNbdClient c = new RawNbdClient(sock)) {
            c.read(18);
            c.write(ByteBuffer.allocate(4).putInt(0x7).flip());
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void unknownOptionGetsErrUnsupAndParsingContinues() throws IOException {
        try (RawNbdClient c = connect()) {
            c.sendOption(0x7777, new byte[] {1, 2, 3, 4, 5});
            RawNbdClient.OptReply r = c.readOptionReply();
            assertEquals(0x7777, r.option());
            assertEquals(NbdOptionReplyType.ERR_UNSUP, r.replyType());
            c.sendOption(4, new byte[0]); // NBD_OPT_PEEK_EXPORT, withdrawn: not supported
            assertEquals(NbdOptionReplyType.ERR_UNSUP, c.readOptionReply().replyType());
            c.go("mem", true);
            c.sendRequest(0, READ, 1, 0, 512, null);
            assertArrayEquals(Arrays.copyOf(mem, 512), readAll(c, 1, 0, 512));
        }
    }

    @Test
    void tooLongOptionIsSkippedAndTheNextOneWorks() throws IOException {
        try (RawNbdClient c = connect()) {
            c.sendOption(10, new byte[(64 << 10) + 1]);
            RawNbdClient.OptReply r = c.readOptionReply();
            assertEquals(NbdOptionReplyType.ERR_TOO_BIG, r.replyType());
            assertTrue(r.text().contains("65537"), r.text());
            c.go("mem", false);
        }
    }

    @Test
    void hugeOptionLengthIsRefusedWithoutBufferingAndTheHandshakeTimesOut() throws IOException {
        try (RawNbdClient c = connect()) {
            c.write(ByteBuffer.allocate(16).putLong(NbdConstants.IHAVEOPT).putInt(7).putInt(0xFFFFFFF0).flip());
            assertEquals(NbdOptionReplyType.ERR_TOO_BIG, c.readOptionReply().replyType());
            c.write(new byte[1 << 20]);
            healthyRead(8192);
            assertTrue(c.closedByServer(), "the handshake timeout must close the connection");
        }
    }

    @Test
    void slowlorisIsClosedByTheHandshakeTimeout() throws IOException, InterruptedException {
        try (RawNbdClient c = new RawNbdClient(sock)) {
            c.read(18);
            byte[] header = ByteBuffer.allocate(20).putInt(3).putLong(NbdConstants.IHAVEOPT).putInt(7).putInt(100).array();
            boolean closed = false;
            for (int i = 0; i < header.length && !closed; i++) {
                try {
                    c.write(new byte[] {header[i]});
                } catch (IOException e) {
                    closed = true;
                }
                Thread.sleep(250);
            }
            assertTrue(closed || c.closedByServer());
        }
    }

    @Test
    void malformedOptionsGetErrInvalidAndParsingContinues() throws IOException {
        try (RawNbdClient c = connect()) {
            c.sendOption(7, ByteBuffer.allocate(8).putInt(1000).putInt(0).array()); // name length beyond data
            assertEquals(NbdOptionReplyType.ERR_INVALID, c.readOptionReply().replyType());
            c.sendOption(6, ByteBuffer.allocate(9).putInt(0).putShort((short) 2).put(new byte[3]).array());
            assertEquals(NbdOptionReplyType.ERR_INVALID, c.readOptionReply().replyType());
            c.sendOption(10, RawNbdClient.metaData("mem", "base:allocation"));
            RawNbdClient.OptReply r = c.readOptionReply();
            assertEquals(NbdOptionReplyType.ERR_INVALID, r.replyType(), "SET_META_CONTEXT before structured replies");
            c.sendOption(3, new byte[] {1});
            assertEquals(NbdOptionReplyType.ERR_INVALID, c.readOptionReply().replyType(), "LIST with data");
            c.sendOption(8, new byte[0]);
            assertEquals(1, c.readOptionReply().type());
            byte[] bad = RawNbdClient.metaData("mem", "base:allocation");
            ByteBuffer.wrap(bad).putInt(4 + 3 + 4, 9999); // first query length beyond the data
            c.sendOption(9, bad);
            assertEquals(NbdOptionReplyType.ERR_INVALID, c.readOptionReply().replyType());
            c.sendOption(7, RawNbdClient.goData("no-such-export"));
            RawNbdClient.OptReply unknown = c.readOptionReply();
            assertEquals(NbdOptionReplyType.ERR_UNKNOWN, unknown.replyType());
            assertTrue(unknown.text().contains("no-such-export"), unknown.text());
            c.sendOption(5, new byte[0]);
            assertEquals(NbdOptionReplyType.ERR_POLICY, c.readOptionReply().replyType(), "STARTTLS without TLS");
            c.go("mem", true);
        }
    }

    @Test
    void metaContextQueries() throws IOException {
        try (RawNbdClient c = connect()) {
            c.sendOption(8, new byte[0]);
            c.readOptionReply();
            c.sendOption(9, RawNbdClient.metaData("mem"));
            RawNbdClient.OptReply r = c.readOptionReply();
            assertEquals(NbdOptionReplyType.META_CONTEXT, r.replyType());
            assertEquals("base:allocation", new String(r.data(), 4, r.data().length - 4));
            assertEquals(NbdOptionReplyType.ACK, c.readOptionReply().replyType());
            c.sendOption(9, RawNbdClient.metaData("mem", "base:", "qemu:", "nonsense"));
            assertEquals(NbdOptionReplyType.META_CONTEXT, c.readOptionReply().replyType());
            assertEquals(NbdOptionReplyType.ACK, c.readOptionReply().replyType());
            c.sendOption(10, RawNbdClient.metaData("mem", "base:", "x:y"));
            assertEquals(NbdOptionReplyType.ACK, c.readOptionReply().replyType(), "wildcards select nothing");
        }
    }

    @Test
    void exportNameAndAbort() throws IOException {
        try (RawNbdClient c = new RawNbdClient(sock)) {
            c.read(18);
            c.write(ByteBuffer.allocate(4).putInt(1).flip()); // no NO_ZEROES: 124 bytes of padding
            c.sendOption(1, "mem".getBytes());
            ByteBuffer r = c.read(10 + 124);
            assertEquals(4L * MIB, r.getLong());
            assertTrue((r.getShort() & NbdConstants.TFLAG_READ_ONLY) != 0);
            c.sendRequest(0, READ, 5, 100, 200, null);
            RawNbdClient.Chunk ch = c.readReply(200);
            assertEquals(-1, ch.type());
            assertArrayEquals(Arrays.copyOfRange(mem, 100, 300), ch.payload());
        }
        try (RawNbdClient c = connect()) {
            c.sendOption(1, "missing".getBytes());
            assertTrue(c.closedByServer(), "EXPORT_NAME of an unknown export must close");
        }
        try (RawNbdClient c = connect()) {
            c.sendOption(2, new byte[0]);
            assertEquals(NbdOptionReplyType.ACK, c.readOptionReply().replyType());
            assertTrue(c.closedByServer());
        }
    }

    // ---- transmission --------------------------------------------------------------------------------------

    @Test
    void invalidRequestsGetTheRightErrors() throws IOException {
        for (boolean structured : new boolean[] {false, true}) {
            try (RawNbdClient c = connect()) {
                c.go("mem", structured);
                c.sendRequest(0, READ, 1, 4L * MIB - 512, 1024, null);
                assertError(c, 1, NbdError.EINVAL, structured, "beyond the end");
                c.sendRequest(0, READ, 2, -4096, 512, null);
                assertError(c, 2, NbdError.EINVAL, structured, "beyond the end");
                c.sendRequest(0, READ, 3, 0, 4 * MIB, null);
                assertError(c, 3, NbdError.EINVAL, structured, "maximum payload");
                c.sendRequest(0, WRITE, 4, 0, 4096, new byte[4096]);
                assertError(c, 4, NbdError.EPERM, structured, "read-only");
                c.sendRequest(0, TRIM, 5, 0, 4096, null);
                assertError(c, 5, NbdError.EPERM, structured, "read-only");
                c.sendRequest(0, WRITE_ZEROES, 6, 0, 4096, null);
                assertError(c, 6, NbdError.EPERM, structured, "read-only");
                c.sendRequest(0, 0x55, 7, 0, 0, null);
                assertError(c, 7, NbdError.EINVAL, structured, "unsupported command");
                c.sendRequest(0x40, READ, 8, 0, 512, null);
                assertError(c, 8, NbdError.EINVAL, structured, "unsupported flags");
                c.sendRequest(0, FLUSH, 9, 1, 0, null);
                assertError(c, 9, NbdError.EINVAL, structured, "offset and length 0");
                if (!structured) {
                    c.sendRequest(0, BLOCK_STATUS, 10, 0, 512, null);
                    assertError(c, 10, NbdError.EINVAL, structured, "meta context");
                    c.sendRequest(NbdConstants.CMD_FLAG_DF, READ, 11, 0, 512, null);
                    assertError(c, 11, NbdError.EINVAL, structured, "flags");
                }
                // the WRITE payload above was consumed: the stream is still in sync
                c.sendRequest(0, READ, 12, 0, 512, null);
                RawNbdClient.Chunk ok = c.readReply(512);
                assertEquals(12, ok.cookie());
                assertEquals(0, ok.error());
                c.sendRequest(0, FLUSH, 13, 0, 0, null);
                assertEquals(0, c.readReply(0).error());
            }
        }
    }

    private static void assertError(RawNbdClient c, long cookie, NbdError err, boolean structured, String text)
        throws IOException {
        RawNbdClient.Chunk ch = c.readReply(0);
        assertEquals(cookie, ch.cookie());
        assertEquals(err.code(), ch.error(), "error for cookie " + cookie);
        if (structured) {
            assertEquals(NbdReplyChunkType.ERROR.code(), ch.type());
            assertTrue(ch.done());
            assertTrue(ch.message().contains(text), ch.message());
        } else {
            assertEquals(-1, ch.type());
        }
    }

    @Test
    void oversizedWriteIsRefusedAndItsPayloadSkipped() throws IOException {
        try (RawNbdClient c = connect()) {
            c.go("rw", true);
            c.sendRequest(0, WRITE, 1, 0, 3 * MIB, new byte[3 * MIB]);
            assertError(c, 1, NbdError.EINVAL, true, "maximum payload");
            c.sendRequest(0, WRITE, 2, 0, 4L * MIB, null); // the 4 MiB payload follows in pieces and is skipped
            c.write(new byte[4 * MIB]);
            assertError(c, 2, NbdError.EINVAL, true, "maximum payload");
            c.sendRequest(0, WRITE, 3, MIB - 512, 1024, new byte[1024]);
            assertError(c, 3, NbdError.ENOSPC, true, "beyond the end");
            c.sendRequest(0, READ, 4, 0, 512, null);
            readAll(c, 4, 0, 512);
        }
    }

    @Test
    void writesTrimAndZeroesOnAWritableExport() throws IOException {
        byte[] data = new byte[8192];
        Arrays.fill(data, (byte) 7);
        try (RawNbdClient c = connect()) {
            int flags = c.go("rw", true);
            assertTrue((flags & NbdConstants.TFLAG_SEND_WRITE_ZEROES) != 0 && (flags & NbdConstants.TFLAG_READ_ONLY) == 0);
            c.sendRequest(NbdConstants.CMD_FLAG_FUA, WRITE, 1, 65536, 8192, data);
            RawNbdClient.Chunk ok = c.readReply(0);
            assertEquals(0, ok.error());
            assertEquals(-1, ok.type(), "a successful write gets a simple reply");
            assertArrayEquals(data, readAll(c, 2, 65536, 8192, true));
            c.sendRequest(NbdConstants.CMD_FLAG_NO_HOLE, WRITE_ZEROES, 3, 65536, 4096, null);
            assertEquals(0, c.readReply(0).error());
            c.sendRequest(0, READ, 4, 65536, 8192, null);
            byte[] back = readAll(c, 4, 65536, 8192);
            assertArrayEquals(new byte[4096], Arrays.copyOf(back, 4096));
            assertArrayEquals(Arrays.copyOf(data, 4096), Arrays.copyOfRange(back, 4096, 8192));
            c.sendRequest(0, FLUSH, 5, 0, 0, null);
            assertEquals(0, c.readReply(0).error());
        }
    }

    private static byte[] readAll(RawNbdClient c, long cookie, long offset, int length, boolean send) throws IOException {
        if (send) {
            c.sendRequest(0, READ, cookie, offset, length, null);
        }
        return readAll(c, cookie, offset, length);
    }

    @Test
    void structuredReadsSendHolesAndDfSendsOneChunk() throws IOException {
        try (RawNbdClient c = connect()) {
            int flags = c.go("mem", true);
            assertTrue((flags & NbdConstants.TFLAG_SEND_DF) != 0);
            // [MIB - 64K, MIB + 128K): data then zeroes (MemoryExport sends one data chunk; a hole needs a sparse export)
            byte[] got = readAll(c, 1, MIB - 65536, 196608, true);
            assertArrayEquals(Arrays.copyOfRange(mem, MIB - 65536, MIB + 131072), got);
            c.sendRequest(NbdConstants.CMD_FLAG_DF, READ, 2, 0, 65536, null);
            RawNbdClient.Chunk ch = c.readReply(0);
            assertEquals(NbdReplyChunkType.OFFSET_DATA.code(), ch.type());
            assertTrue(ch.done());
            assertEquals(8 + 65536, ch.payload().length);
        }
    }

    @Test
    void blockStatusRespectsTheRequestedLengthAndReqOne() throws IOException {
        try (RawNbdClient c = connect()) {
            c.go("mem", true);
            // [0,1M) data, [1M,2M) zero, [2M,4M) data
            c.sendRequest(0, BLOCK_STATUS, 1, 512 * 1024, 1024 * 1024, null);
            List<long[]> ext = extents(c.readReply(0));
            assertEquals(2, ext.size());
            assertArrayEquals(new long[] {512 * 1024, 0}, ext.get(0));
            assertArrayEquals(new long[] {512 * 1024, 3}, ext.get(1));
            c.sendRequest(NbdConstants.CMD_FLAG_REQ_ONE, BLOCK_STATUS, 2, 0, 3 * MIB, null);
            ext = extents(c.readReply(0));
            assertEquals(1, ext.size());
            assertArrayEquals(new long[] {MIB, 0}, ext.get(0));
            c.sendRequest(NbdConstants.CMD_FLAG_REQ_ONE, BLOCK_STATUS, 3, MIB, 4096, null);
            ext = extents(c.readReply(0));
            assertArrayEquals(new long[] {4096, 3}, ext.get(0));
            c.sendRequest(0, BLOCK_STATUS, 4, 4L * MIB - 4096, 8192, null);
            assertError(c, 4, NbdError.EINVAL, true, "beyond the end");
        }
    }

    private static List<long[]> extents(RawNbdClient.Chunk ch) {
        assertEquals(NbdReplyChunkType.BLOCK_STATUS.code(), ch.type());
        assertTrue(ch.done());
        ByteBuffer b = ByteBuffer.wrap(ch.payload());
        assertEquals(0, b.getInt(), "context id of base:allocation");
        List<long[]> l = new java.util.ArrayList<>();
        while (b.hasRemaining()) {
            l.add(new long[] {b.getInt() & 0xffffffffL, b.getInt()});
        }
        return l;
    }

    @Test
    void badRequestMagicClosesTheConnection() throws IOException {
        try (RawNbdClient c = connect()) {
            c.go("mem", true);
            c.write(ByteBuffer.allocate(28).putInt(0x12345678).rewind());
            assertTrue(c.closedByServer());
        }
        healthyRead(MIB);
    }

    @Test
    void discFinishesInFlightRequestsThenCloses() throws IOException {
        try (RawNbdClient c = connect()) {
            c.go("mem", false);
            for (int i = 0; i < 20; i++) {
                c.sendRequest(0, READ, i, i * 65536L, 65536, null);
            }
            c.sendRequest(0, DISC, 99, 0, 0, null);
            Set<Long> cookies = new HashSet<>();
            for (int i = 0; i < 20; i++) {
                RawNbdClient.Chunk ch = c.readReply(65536);
                assertEquals(0, ch.error());
                int off = (int) ch.cookie() * 65536;
                assertArrayEquals(Arrays.copyOfRange(mem, off, off + 65536), ch.payload());
                cookies.add(ch.cookie());
            }
            assertEquals(20, cookies.size());
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void hangUpWithRepliesPendingOnlyLosesThatConnection() throws Exception {
        gate = new CompletableFuture<>();
        int readsBefore = gatedReads.get();
        int closesBefore = gatedCloses.get();
        try (RawNbdClient c = connect()) {
            c.go("gated", true);
            for (int i = 0; i < 12; i++) {
                c.sendRequest(0, READ, i, i * 65536L, 65536, null);
            }
            waitFor(() -> gatedReads.get() - readsBefore == 12, "12 reads in flight");
        }
        healthyRead(3 * MIB);
        gate.complete(null);
        waitFor(() -> gatedCloses.get() > closesBefore, "the export to be closed after its reads finished");
        healthyRead(2 * MIB);
    }

    @Test
    void aClientThatDoesNotReadRepliesStopsTheServerReadingItsRequests() throws Exception {
        gate = CompletableFuture.completedFuture(null);
        int before = gatedReads.get();
        try (RawNbdClient c = connect()) {
            c.go("gated", false);
            c.timeout(500);
            int sent = 0;
            try {
                for (; sent < 2000; sent++) {
                    c.sendRequest(0, READ, sent, 0, MIB, null);
                }
            } catch (IOException writeBlocked) {
                // the server stopped reading and the socket buffers are full
            }
            Thread.sleep(500);
            int started = gatedReads.get() - before;
            // 8 MiB in flight plus what fits in the socket buffers
            assertTrue(started <= 16, "server started " + started + " reads of 1 MiB for a client that reads nothing");
            assertTrue(sent > started, "sent " + sent);
            healthyRead(0);
        }
        healthyRead(65536);
    }

    @Test
    void connectionLimitAndGracefulClose() throws Exception {
        Path s2 = dir.resolve("limited.sock");
        CompletableFuture<Void> slow = new CompletableFuture<>();
        SimpleExportProvider p = new SimpleExportProvider().add("slow", "", () -> new ForwardingExport(
            new MemoryExport("slow", "", mem, true)) {
            @Override
            public CompletableFuture<ReadResult> read(long offset, int length) {
                return slow.thenCompose(v -> delegate.read(offset, length));
            }
        });
        NbdServer s = NbdServer.start(ServerConfig.builder().unixSocket(s2).maxConnections(1)
            .shutdownTimeout(Duration.ofSeconds(10)).build(), p);
        try (RawNbdClient a = new RawNbdClient(s2).handshake()) {
            a.go("slow", true);
            try (RawNbdClient b = new RawNbdClient(s2)) {
                assertThrows(EOFException.class, () -> b.read(18), "the second connection is over the limit");
            }
            a.sendRequest(0, READ, 1, 0, 4096, null);
            Thread closer = new Thread(s::close);
            closer.start();
            Thread.sleep(300);
            assertTrue(closer.isAlive(), "close() waits for the in-flight read");
            a.sendRequest(0, READ, 2, 0, 4096, null);
            RawNbdClient.Chunk refused = a.readReply(0);
            assertEquals(2, refused.cookie());
            assertEquals(NbdError.ESHUTDOWN.code(), refused.error(), "a request during shutdown");
            slow.complete(null);
            byte[] got = readAll(a, 1, 0, 4096);
            assertArrayEquals(Arrays.copyOf(mem, 4096), got);
            closer.join(10_000);
            assertFalse(closer.isAlive());
            assertTrue(a.closedByServer());
        } finally {
            s.close();
        }
        assertFalse(s2.toFile().exists(), "the socket file is removed");
    }

    private static void waitFor(java.util.function.BooleanSupplier cond, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(10);
        }
    }
}
