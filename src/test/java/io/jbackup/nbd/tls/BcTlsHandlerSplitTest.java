package io.jbackup.nbd.tls;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jbackup.testutil.TlsFixtures;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFuture;
import io.netty.channel.embedded.EmbeddedChannel;

import java.nio.file.Path;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Client and server {@link BcTlsHandler} in two {@link EmbeddedChannel}s, with every ciphertext buffer cut into
 * small pieces (1 byte during the handshake, 1..7 bytes afterwards) before it is delivered: partial records and
 * partial handshake messages must be buffered, and writes made before the handshake must come out after it.
 */
class BcTlsHandlerSplitTest {
    @TempDir
    Path tmp;

    private final Random random = new Random(3);

    /** Moves all pending outbound ciphertext of {@code from} into {@code to} in pieces; returns bytes moved. */
    private int pump(EmbeddedChannel from, EmbeddedChannel to, int maxPiece) {
        int moved = 0;
        for (ByteBuf b; (b = from.readOutbound()) != null; ) {
            try {
                while (b.isReadable() && to.isOpen()) {
                    int n = Math.min(b.readableBytes(), 1 + random.nextInt(maxPiece));
                    to.writeInbound(b.readRetainedSlice(n));
                    moved += n;
                }
            } finally {
                b.release();
            }
        }
        return moved;
    }

    private void pumpUntilQuiet(EmbeddedChannel c, EmbeddedChannel s, int maxPiece) {
        for (int i = 0; i < 100; i++) {
            if (pump(c, s, maxPiece) + pump(s, c, maxPiece) == 0) {
                return;
            }
        }
        throw new AssertionError("endless ping-pong");
    }

    @ParameterizedTest
    @EnumSource(value = TlsVersions.class, names = {"TLS_1_3", "TLS_1_2"})
    void handshakeAndDataSurviveArbitrarySplits(TlsVersions v) throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(tmp, "alice");
        Probe cp = new Probe();
        Probe sp = new Probe();
        EmbeddedChannel c = new EmbeddedChannel(BcTlsHandler.pskClient("alice", creds.key(), creds.keysFile(), v,
            10_000), cp);
        EmbeddedChannel s = new EmbeddedChannel(BcTlsHandler.pskServer(PskKeyFile.load(creds.keysFile()),
            TlsVersions.TLS_1_3_AND_1_2, 10_000), sp);

        byte[] early = new byte[20_000];
        random.nextBytes(early);
        ChannelFuture earlyWrite = c.writeAndFlush(Unpooled.wrappedBuffer(early));
        assertFalse(earlyWrite.isDone(), "queued until the handshake completes");

        pumpUntilQuiet(c, s, 1);
        assertTrue(cp.handshake.isDone() && sp.handshake.isDone(), "both handshakes complete");
        assertEquals(v == TlsVersions.TLS_1_3 ? "TLSv1.3" : "TLSv1.2", cp.awaitSuccess().protocol());
        assertEquals(cp.awaitSuccess(), sp.awaitSuccess());
        assertTrue(earlyWrite.isSuccess());
        assertArrayEquals(early, sp.read(early.length));

        byte[] back = new byte[50_000];
        random.nextBytes(back);
        ByteBuf direct = s.alloc().directBuffer().writeBytes(back);
        s.writeAndFlush(direct);
        pumpUntilQuiet(c, s, 7);
        assertArrayEquals(back, cp.read(back.length));
        assertEquals(0, cp.buffered());

        // close_notify from the client closes the server side too
        c.close();
        pumpUntilQuiet(c, s, 3);
        assertFalse(s.isOpen(), "server closed on close_notify");
        assertFalse(cp.error.isDone() || sp.error.isDone(), () -> "errors: " + cp.error.getNow(null) + " / "
            + sp.error.getNow(null));
        assertEquals(1, cp.handshakeEvents());
        assertEquals(1, sp.handshakeEvents());
        c.finishAndReleaseAll();
        s.finishAndReleaseAll();
    }

    @Test
    void garbageInsteadOfTlsFailsWithNbdTlsException() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(tmp, "alice");
        Probe sp = new Probe();
        EmbeddedChannel s = new EmbeddedChannel(BcTlsHandler.pskServer(PskKeyFile.load(creds.keysFile()),
            TlsVersions.TLS_1_3_AND_1_2, 10_000), sp);
        s.writeInbound(Unpooled.copiedBuffer("NBD plaintext where a ClientHello belongs\n".getBytes()));
        TlsHandshakeCompletion done = sp.awaitHandshake();
        assertFalse(done.success());
        assertTrue(done.cause() instanceof NbdTlsException, String.valueOf(done.cause()));
        assertTrue(sp.awaitError() == done.cause());
        assertFalse(s.isOpen());
        s.finishAndReleaseAll();
    }

    @Test
    void writesAfterFailureAreRejectedAndReleased() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(tmp, "alice");
        Probe cp = new Probe();
        EmbeddedChannel c = new EmbeddedChannel(BcTlsHandler.pskClient("alice", creds.key(), creds.keysFile(),
            TlsVersions.TLS_1_3_AND_1_2, 10_000), cp);
        ByteBuf pending = Unpooled.copiedBuffer(new byte[10]);
        ChannelFuture f = c.writeAndFlush(pending);
        c.writeInbound(Unpooled.copiedBuffer(new byte[] {21, 3, 3, 0, 2, 2, 40})); // fatal handshake_failure alert
        assertTrue(f.isDone() && !f.isSuccess(), "pending write failed");
        assertEquals(0, pending.refCnt(), "pending write released");
        assertFalse(cp.awaitHandshake().success());
        c.finishAndReleaseAll();
    }
}
