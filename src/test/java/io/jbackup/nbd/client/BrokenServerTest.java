package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdError;
import io.jbackup.nbd.protocol.NbdProtocolException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A deliberately broken server (bad magic, huge lengths, wrong cookies, early EOF, silence, inconsistent chunks):
 * every case ends in a typed exception that names the problem, every in-flight request fails, nothing hangs.
 */
@Timeout(30)
@Tag("reliability")
class BrokenServerTest {
    static final long SIZE = 1 << 20;
    static final int TFLAGS = NbdConstants.TFLAG_HAS_FLAGS | NbdConstants.TFLAG_READ_ONLY;

    static ClientOptions opts() {
        return ClientOptions.defaults().withHandshakeTimeout(Duration.ofSeconds(5))
            .withRequestTimeout(Duration.ofSeconds(5));
    }

    static byte[] pattern(long offset, int len) {
        byte[] b = new byte[len];
        for (int i = 0; i < len; i++) {
            b[i] = (byte) (offset + i);
        }
        return b;
    }

    /** Runs one read against a server whose transmission phase is {@code onRead}; returns the failure. */
    static Throwable readFailure(FakeNbdServer.Script transmission) throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(transmission);
             NbdClient c = NbdClient.connect(s.uri(), opts())) {
            ExecutionException e = assertThrows(ExecutionException.class,
                () -> c.read(0, new byte[4096], 0, 4096).get(20, TimeUnit.SECONDS));
            // the connection is dead now: later requests fail at once with the same cause
            ExecutionException again = assertThrows(ExecutionException.class,
                () -> c.read(0, new byte[512], 0, 512).get(20, TimeUnit.SECONDS));
            assertEquals(e.getCause().getMessage(), again.getCause().getMessage());
            return e.getCause();
        }
    }

    static void assertProtocolError(Throwable t, String text) {
        assertInstanceOf(NbdProtocolException.class, t);
        assertTrue(t.getMessage().contains(text), t.getMessage());
    }

    @Test
    void badGreetingMagic() throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.out.writeBytes("HTTP/1.1 400 Bad Request\r\n\r\n");
            c.out.flush();
            c.hang();
        })) {
            NbdProtocolException e = assertThrows(NbdProtocolException.class, () -> NbdClient.connect(s.uri(), opts()));
            assertTrue(e.getMessage().contains("bad greeting magic 0x485454502f312e31"), e.getMessage());
            assertTrue(e.getMessage().contains("not an NBD server"), e.getMessage());
        }
    }

    @Test
    void hugeOptionReplyLength() throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.greeting(3);
            c.clientFlags();
            c.option();
            c.out.writeLong(NbdConstants.OPTION_REPLY_MAGIC);
            c.out.writeInt(8);
            c.out.writeInt(1);
            c.out.writeInt(0x7ffffff0);
            c.out.flush();
            c.hang();
        })) {
            NbdProtocolException e = assertThrows(NbdProtocolException.class, () -> NbdClient.connect(s.uri(), opts()));
            assertTrue(e.getMessage().contains("announces 2147483632 bytes of data; the limit is"), e.getMessage());
        }
    }

    @Test
    void badReplyMagic() throws Exception {
        Throwable t = readFailure(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            c.request();
            c.out.writeInt(0x25609513); // a request magic, not a reply
            c.out.writeLong(0);
            c.out.flush();
            c.hang();
        });
        assertProtocolError(t, "bad reply magic 0x25609513");
    }

    @Test
    void hugeChunkLength() throws Exception {
        Throwable t = readFailure(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 1, r.cookie(), 0xfffffff0L, new byte[0]);
            c.hang();
        });
        assertProtocolError(t, "OFFSET_DATA chunk for cookie 0x1 has length 4294967280");
    }

    @Test
    void dataChunkLargerThanTheRequest() throws Exception {
        Throwable t = readFailure(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 1, r.cookie(), 8 + 8192, new byte[8]);
            c.hang();
        });
        assertProtocolError(t, "OFFSET_DATA chunk [0, 8192) for READ of 4096 bytes at offset 0 (cookie 0x1) lies "
            + "outside the request [0, 4096)");
    }

    @Test
    void wrongCookieFailsEveryRequestInFlight() throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            for (int i = 0; i < 3; i++) {
                c.request();
            }
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 0, 0xbad, new byte[0]);
            c.hang();
        }); NbdClient c = NbdClient.connect(s.uri(), opts())) {
            List<CompletableFuture<Void>> fs = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                fs.add(c.read(i * 4096L, new byte[4096], 0, 4096));
            }
            for (CompletableFuture<Void> f : fs) {
                ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(20, TimeUnit.SECONDS));
                assertProtocolError(e.getCause(), "structured reply chunk (None) for unknown cookie 0xbad, expected "
                    + "one of 3 in-flight requests");
            }
        }
    }

    @Test
    void eofInTheMiddleOfAReply() throws Exception {
        Throwable t = readFailure(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 1, r.cookie(), 8 + 4096,
                FakeNbdServer.Conn.offsetData(0, new byte[1000]));
            c.socket.close();
        });
        assertProtocolError(t, "server closed the connection in the middle of the READ data of cookie 0x1 (1000 of "
            + "4096 bytes received)");
    }

    @Test
    void eofWithRequestsInFlight() throws Exception {
        Throwable t = readFailure(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            c.request();
            c.socket.close();
        });
        assertProtocolError(t, "closed the connection with 1 request unanswered (e.g. READ of 4096 bytes at "
            + "offset 0)");
    }

    @Test
    void hungReplyTimesOut() throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            c.hang();
        }); NbdClient c = NbdClient.connect(s.uri(), opts().withRequestTimeout(Duration.ofMillis(300)))) {
            ExecutionException e = assertThrows(ExecutionException.class,
                () -> c.read(0, new byte[4096], 0, 4096).get(20, TimeUnit.SECONDS));
            assertInstanceOf(NbdTimeoutException.class, e.getCause());
            assertTrue(e.getCause().getMessage().contains("no reply from nbd://127.0.0.1:" + s.uri().port()
                + "/ to READ of 4096 bytes at offset 0 (cookie 0x1) within 300 ms"), e.getCause().getMessage());
        }
    }

    @Test
    void hungHandshakeTimesOut() throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.greeting(3);
            c.hang();
        })) {
            NbdTimeoutException e = assertThrows(NbdTimeoutException.class,
                () -> NbdClient.connect(s.uri(), opts().withHandshakeTimeout(Duration.ofMillis(300))));
            assertTrue(e.getMessage().contains("timed out after 300 ms while waiting for the reply to "
                + "NBD_OPT_EXTENDED_HEADERS"), e.getMessage());
        }
    }

    @Test
    void successWithoutAllTheData() throws Exception {
        Throwable t = readFailure(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 1, r.cookie(), FakeNbdServer.Conn.offsetData(0, new byte[100]));
            c.hang();
        });
        assertProtocolError(t, "server reported success for READ of 4096 bytes at offset 0 (cookie 0x1) but sent "
            + "only 100 of 4096 bytes");
    }

    @Test
    void overlappingChunks() throws Exception {
        Throwable t = readFailure(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            c.chunk(0, 1, r.cookie(), FakeNbdServer.Conn.offsetData(1024, new byte[1024]));
            c.chunk(0, 2, r.cookie(), ByteBuffer.allocate(12).putLong(0).putInt(2048).array());
            c.hang();
        });
        assertProtocolError(t, "OFFSET_HOLE chunk [0, 2048) for READ of 4096 bytes at offset 0 (cookie 0x1) "
            + "overlaps data already received");
    }

    @Test
    void blockStatusChunkInReplyToRead() throws Exception {
        Throwable t = readFailure(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 5, r.cookie(), ByteBuffer.allocate(12).putInt(0).putInt(4096)
                .putInt(0).array());
            c.hang();
        });
        assertProtocolError(t, "server sent a BLOCK_STATUS chunk in reply to READ of 4096 bytes at offset 0");
    }

    @Test
    void simpleReplyToReadAfterStructuredRepliesWereNegotiated() throws Exception {
        Throwable t = readFailure(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            c.simple(0, r.cookie(), new byte[4096]);
            c.hang();
        });
        assertProtocolError(t, "simple reply to READ of 4096 bytes at offset 0 (cookie 0x1) although structured "
            + "replies were negotiated");
    }

    @Test
    void blockStatusForAContextThatWasNotNegotiated() throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of("base:allocation", 1));
            FakeNbdServer.Req r = c.request();
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 5, r.cookie(), ByteBuffer.allocate(12).putInt(2).putInt(4096)
                .putInt(0).array());
            c.hang();
        }); NbdClient c = NbdClient.connect(s.uri(), opts().withMetaContexts(List.of("base:allocation")))) {
            assertEquals(Map.of("base:allocation", 1), c.metaContexts());
            ExecutionException e = assertThrows(ExecutionException.class,
                () -> c.blockStatus(0, SIZE, false).get(20, TimeUnit.SECONDS));
            assertProtocolError(e.getCause(), "names context id 2, which was not negotiated");
        }
    }

    @Test
    void errorChunksFailOneCommandAndTheConnectionGoesOn() throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            byte[] msg = "disk on fire".getBytes();
            c.chunk(0, 1, r.cookie(), FakeNbdServer.Conn.offsetData(0, pattern(0, 512)));
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 0x8002, r.cookie(), ByteBuffer.allocate(14 + msg.length)
                .putInt(5).putShort((short) msg.length).put(msg).putLong(512).array());
            r = c.request();
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 1, r.cookie(), FakeNbdServer.Conn.offsetData(r.offset(),
                pattern(r.offset(), (int) r.length())));
            c.hang();
        }); NbdClient c = NbdClient.connect(s.uri(), opts())) {
            ExecutionException e = assertThrows(ExecutionException.class,
                () -> c.read(0, new byte[4096], 0, 4096).get(20, TimeUnit.SECONDS));
            NbdCommandException ce = assertInstanceOf(NbdCommandException.class, e.getCause());
            assertEquals(NbdError.EIO, ce.error());
            assertEquals(512, ce.offset());
            assertEquals("server failed READ of 4096 bytes at offset 0: EIO(0x5) (disk on fire) at offset 512",
                ce.getMessage());
            byte[] b = new byte[4096];
            c.read(8192, b, 0, b.length).get(20, TimeUnit.SECONDS);
            assertArrayEquals(pattern(8192, 4096), b);
        }
    }

    @Test
    void oldServerWithoutGoFallsBackToExportNameAndSimpleReplies() throws Exception {
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.greeting(NbdConstants.FLAG_FIXED_NEWSTYLE); // no NO_ZEROES: 124 zero bytes follow EXPORT_NAME
            c.clientFlags();
            while (true) {
                FakeNbdServer.Option o = c.option();
                if (o.code() == 1) {
                    break;
                }
                c.optReply(o.code(), 0x80000001, "unsupported".getBytes());
            }
            c.out.writeLong(SIZE);
            c.out.writeShort(NbdConstants.TFLAG_HAS_FLAGS | NbdConstants.TFLAG_SEND_FLUSH);
            c.out.write(new byte[124]);
            c.out.flush();
            while (true) {
                FakeNbdServer.Req r = c.request();
                if (r.type() == 2) {
                    return;
                }
                c.simple(0, r.cookie(), r.type() == 0 ? pattern(r.offset(), (int) r.length()) : null);
            }
        }); NbdClient c = NbdClient.connect(s.uri(), opts().withMetaContexts(List.of("base:allocation")))) {
            assertFalse(c.structuredReplies());
            assertEquals(SIZE, c.info().size());
            assertTrue(c.metaContexts().isEmpty());
            assertThrows(IllegalStateException.class, () -> c.blockStatus(0, 4096, false));
            byte[] b = new byte[(int) SIZE];
            c.read(0, b, 0, b.length).get(20, TimeUnit.SECONDS);
            assertArrayEquals(pattern(0, (int) SIZE), b);
            c.flush().get(20, TimeUnit.SECONDS);
        }
    }

    @Test
    void closeWaitsForRepliesInFlightThenSendsDisc() throws Exception {
        List<String> seen = new java.util.concurrent.CopyOnWriteArrayList<>();
        java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            seen.add("cmd " + r.type());
            Thread.sleep(200); // the client calls close() meanwhile
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 1, r.cookie(), FakeNbdServer.Conn.offsetData(0, pattern(0, 4096)));
            FakeNbdServer.Req disc = c.request();
            seen.add("cmd " + disc.type() + " offset " + disc.offset() + " length " + disc.length());
            seen.add("then " + c.in.read());
            done.countDown();
        })) {
            NbdClient c = NbdClient.connect(s.uri(), opts());
            byte[] b = new byte[4096];
            CompletableFuture<Void> f = c.read(0, b, 0, 4096);
            c.close();
            f.get(1, TimeUnit.SECONDS); // completed before close returned
            assertArrayEquals(pattern(0, 4096), b);
            assertTrue(done.await(10, TimeUnit.SECONDS));
            assertEquals(List.of("cmd 0", "cmd 2 offset 0 length 0", "then -1"), seen);
            assertTrue(s.errors().isEmpty(), s.errors().toString());
            assertThrows(IllegalStateException.class, () -> c.read(0, b, 0, 512));
        }
    }

    @Test
    void tlsRequiredButTheServerRefusesStartTls(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
        throws Exception {
        // a plaintext-only server: STARTTLS gets ERR_POLICY; with --tls=require the client must not go on
        java.util.concurrent.CountDownLatch aborted = new java.util.concurrent.CountDownLatch(1);
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.greeting(3);
            c.clientFlags();
            FakeNbdServer.Option o = c.option();
            c.optReply(o.code(), 0x80000002, "TLS not configured".getBytes());
            FakeNbdServer.Option next = c.option(); // a soft disconnect, never GO in plaintext
            if (next.code() != 2) {
                throw new IOException("client continued in plaintext with option " + next.code());
            }
            c.optReply(2, 1, new byte[0]);
            aborted.countDown();
        })) {
            io.jbackup.testutil.TlsFixtures.PskCreds creds = io.jbackup.testutil.TlsFixtures.psk(dir, "qemu");
            io.jbackup.nbd.tls.TlsConfig tls = new io.jbackup.nbd.tls.TlsConfig(io.jbackup.nbd.tls.TlsMode.REQUIRE,
                null, creds.keysFile(), "qemu", null, true);
            NbdHandshakeException e = assertThrows(NbdHandshakeException.class,
                () -> NbdClient.connect(s.uri(), opts().withTls(tls)));
            assertTrue(e.getMessage().contains("refused NBD_OPT_STARTTLS (ERR_POLICY(0x80000002): TLS not "
                + "configured)"), e.getMessage());
            assertTrue(e.getMessage().contains("will not fall back to plaintext"), e.getMessage());
            assertTrue(aborted.await(10, TimeUnit.SECONDS), "the client ended with NBD_OPT_ABORT: " + s.errors());
            assertTrue(s.errors().isEmpty(), s.errors().toString());
        }
    }

    @Test
    void eshutdownMakesTheClientDisconnect() throws Exception {
        List<Integer> seen = new java.util.concurrent.CopyOnWriteArrayList<>();
        java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            c.handshake(SIZE, TFLAGS, true, Map.of());
            FakeNbdServer.Req r = c.request();
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 0x8001, r.cookie(), ByteBuffer.allocate(6).putInt(108)
                .putShort((short) 0).array());
            seen.add(c.request().type());
            done.countDown();
        }); NbdClient c = NbdClient.connect(s.uri(), opts())) {
            ExecutionException e = assertThrows(ExecutionException.class,
                () -> c.read(0, new byte[4096], 0, 4096).get(20, TimeUnit.SECONDS));
            assertEquals(NbdError.ESHUTDOWN, assertInstanceOf(NbdCommandException.class, e.getCause()).error());
            assertTrue(done.await(10, TimeUnit.SECONDS));
            assertEquals(List.of(2), seen, "NBD_CMD_DISC follows ESHUTDOWN");
        }
    }
}
