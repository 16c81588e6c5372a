package io.jbackup.nbd.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.DecoderException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * Extended headers ({@code NBD_OPT_EXTENDED_HEADERS}) through both sides' codecs: every frame split at every byte,
 * each side's encoder fed to the other side's decoder, and the malformed frames each decoder must refuse.
 */
class ExtendedHeadersCodecTest {
    static final int MAX = 4096;

    static ReplyDecoder clientDecoder() {
        return new ReplyDecoder(NbdHeaderMode.EXTENDED, 1 << 20, 4096, cookie -> {
            throw new NbdProtocolException("no simple replies with extended headers (cookie " + cookie + ")");
        });
    }

    static ByteBuf chunk(ByteBuf out, int flags, int type, long cookie, long offset, ByteBuf payload) {
        out.writeInt(NbdConstants.EXTENDED_REPLY_MAGIC).writeShort(flags).writeShort(type).writeLong(cookie)
            .writeLong(offset).writeLong(payload.readableBytes()).writeBytes(payload);
        payload.release();
        return out;
    }

    static ByteBuf buf() {
        return Unpooled.buffer();
    }

    @Test
    void clientDecodesEveryExtendedChunkAtEverySplit() {
        ByteBuf in = buf();
        chunk(in, 0, 1, 9, 4096, buf().writeLong(4096).writeBytes(new byte[] {9, 8, 7}));
        chunk(in, 0, 2, 9, 4096, buf().writeLong(4099).writeInt(512));
        chunk(in, 1, 1, 9, 4096, buf().writeLong(4611).writeBytes(new byte[] {6}));
        chunk(in, 1, 6, 10, 0, buf().writeInt(3).writeInt(2).writeLong(5L << 32).writeLong(0)
            .writeLong(65536).writeLong(3));
        chunk(in, 0, 0x8001, 11, 0, buf().writeInt(5).writeShort(2).writeBytes("no".getBytes(StandardCharsets.UTF_8)));
        chunk(in, 0, 0x8002, 11, 0, buf().writeInt(22).writeShort(0).writeLong(77));
        chunk(in, 1, 0, 11, 0, buf());
        byte[] bytes = SplitFeeder.bytes(in);
        List<Object> expected = List.of(
            new NbdReply.OffsetData(9, 0, 4096, 3), new ReplyCodecTest.Data(9, "090807", false),
            new NbdReply.OffsetHole(9, 0, 4099, 512),
            new NbdReply.OffsetData(9, 1, 4611, 1), new ReplyCodecTest.Data(9, "06", true),
            new NbdReply.BlockStatus(10, 1, 3, List.of(new NbdReply.BlockDescriptor(5L << 32, 0),
                new NbdReply.BlockDescriptor(65536, 3))),
            new NbdReply.Error(11, 0, NbdReplyChunkType.ERROR, NbdError.EIO, "no", -1),
            new NbdReply.Error(11, 0, NbdReplyChunkType.ERROR_OFFSET, NbdError.EINVAL, "", 77),
            new NbdReply.None(11, 1));
        SplitFeeder.assertEverySplit(ExtendedHeadersCodecTest::clientDecoder, bytes, expected, ReplyCodecTest.MERGE);
    }

    static void assertClientRefuses(ByteBuf in, String expectedText) {
        EmbeddedChannel ch = new EmbeddedChannel(clientDecoder());
        DecoderException e = assertThrows(DecoderException.class, () -> ch.writeInbound(in));
        ch.finishAndReleaseAll();
        String msg = assertInstanceOf(NbdProtocolException.class, e.getCause()).getMessage();
        assertTrue(msg.contains(expectedText), msg);
    }

    @Test
    void clientRefusesCompactRepliesAndMalformedExtendedChunks() {
        assertClientRefuses(ReplyCodecTest.simple(buf(), 0, 1), "extended headers were negotiated");
        assertClientRefuses(ReplyCodecTest.chunk(buf(), 1, 0, 1, buf()), "bad reply magic 0x668e33ef");
        assertClientRefuses(chunk(buf(), 1, 5, 1, 0, buf().writeInt(0).writeInt(512).writeInt(0)),
            "BLOCK_STATUS(0x5) chunk for cookie 0x1 with extended headers");
        assertClientRefuses(chunk(buf(), 1, 6, 1, 0, buf().writeInt(0).writeInt(2).writeLong(512).writeLong(0)),
            "says 2 descriptors but its length 24 holds 1");
        assertClientRefuses(chunk(buf(), 1, 6, 1, 0, buf().writeInt(0).writeInt(1).writeLong(0).writeLong(0)),
            "descriptor 0 of 1 has length 0");
        assertClientRefuses(chunk(buf(), 1, 6, 1, 0, buf().writeInt(0).writeInt(1).writeLong(-1).writeLong(0)),
            "has length 18446744073709551615");
        assertClientRefuses(chunk(buf(), 1, 6, 1, 0, buf().writeInt(0).writeInt(1).writeLong(1)),
            "must be 8 + 16n");
        assertClientRefuses(buf().writeInt(NbdConstants.EXTENDED_REPLY_MAGIC).writeShort(0).writeShort(0x8001)
            .writeLong(1).writeLong(0).writeLong(1L << 40), "announces 1099511627776 payload bytes");
        assertClientRefuses(buf().writeInt(NbdConstants.EXTENDED_REPLY_MAGIC).writeShort(0).writeShort(0x8123)
            .writeLong(1).writeLong(0).writeLong(-8), "announces 18446744073709551608 payload bytes");
    }

    /** Replies the server encodes, bytes as they go out. */
    static byte[] serverEncodes(RequestOffsets offsets, NbdReply... replies) {
        return encode(new EmbeddedChannel(new ServerReplyEncoder(NbdHeaderMode.EXTENDED, offsets)), (Object[]) replies);
    }

    /** What the channel's encoder writes for {@code messages}, as one array. */
    static byte[] encode(EmbeddedChannel ch, Object... messages) {
        ch.writeOutbound(messages);
        ByteBuf all = buf();
        for (ByteBuf b; (b = ch.readOutbound()) != null; ) {
            all.writeBytes(b);
            b.release();
        }
        ch.finishAndReleaseAll();
        return SplitFeeder.bytes(all);
    }

    /** One data piece, all of a header's data. */
    static ReplyData data(long cookie, boolean done, int... bytes) {
        ByteBuf b = buf();
        for (int x : bytes) {
            b.writeByte(x);
        }
        return new ReplyData(cookie, 0, b, true, done);
    }

    @Test
    void serverRepliesDecodeOnTheClientAtEverySplitAndEchoTheRequestOffset() {
        RequestOffsets offsets = new RequestOffsets();
        offsets.put(1, 8192);
        offsets.put(2, 1L << 40);
        offsets.put(3, 512);
        offsets.put(4, 0);
        byte[] bytes = serverEncodes(offsets,
            new NbdReply.OffsetData(1, 0, 8192, 2), data(1, false, 1, 2),
            new NbdReply.OffsetHole(1, 1, 8194, 510),
            NbdReply.BlockStatus.of(2, 1, 7, List.of(new Extent(1L << 40, 6L << 30, 3))),
            new NbdReply.Simple(3, NbdError.OK, 1), data(3, true, 5), // READ data, no simple reply
            new NbdReply.Simple(4, NbdError.OK),
            new NbdReply.Simple(4, NbdError.EPERM),
            new NbdReply.Error(4, 1, NbdError.EIO, "bad"));
        assertEquals(0, offsets.size(), "final chunks forget their request");
        // headers: magic(4) flags(2) type(2) cookie(8) offset(8) length(8)
        ByteBuf b = Unpooled.wrappedBuffer(bytes);
        assertEquals(NbdConstants.EXTENDED_REPLY_MAGIC, b.getInt(0));
        assertEquals(8192, b.getLong(16), "OFFSET_DATA echoes the request offset");
        int second = 32 + 8 + 2;
        assertEquals(8192, b.getLong(second + 16), "so does OFFSET_HOLE, though its own offset differs");
        int third = second + 32 + 12;
        assertEquals(NbdReplyChunkType.BLOCK_STATUS_EXT.code(), b.getUnsignedShort(third + 6));
        assertEquals(1L << 40, b.getLong(third + 16));
        List<Object> expected = List.of(
            new NbdReply.OffsetData(1, 0, 8192, 2), new ReplyCodecTest.Data(1, "0102", false),
            new NbdReply.OffsetHole(1, 1, 8194, 510),
            new NbdReply.BlockStatus(2, 1, 7, List.of(new NbdReply.BlockDescriptor(6L << 30, 3))),
            new NbdReply.OffsetData(3, 1, 512, 1), new ReplyCodecTest.Data(3, "05", true),
            new NbdReply.None(4, 1),
            new NbdReply.Error(4, 1, NbdReplyChunkType.ERROR, NbdError.EPERM, "", -1),
            new NbdReply.Error(4, 1, NbdReplyChunkType.ERROR, NbdError.EIO, "bad", -1));
        SplitFeeder.assertEverySplit(ExtendedHeadersCodecTest::clientDecoder, bytes, expected, ReplyCodecTest.MERGE);
    }

    record Req(int flags, int type, long cookie, long offset, long length, String payload, boolean skipped) {
    }

    static final Function<List<Object>, List<Object>> REQUESTS = in -> {
        List<Object> out = new ArrayList<>();
        for (Object o : in) {
            NbdRequest r = (NbdRequest) o;
            out.add(new Req(r.flags(), r.command().code(), r.cookie(), r.offset(), r.length(),
                r.payload() == null ? null : ByteBufUtil.hexDump(r.payload()), r.payloadSkipped()));
            r.release();
        }
        return out;
    };

    /** Requests the client encodes, bytes as they go out. */
    static byte[] clientEncodes(NbdRequest... requests) {
        return encode(new EmbeddedChannel(RequestEncoder.EXTENDED), (Object[]) requests);
    }

    @Test
    void clientRequestsDecodeOnTheServerAtEverySplit() {
        int payloadLen = NbdConstants.CMD_FLAG_PAYLOAD_LEN;
        byte[] bytes = clientEncodes(
            new NbdRequest(NbdConstants.CMD_FLAG_FUA, NbdCommand.WRITE, 1, 4096, 3,
                Unpooled.wrappedBuffer(new byte[] {1, 2, 3})),
            new NbdRequest(0, NbdCommand.BLOCK_STATUS, 2, 0, 12, Unpooled.buffer().writeLong(1L << 40).writeInt(7)),
            new NbdRequest(0, NbdCommand.TRIM, 3, 1L << 33, 5L << 32, null),
            new NbdRequest(0, NbdCommand.READ, 4, 0, 65536, null),
            new NbdRequest(0, NbdCommand.DISC, 5, 0, 0, null));
        assertEquals(32 + 3 + 32 + 12 + 32 * 3, bytes.length);
        assertEquals(NbdConstants.EXTENDED_REQUEST_MAGIC, Unpooled.wrappedBuffer(bytes).getInt(0));
        List<Object> expected = List.of(
            new Req(1 | payloadLen, 1, 1, 4096, 3, "010203", false),
            new Req(payloadLen, 7, 2, 0, 12, "000001000000000000000007", false),
            new Req(0, 4, 3, 1L << 33, 5L << 32, null, false),
            new Req(0, 0, 4, 0, 65536, null, false),
            new Req(0, 2, 5, 0, 0, null, false));
        java.util.concurrent.atomic.AtomicReference<RequestOffsets> offsets = new java.util.concurrent.atomic
            .AtomicReference<>();
        SplitFeeder.assertEverySplit(() -> {
            offsets.set(new RequestOffsets());
            return new ServerRequestDecoder(NbdHeaderMode.EXTENDED, MAX, false, offsets.get());
        }, bytes, expected, REQUESTS);
        assertEquals(4, offsets.get().size(), "every request but DISC is recorded for the replies");
        assertEquals(1L << 33, offsets.get().offset(3, true));
        assertEquals(3, offsets.get().size());
    }

    @Test
    void requestsSharingACookieHaveTheirOffsetsEchoedInOrder() {
        RequestOffsets o = new RequestOffsets();
        o.put(7, 100);
        o.put(7, 200);
        o.put(8, 300);
        o.put(7, 400);
        assertEquals(4, o.size());
        assertEquals(100, o.offset(7, false));
        assertEquals(100, o.offset(7, true));
        assertEquals(200, o.offset(7, true));
        assertEquals(300, o.offset(8, true));
        assertEquals(400, o.offset(7, false));
        assertEquals(400, o.offset(7, true));
        assertEquals(0, o.size());
        assertEquals(0, o.offset(7, true), "unknown cookies echo 0");
    }

    @Test
    void serverSkipsPayloadsOverTheLimitAndOnReadOnlyExports() {
        byte[] big = new byte[MAX + 1];
        byte[] bytes = clientEncodes(
            new NbdRequest(0, NbdCommand.WRITE, 1, 0, big.length, Unpooled.wrappedBuffer(big)),
            new NbdRequest(0, NbdCommand.BLOCK_STATUS, 2, 0, big.length, Unpooled.wrappedBuffer(big)),
            new NbdRequest(0, NbdCommand.FLUSH, 3, 0, 0, null));
        int p = NbdConstants.CMD_FLAG_PAYLOAD_LEN;
        List<Object> expected = List.of(new Req(p, 1, 1, 0, MAX + 1, null, true), new Req(p, 7, 2, 0, MAX + 1, null,
            true), new Req(0, 3, 3, 0, 0, null, false));
        assertEquals(expected, SplitFeeder.decode(() -> new ServerRequestDecoder(NbdHeaderMode.EXTENDED, MAX, false,
            null), bytes, new int[] {7, 40, 100}, REQUESTS));
        byte[] small = clientEncodes(new NbdRequest(0, NbdCommand.WRITE, 1, 0, 2, Unpooled.wrappedBuffer(new byte[2])),
            new NbdRequest(0, NbdCommand.FLUSH, 3, 0, 0, null));
        assertEquals(List.of(new Req(p, 1, 1, 0, 2, null, true), new Req(0, 3, 3, 0, 0, null, false)),
            SplitFeeder.decode(() -> new ServerRequestDecoder(NbdHeaderMode.EXTENDED, MAX, true, null), small,
                new int[] {33}, REQUESTS));
    }

    static void assertServerRefuses(ByteBuf in, String expectedText) {
        EmbeddedChannel ch = new EmbeddedChannel(new ServerRequestDecoder(NbdHeaderMode.EXTENDED, MAX, false, null));
        DecoderException e = assertThrows(DecoderException.class, () -> ch.writeInbound(in));
        ch.finishAndReleaseAll();
        String msg = assertInstanceOf(NbdProtocolException.class, e.getCause()).getMessage();
        assertTrue(msg.contains(expectedText), msg);
    }

    @Test
    void serverRefusesCompactRequestsAndUnframedWrites() {
        assertServerRefuses(buf().writeInt(NbdConstants.REQUEST_MAGIC).writeZero(28),
            "request magic 0x25609513 (expected extended 0x21e41c71)");
        assertServerRefuses(buf().writeInt(NbdConstants.EXTENDED_REQUEST_MAGIC).writeShort(0).writeShort(1)
            .writeLong(1).writeLong(0).writeLong(512), "WRITE request (cookie 1) without NBD_CMD_FLAG_PAYLOAD_LEN");
        assertServerRefuses(buf().writeInt(NbdConstants.EXTENDED_REQUEST_MAGIC).writeShort(32).writeShort(7)
            .writeLong(1).writeLong(0).writeLong(-1), "announces a payload of 18446744073709551615 bytes");
    }

    @Test
    void compactEncodersRefuseWhatOnlyExtendedHeadersCarry() {
        EmbeddedChannel ch = new EmbeddedChannel(RequestEncoder.COMPACT);
        assertThrows(Exception.class, () -> ch.writeOutbound(new NbdRequest(NbdConstants.CMD_FLAG_PAYLOAD_LEN,
            NbdCommand.BLOCK_STATUS, 1, 0, 12, Unpooled.buffer().writeLong(4096).writeInt(0))));
        ch.finishAndReleaseAll();
        assertThrows(IllegalArgumentException.class, () -> new ServerReplyEncoder(NbdHeaderMode.EXTENDED, null));
        EmbeddedChannel replies = new EmbeddedChannel(new ServerReplyEncoder());
        assertThrows(Exception.class, () -> replies.writeOutbound(NbdReply.BlockStatus.of(1, 1, 0,
            List.of(new Extent(0, 1L << 32, 0)))), "a 2^32-byte extent needs BLOCK_STATUS_EXT");
        assertTrue(!replies.isOpen(), "a reply the encoder cannot send closes the connection");
        replies.finishAndReleaseAll();
        EmbeddedChannel ext = new EmbeddedChannel(RequestEncoder.EXTENDED);
        ext.writeOutbound(new NbdRequest(0, NbdCommand.TRIM, 1, 0, 1L << 40, null));
        ByteBuf h = ext.readOutbound();
        assertArrayEquals(SplitFeeder.bytes(buf().writeInt(NbdConstants.EXTENDED_REQUEST_MAGIC).writeShort(0)
            .writeShort(4).writeLong(1).writeLong(0).writeLong(1L << 40)), SplitFeeder.bytes(h));
        ext.finishAndReleaseAll();
    }
}
