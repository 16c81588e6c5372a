package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.DecoderException;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class HandshakeCodecTest {
    static final Function<List<Object>, List<Object>> SAME = l -> l;

    static ByteBuf greeting(int flags) {
        return Unpooled.buffer().writeLong(NbdConstants.NBDMAGIC).writeLong(NbdConstants.IHAVEOPT).writeShort(flags);
    }

    static ByteBuf reply(ByteBuf out, NbdOption opt, NbdOptionReplyType type, byte[] data) {
        return out.writeLong(NbdConstants.OPTION_REPLY_MAGIC).writeInt(opt.code()).writeInt(type.code())
            .writeInt(data.length).writeBytes(data);
    }

    static byte[] info(int type, ByteBuf payload) {
        ByteBuf b = Unpooled.buffer().writeShort(type).writeBytes(payload);
        return SplitFeeder.bytes(b);
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void decodesGreetingAndEveryReplyTypeAtEverySplit() {
        ByteBuf in = greeting(3);
        reply(in, NbdOption.STRUCTURED_REPLY, NbdOptionReplyType.ACK, new byte[0]);
        reply(in, NbdOption.LIST, NbdOptionReplyType.SERVER,
            SplitFeeder.bytes(Unpooled.buffer().writeInt(3).writeBytes(utf8("dïsk")).writeBytes(utf8("more"))));
        reply(in, NbdOption.LIST_META_CONTEXT, NbdOptionReplyType.META_CONTEXT,
            SplitFeeder.bytes(Unpooled.buffer().writeInt(7).writeBytes(utf8("base:allocation"))));
        reply(in, NbdOption.GO, NbdOptionReplyType.INFO, info(0, Unpooled.buffer().writeLong(1L << 40).writeShort(0x48f)));
        reply(in, NbdOption.GO, NbdOptionReplyType.INFO, info(3, Unpooled.buffer().writeInt(512).writeInt(4096)
            .writeInt(0xffffffff)));
        reply(in, NbdOption.GO, NbdOptionReplyType.INFO, info(1, Unpooled.wrappedBuffer(utf8("name"))));
        reply(in, NbdOption.GO, NbdOptionReplyType.INFO, info(2, Unpooled.wrappedBuffer(utf8("a disk"))));
        reply(in, NbdOption.GO, NbdOptionReplyType.INFO, info(99, Unpooled.wrappedBuffer(new byte[5])));
        reply(in, NbdOption.STARTTLS, NbdOptionReplyType.ERR_POLICY, utf8("no TLS here"));
        reply(in, NbdOption.INFO, NbdOptionReplyType.valueOf(77), new byte[3]);
        byte[] bytes = SplitFeeder.bytes(in);
        List<Object> expected = List.of(new ServerGreeting(3),
            new OptionReply.Ack(NbdOption.STRUCTURED_REPLY),
            new OptionReply.Server(NbdOption.LIST, "dï", "sk" + "more"),
            new OptionReply.MetaContext(NbdOption.LIST_META_CONTEXT, 7, "base:allocation"),
            new OptionReply.InfoExport(NbdOption.GO, 1L << 40, 0x48f),
            new OptionReply.InfoBlockSize(NbdOption.GO, 512, 4096, 0xffffffffL),
            new OptionReply.InfoName(NbdOption.GO, "name"),
            new OptionReply.InfoDescription(NbdOption.GO, "a disk"),
            new OptionReply.InfoUnknown(NbdOption.GO, NbdInfoType.valueOf(99), 7),
            new OptionReply.Error(NbdOption.STARTTLS, NbdOptionReplyType.ERR_POLICY, "no TLS here"),
            new OptionReply.Unknown(NbdOption.INFO, NbdOptionReplyType.valueOf(77), 3));
        SplitFeeder.assertEverySplit(HandshakeDecoder::new, bytes, expected, SAME);
    }

    @Test
    void exportNameReplyWithAndWithoutZeroesLeavesLaterBytes() {
        for (boolean noZeroes : new boolean[] {true, false}) {
            HandshakeDecoder d = new HandshakeDecoder();
            EmbeddedChannel ch = new EmbeddedChannel(d);
            ch.writeInbound(greeting(noZeroes ? 3 : 1));
            assertEquals(new ServerGreeting(noZeroes ? 3 : 1), ch.readInbound());
            d.expectExportNameReply(noZeroes);
            ByteBuf r = Unpooled.buffer().writeLong(12345).writeShort(0x43);
            if (!noZeroes) {
                r.writeZero(124);
            }
            r.writeInt(0xdeadbeef); // belongs to the transmission phase
            ch.writeInbound(r);
            assertEquals(new ExportNameReply(12345, 0x43, !noZeroes), ch.readInbound());
            assertNull(ch.readInbound());
            ch.pipeline().remove(d); // hands the leftover bytes on
            ByteBuf left = ch.readInbound();
            assertEquals(0xdeadbeef, left.readInt());
            left.release();
            ch.finishAndReleaseAll();
        }
    }

    @Test
    void goAckStopsDecoding() {
        EmbeddedChannel ch = new EmbeddedChannel(new HandshakeDecoder());
        ByteBuf in = greeting(1);
        reply(in, NbdOption.GO, NbdOptionReplyType.ACK, new byte[0]);
        in.writeInt(NbdConstants.SIMPLE_REPLY_MAGIC);
        ch.writeInbound(in);
        assertInstanceOf(ServerGreeting.class, ch.readInbound());
        assertEquals(new OptionReply.Ack(NbdOption.GO), ch.readInbound());
        assertNull(ch.readInbound());
        ch.finishAndReleaseAll();
    }

    static NbdProtocolException failure(byte[] bytes, boolean close) {
        EmbeddedChannel ch = new EmbeddedChannel(new HandshakeDecoder());
        DecoderException e = assertThrows(DecoderException.class, () -> {
            ch.writeInbound(Unpooled.wrappedBuffer(bytes));
            if (close) {
                ch.finish();
            }
        });
        ch.finishAndReleaseAll();
        return assertInstanceOf(NbdProtocolException.class, e.getCause());
    }

    @Test
    void rejectsBadMagicOldstyleAndHugeLengths() {
        assertTrue(failure(SplitFeeder.bytes(Unpooled.buffer().writeLong(0x1234)), false).getMessage()
            .contains("not an NBD server"));
        assertTrue(failure(SplitFeeder.bytes(Unpooled.buffer().writeLong(NbdConstants.NBDMAGIC)
            .writeLong(0x00420281861253L)), false).getMessage().contains("oldstyle"));
        ByteBuf huge = greeting(1).writeLong(NbdConstants.OPTION_REPLY_MAGIC).writeInt(3).writeInt(2)
            .writeInt(0x7fffffff);
        assertTrue(failure(SplitFeeder.bytes(huge), false).getMessage().contains("2147483647 bytes of data"));
        ByteBuf bad = greeting(1).writeLong(0x0003e889045565a8L);
        assertTrue(failure(SplitFeeder.bytes(bad), false).getMessage().contains("bad option reply magic"));
    }

    @Test
    void rejectsMalformedReplies() {
        ByteBuf wrongInfo = greeting(1);
        reply(wrongInfo, NbdOption.GO, NbdOptionReplyType.INFO, info(0, Unpooled.buffer().writeLong(1)));
        assertTrue(failure(SplitFeeder.bytes(wrongInfo), false).getMessage().contains("must be 12"));
        ByteBuf longName = greeting(1);
        reply(longName, NbdOption.LIST, NbdOptionReplyType.SERVER, SplitFeeder.bytes(Unpooled.buffer().writeInt(100)
            .writeBytes(new byte[10])));
        assertTrue(failure(SplitFeeder.bytes(longName), false).getMessage().contains("exceeds the reply"));
        ByteBuf badUtf8 = greeting(1);
        reply(badUtf8, NbdOption.LIST_META_CONTEXT, NbdOptionReplyType.META_CONTEXT,
            SplitFeeder.bytes(Unpooled.buffer().writeInt(0).writeByte(0xc3).writeByte(0x28)));
        assertTrue(failure(SplitFeeder.bytes(badUtf8), false).getMessage().contains("not valid UTF-8"));
        ByteBuf bigString = greeting(1);
        reply(bigString, NbdOption.LIST_META_CONTEXT, NbdOptionReplyType.META_CONTEXT,
            SplitFeeder.bytes(Unpooled.buffer().writeInt(0).writeBytes(new byte[5000])));
        assertTrue(failure(SplitFeeder.bytes(bigString), false).getMessage().contains("at most 4096"));
    }

    @Test
    void earlyEofIsReported() {
        ByteBuf in = greeting(1).writeLong(NbdConstants.OPTION_REPLY_MAGIC).writeInt(7);
        NbdProtocolException e = failure(SplitFeeder.bytes(in), true);
        assertTrue(e.getMessage().contains("closed the connection in the middle of an option reply"), e.getMessage());
    }

    @Test
    void encodesClientFlagsAndOptions() {
        EmbeddedChannel ch = new EmbeddedChannel(HandshakeEncoder.INSTANCE);
        ch.writeOutbound(new ClientFlags(3), OptionRequest.go("ab", List.of(NbdInfoType.BLOCK_SIZE)),
            OptionRequest.setMetaContext("", List.of("base:allocation", "qemu:dirty-bitmap:b")),
            OptionRequest.structuredReply());
        ByteBuf all = Unpooled.buffer();
        for (ByteBuf b; (b = ch.readOutbound()) != null; ) {
            all.writeBytes(b);
            b.release();
        }
        ByteBuf want = Unpooled.buffer().writeInt(3)
            .writeLong(NbdConstants.IHAVEOPT).writeInt(7).writeInt(10).writeInt(2).writeBytes(utf8("ab")).writeShort(1)
            .writeShort(3)
            .writeLong(NbdConstants.IHAVEOPT).writeInt(10).writeInt(4 + 4 + 4 + 15 + 4 + 19).writeInt(0).writeInt(2)
            .writeInt(15).writeBytes(utf8("base:allocation")).writeInt(19).writeBytes(utf8("qemu:dirty-bitmap:b"))
            .writeLong(NbdConstants.IHAVEOPT).writeInt(8).writeInt(0);
        assertArrayEquals(SplitFeeder.bytes(want), SplitFeeder.bytes(all));
        assertThrows(IllegalArgumentException.class, () -> OptionRequest.setMetaContext("", List.of("nocolon")));
        assertThrows(IllegalArgumentException.class, () -> OptionRequest.exportName("x".repeat(4097)));
        ch.finishAndReleaseAll();
    }
}
