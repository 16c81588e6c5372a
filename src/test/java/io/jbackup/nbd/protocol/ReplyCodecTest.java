package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.DecoderException;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ReplyCodecTest {
    /** READ data reassembled from its pieces. */
    record Data(long cookie, String hex, boolean done) {
    }

    /** Merges ReplyData pieces (checking their order) into one {@link Data} per payload. */
    static final Function<List<Object>, List<Object>> MERGE = in -> {
        List<Object> out = new ArrayList<>();
        ByteBuf acc = Unpooled.buffer();
        long expectIndex = 0;
        for (Object o : in) {
            if (o instanceof ReplyData d) {
                assertEquals(expectIndex, d.index(), "pieces arrive in order");
                expectIndex += d.content().readableBytes();
                acc.writeBytes(d.content().duplicate());
                if (d.last()) {
                    out.add(new Data(d.cookie(), HexFormat.of().formatHex(SplitFeeder.bytes(acc.retainedDuplicate())),
                        d.done()));
                    acc.clear();
                    expectIndex = 0;
                }
            } else {
                out.add(o);
            }
        }
        acc.release();
        return out;
    };

    /** Cookie 1 is a 4-byte READ, 2 a WRITE; others are unknown. */
    static final Map<Long, Long> READS = Map.of(1L, 4L, 2L, 0L);

    static ReplyDecoder decoder() {
        return new ReplyDecoder(NbdHeaderMode.COMPACT, 1 << 20, 4096, cookie -> {
            Long n = READS.get(cookie);
            if (n == null) {
                throw new NbdProtocolException("simple reply for unknown cookie " + cookie);
            }
            return n;
        });
    }

    static ByteBuf chunk(ByteBuf out, int flags, int type, long cookie, ByteBuf payload) {
        out.writeInt(NbdConstants.STRUCTURED_REPLY_MAGIC).writeShort(flags).writeShort(type).writeLong(cookie)
            .writeInt(payload.readableBytes()).writeBytes(payload);
        payload.release();
        return out;
    }

    static ByteBuf simple(ByteBuf out, int error, long cookie) {
        return out.writeInt(NbdConstants.SIMPLE_REPLY_MAGIC).writeInt(error).writeLong(cookie);
    }

    static ByteBuf buf() {
        return Unpooled.buffer();
    }

    @Test
    void decodesEveryReplyTypeAtEverySplit() {
        ByteBuf in = buf();
        simple(in, 0, 2);                                     // WRITE ok
        simple(in, 0, 1).writeBytes(new byte[] {1, 2, 3, 4}); // READ with data
        simple(in, 5, 1);                                     // READ failed: no data
        chunk(in, 0, 1, 9, buf().writeLong(4096).writeBytes(new byte[] {9, 8, 7}));
        chunk(in, 0, 2, 9, buf().writeLong(4099).writeInt(512));
        chunk(in, 1, 1, 9, buf().writeLong(4611).writeBytes(new byte[] {6}));
        chunk(in, 0, 5, 10, buf().writeInt(3).writeInt(65536).writeInt(0).writeInt(0xffffffff).writeInt(3));
        chunk(in, 0, 0x8001, 10, buf().writeInt(5).writeShort(2).writeBytes("no".getBytes(StandardCharsets.UTF_8)));
        chunk(in, 0, 0x8002, 10, buf().writeInt(22).writeShort(0).writeLong(77));
        chunk(in, 0, 0x8123, 10, buf().writeInt(95).writeShort(1).writeByte('x').writeInt(0));
        chunk(in, 1, 0, 10, buf());
        byte[] bytes = SplitFeeder.bytes(in);
        List<Object> expected = List.of(
            new NbdReply.Simple(2, NbdError.OK, 0),
            new NbdReply.Simple(1, NbdError.OK, 4), new Data(1, "01020304", true),
            new NbdReply.Simple(1, NbdError.EIO, 0),
            new NbdReply.OffsetData(9, 0, 4096, 3), new Data(9, "090807", false),
            new NbdReply.OffsetHole(9, 0, 4099, 512),
            new NbdReply.OffsetData(9, 1, 4611, 1), new Data(9, "06", true),
            new NbdReply.BlockStatus(10, 0, 3, List.of(new NbdReply.BlockDescriptor(65536, 0),
                new NbdReply.BlockDescriptor(0xffffffffL, 3))),
            new NbdReply.Error(10, 0, NbdReplyChunkType.ERROR, NbdError.EIO, "no", -1),
            new NbdReply.Error(10, 0, NbdReplyChunkType.ERROR_OFFSET, NbdError.EINVAL, "", 77),
            new NbdReply.Error(10, 0, NbdReplyChunkType.valueOf(0x8123), NbdError.ENOTSUP, "x", -1),
            new NbdReply.None(10, 1));
        SplitFeeder.assertEverySplit(ReplyCodecTest::decoder, bytes, expected, MERGE);
    }

    static NbdProtocolException failure(ByteBuf in, boolean close) {
        EmbeddedChannel ch = new EmbeddedChannel(decoder());
        DecoderException e = assertThrows(DecoderException.class, () -> {
            ch.writeInbound(in);
            if (close) {
                ch.finish();
            }
        });
        ch.finishAndReleaseAll();
        return assertInstanceOf(NbdProtocolException.class, e.getCause());
    }

    static void assertFailure(ByteBuf in, String expectedText) {
        String msg = failure(in, false).getMessage();
        assertTrue(msg.contains(expectedText), msg);
    }

    @Test
    void rejectsBadMagicHugeLengthsAndMalformedChunks() {
        assertFailure(buf().writeInt(0x12345678), "bad reply magic 0x12345678");
        assertFailure(chunk(buf(), 0, 1, 9, buf().writeLong(0).writeZero(0)), "OFFSET_DATA chunk for cookie 0x9 has "
            + "length 8");
        assertFailure(buf().writeInt(NbdConstants.STRUCTURED_REPLY_MAGIC).writeShort(0).writeShort(1).writeLong(9)
            .writeInt(0xfffffff0), "has length 4294967280; it must be between 9 and 1048584");
        assertFailure(buf().writeInt(NbdConstants.STRUCTURED_REPLY_MAGIC).writeShort(0).writeShort(5).writeLong(9)
            .writeInt(4 + 8 * 1000), "exceeds the limit of 4096");
        assertFailure(chunk(buf(), 0, 5, 9, buf().writeInt(0).writeInt(8).writeInt(0).writeInt(0)),
            "must be 4 + 8n");
        assertFailure(chunk(buf(), 0, 5, 9, buf().writeInt(0).writeInt(0).writeInt(0)), "descriptor 0 of 1 has "
            + "length 0");
        assertFailure(chunk(buf(), 0, 2, 9, buf().writeLong(0).writeInt(0)), "hole size 0");
        assertFailure(chunk(buf(), 0, 0, 9, buf()), "must have length 0 and the DONE flag");
        assertFailure(chunk(buf(), 0, 0x8001, 9, buf().writeInt(5).writeShort(100).writeByte('x')),
            "message length 100 does not fit");
        assertFailure(chunk(buf(), 0, 0x8001, 9, buf().writeInt(0).writeShort(0)), "error value 0");
        assertFailure(chunk(buf(), 0, 42, 9, buf()), "unknown type UNKNOWN(0x2a)");
        assertFailure(simple(buf(), 0, 77), "simple reply for unknown cookie 77");
    }

    @Test
    void earlyEofInTheMiddleOfDataIsReported() {
        String msg = failure(chunk(buf(), 1, 1, 9, buf().writeLong(0).writeBytes(new byte[100])).writerIndex(20 + 8 + 40),
            true).getMessage();
        assertTrue(msg.contains("closed the connection in the middle of the READ data of cookie 0x9 (40 of 100 bytes"),
            msg);
        msg = failure(buf().writeInt(NbdConstants.SIMPLE_REPLY_MAGIC).writeShort(0), true).getMessage();
        assertTrue(msg.contains("in the middle of a reply header (6 bytes"), msg);
    }

    @Test
    void afterAnErrorEverythingIsDiscarded() {
        EmbeddedChannel ch = new EmbeddedChannel(decoder());
        assertThrows(DecoderException.class, () -> ch.writeInbound(buf().writeInt(1)));
        ch.writeInbound(simple(buf(), 0, 2)); // a valid reply after garbage is not trusted
        assertNull(ch.readInbound());
        ch.finishAndReleaseAll();
    }

    @Test
    void encodesRequestsWithPayloadUncopied() {
        EmbeddedChannel ch = new EmbeddedChannel(RequestEncoder.COMPACT);
        ByteBuf payload = Unpooled.wrappedBuffer(new byte[] {1, 2, 3});
        ch.writeOutbound(new NbdRequest(NbdConstants.CMD_FLAG_FUA, NbdCommand.WRITE, 0x1122334455667788L, 4096, 3,
            payload), new NbdRequest(NbdConstants.CMD_FLAG_REQ_ONE, NbdCommand.BLOCK_STATUS, 2, 0, 0xffffffffL, null));
        ByteBuf h1 = ch.readOutbound();
        ByteBuf p = ch.readOutbound();
        ByteBuf h2 = ch.readOutbound();
        assertTrue(p == payload, "the payload buffer is passed on as is");
        assertArrayEquals(SplitFeeder.bytes(buf().writeInt(NbdConstants.REQUEST_MAGIC).writeShort(1).writeShort(1)
            .writeLong(0x1122334455667788L).writeLong(4096).writeInt(3)), SplitFeeder.bytes(h1));
        assertArrayEquals(new byte[] {1, 2, 3}, SplitFeeder.bytes(p));
        assertArrayEquals(SplitFeeder.bytes(buf().writeInt(NbdConstants.REQUEST_MAGIC).writeShort(8).writeShort(7)
            .writeLong(2).writeLong(0).writeInt(-1)), SplitFeeder.bytes(h2));
        assertThrows(Exception.class, () -> ch.writeOutbound(new NbdRequest(0, NbdCommand.TRIM, 3, 0, 1L << 32,
            null)));
        ch.finishAndReleaseAll();
    }
}
