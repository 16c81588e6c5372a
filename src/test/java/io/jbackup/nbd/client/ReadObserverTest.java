package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdError;
import io.jbackup.nbd.protocol.NbdHeaderMode;
import io.jbackup.nbd.protocol.NbdReply;
import io.jbackup.nbd.protocol.ReplyData;
import io.jbackup.nbd.protocol.ServerReplyEncoder;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link ReadObserver}: every byte of a READ is reported exactly once, only once it holds its final content, for
 * data and hole chunks in any order and a simple reply, whatever the socket's splits (the reply fed at every split
 * point, and in random pieces).
 */
class ReadObserverTest {
    static final int K = 1024;
    static final long AT = 1 << 20;

    /** What the observer saw: each piece's range and its content at the moment it was reported. */
    record Piece(int off, byte[] content) {}

    private static byte[] pattern(int n, int seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    private static byte[] wire(NbdHeaderMode mode, Object... replies) {
        EmbeddedChannel ch = new EmbeddedChannel(new ServerReplyEncoder(mode, null));
        ch.writeOutbound(replies);
        ByteBuf all = Unpooled.buffer();
        for (ByteBuf b; (b = ch.readOutbound()) != null; ) {
            all.writeBytes(b);
            b.release();
        }
        ch.finishAndReleaseAll();
        byte[] out = new byte[all.readableBytes()];
        all.readBytes(out);
        return out;
    }

    /** Feeds {@code wire} in pieces ending at {@code cuts}; returns the pieces reported, checks the read's data. */
    private static List<Piece> feed(byte[] wire, int[] cuts, boolean structured, byte[] expected) throws Exception {
        ClientReplyHarness h = new ClientReplyHarness(1L << 30, structured, Map.of(), 1 << 20, 1 << 16);
        byte[] dst = new byte[expected.length];
        Arrays.fill(dst, (byte) 0x5a); // a hole must be zero-filled before it is reported
        List<Piece> seen = new ArrayList<>();
        CompletableFuture<Void> f = h.read(AT, dst, (off, len) -> seen.add(new Piece(off,
            Arrays.copyOfRange(dst, off, off + len))));
        int from = 0;
        for (int cut : cuts) {
            h.channel().writeInbound(Unpooled.wrappedBuffer(wire, from, cut - from));
            from = cut;
        }
        h.channel().writeInbound(Unpooled.wrappedBuffer(wire, from, wire.length - from));
        assertTrue(f.isDone() && !f.isCompletedExceptionally(), "read did not complete");
        assertArrayEquals(expected, dst);
        h.channel().finishAndReleaseAll();
        return seen;
    }

    private static void assertEachByteOnceWithItsFinalContent(List<Piece> seen, byte[] expected, String what) {
        int[] count = new int[expected.length];
        for (Piece p : seen) {
            assertArrayEquals(Arrays.copyOfRange(expected, p.off(), p.off() + p.content().length), p.content(),
                what + ": piece at " + p.off() + " reported before its bytes were final");
            for (int i = p.off(); i < p.off() + p.content().length; i++) {
                count[i]++;
            }
        }
        for (int i = 0; i < count.length; i++) {
            assertEquals(1, count[i], what + ": byte " + i + " reported " + count[i] + " times");
        }
    }

    @Test
    void structuredDataAndHoleChunksOutOfOrderAreEachReportedOnceWhenFinal() throws Exception {
        byte[] a = pattern(8 * K, 1);
        byte[] c = pattern(16 * K, 2);
        byte[] expected = new byte[32 * K];
        System.arraycopy(a, 0, expected, 8 * K, a.length);
        System.arraycopy(c, 0, expected, 16 * K, c.length);
        int done = NbdConstants.REPLY_FLAG_DONE;
        byte[] wire = wire(NbdHeaderMode.COMPACT,
            new NbdReply.OffsetData(1, 0, AT + 8 * K, a.length), new ReplyData(1, 0, Unpooled.wrappedBuffer(a), true,
                false),
            new NbdReply.OffsetHole(1, 0, AT, 8 * K),
            new NbdReply.OffsetData(1, done, AT + 16 * K, c.length), new ReplyData(1, 0, Unpooled.wrappedBuffer(c),
                true, true));
        // every single split point, then random cuts into many pieces
        for (int cut = 1; cut < wire.length; cut += 97) {
            assertEachByteOnceWithItsFinalContent(feed(wire, new int[] {cut}, true, expected), expected,
                "split at " + cut);
        }
        Random r = new Random(3);
        for (int round = 0; round < 20; round++) {
            int[] cuts = r.ints(40, 1, wire.length).sorted().distinct().toArray();
            assertEachByteOnceWithItsFinalContent(feed(wire, cuts, true, expected), expected, "round " + round);
        }
    }

    @Test
    void simpleReplyDataIsReportedOnceWhenFinal() throws Exception {
        byte[] expected = pattern(24 * K, 4);
        byte[] wire = wire(NbdHeaderMode.COMPACT, new NbdReply.Simple(1, NbdError.OK, expected.length),
            new ReplyData(1, 0, Unpooled.wrappedBuffer(expected), true, true));
        Random r = new Random(5);
        for (int round = 0; round < 20; round++) {
            int[] cuts = r.ints(30, 1, wire.length).sorted().distinct().toArray();
            assertEachByteOnceWithItsFinalContent(feed(wire, cuts, false, expected), expected, "round " + round);
        }
    }
}
