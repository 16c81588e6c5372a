package io.jbackup.nbd.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class ServerReplyEncoderTest {
    /** The bytes written for {@code msgs}; data buffers must be passed on as they are, not copied. */
    private static String encode(Object... msgs) {
        EmbeddedChannel ch = new EmbeddedChannel(new ServerOptionReplyEncoder(), new ServerReplyEncoder());
        ByteBuf all = Unpooled.buffer();
        for (Object m : msgs) {
            ByteBuf data = m instanceof ReplyData d ? d.content() : null;
            ch.writeOutbound(m);
            ByteBuf b;
            while ((b = ch.readOutbound()) != null) {
                if (data != null) {
                    assertTrue(b == data, "the data buffer is written as it is");
                }
                all.writeBytes(b);
                b.release();
            }
        }
        ch.finishAndReleaseAll();
        return ByteBufUtil.hexDump(all);
    }

    @Test
    void simpleReplies() {
        assertEquals("67446698" + "00000000" + "0000000000000102",
            encode(new NbdReply.Simple(0x102, NbdError.OK)));
        assertEquals("67446698" + "00000016" + "ffffffffffffffff",
            encode(new NbdReply.Simple(-1, NbdError.EINVAL)));
        assertEquals("67446698" + "00000000" + "0000000000000001" + "0102",
            encode(new NbdReply.Simple(1, NbdError.OK, 2), data(1, 0, true, true, 1, 2)));
        assertEquals("67446698" + "00000000" + "0000000000000001" + "010203",
            encode(new NbdReply.Simple(1, NbdError.OK, 3), data(1, 0, false, false, 1),
                data(1, 1, true, true, 2, 3)), "data in several pieces");
    }

    @Test
    void structuredChunks() {
        assertEquals("668e33ef" + "0000" + "0001" + "0000000000000005" + "0000000b" + "0000000000001000" + "aabbcc",
            encode(new NbdReply.OffsetData(5, 0, 4096, 3), data(5, 0, true, false, 0xaa, 0xbb, 0xcc)));
        assertEquals("668e33ef" + "0001" + "0002" + "0000000000000005" + "0000000c" + "0000000000002000" + "00010000",
            encode(new NbdReply.OffsetHole(5, 1, 8192, 65536)));
        assertEquals("668e33ef" + "0001" + "0005" + "0000000000000009" + "00000014" + "00000001"
                + "00001000" + "00000000" + "00002000" + "00000003",
            encode(NbdReply.BlockStatus.of(9, 1, 1, List.of(new Extent(0, 4096, 0), new Extent(4096, 8192, 3)))));
        assertEquals("668e33ef" + "0001" + "8001" + "0000000000000009" + "00000008" + "00000016" + "0002"
                + ByteBufUtil.hexDump("no".getBytes(StandardCharsets.UTF_8)),
            encode(new NbdReply.Error(9, 1, NbdError.EINVAL, "no")));
        assertEquals("668e33ef" + "0000" + "8002" + "0000000000000009" + "0000000f" + "00000005" + "0001" + "78"
                + "0000000000000200",
            encode(new NbdReply.Error(9, 0, NbdReplyChunkType.ERROR_OFFSET, NbdError.EIO, "x", 512)));
        assertEquals("668e33ef" + "0001" + "0000" + "0000000000000009" + "00000000", encode(new NbdReply.None(9)));
    }

    @Test
    void handshakeMessages() {
        assertEquals("4e42444d41474943" + "49484156454f5054" + "0003", encode(new ServerGreeting(3)));
        assertEquals("0000000000100000" + "0003", encode(new ExportNameReply(1 << 20, 3, false)));
        assertEquals(2 * (10 + 124), encode(new ExportNameReply(1 << 20, 3, true)).length());
        assertEquals("0003e889045565a9" + "00000007" + "00000001" + "00000000", encode(OptionReply.ack(7)));
        assertEquals("0003e889045565a9" + "00000003" + "00000002" + "00000009" + "00000001" + "61" + "64657363",
            encode(OptionReply.server(3, "a", "desc")));
        assertEquals("0003e889045565a9" + "00000007" + "00000003" + "0000000c" + "0000" + "0000000000100000" + "0483",
            encode(OptionReply.infoExport(7, 1 << 20, 0x483)));
        assertEquals("0003e889045565a9" + "00000007" + "00000003" + "0000000e" + "0003" + "00000001" + "00001000"
            + "02000000", encode(OptionReply.infoBlockSize(7, 1, 4096, 32 << 20)));
        assertEquals("0003e889045565a9" + "0000000a" + "00000004" + "00000007" + "00000002" + "623a63",
            encode(OptionReply.metaContext(10, 2, "b:c")));
        assertEquals("0003e889045565a9" + "00000005" + "80000002" + "00000001" + "78",
            encode(OptionReply.error(5, io.jbackup.nbd.protocol.NbdOptionReplyType.ERR_POLICY, "x")));
    }

    @Test
    void messagesAreLimitedTo4096Bytes() {
        String s = "é".repeat(3000);
        String hex = encode(new NbdReply.Error(1, 1, NbdError.EIO, s));
        int msgLen = Integer.parseInt(hex.substring(48, 52), 16);
        assertEquals(4096, msgLen);
        assertThrows(IllegalArgumentException.class, () -> new NbdReply.Error(1, 1, NbdError.OK, "x"));
        assertThrows(IllegalArgumentException.class, () -> new NbdReply.OffsetHole(1, 1, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new NbdReply.OffsetHole(1, 1, 0, 1L << 32));
        assertThrows(IllegalArgumentException.class, () -> new NbdReply.Simple(1, NbdError.EIO, 512));
        assertThrows(IllegalArgumentException.class, () -> new NbdReply.None(1, 0));
        assertThrows(IllegalArgumentException.class, () -> new NbdReply.BlockStatus(1, 1, 0, List.of()));
    }

    /** Data that is not exactly what the header announced would put the stream out of step: refused, closed. */
    @Test
    void dataMustMatchItsHeader() {
        assertOutOfStep("does not continue the data", data(1, 0, true, true, 1));
        assertOutOfStep("does not continue the data", new NbdReply.Simple(1, NbdError.OK, 1), data(1, 0, true, true,
            1), data(1, 1, true, true));
        assertOutOfStep("does not continue the data", new NbdReply.Simple(1, NbdError.OK, 2), data(1, 0, true, true,
            1));
        assertOutOfStep("does not continue the data", new NbdReply.Simple(1, NbdError.OK, 1), data(2, 0, true, true,
            1));
        assertOutOfStep("does not continue the data", new NbdReply.OffsetData(1, 1, 0, 1), data(1, 0, true, true,
            1, 2));
        assertOutOfStep("does not continue the data", new NbdReply.OffsetData(1, 1, 0, 2), data(1, 1, true, true,
            1));
        assertOutOfStep("are still due", new NbdReply.OffsetData(1, 1, 0, 2), data(1, 0, false, false, 1),
            new NbdReply.None(1));
    }

    private static void assertOutOfStep(String expected, Object... msgs) {
        EmbeddedChannel ch = new EmbeddedChannel(new ServerReplyEncoder());
        Exception e = assertThrows(Exception.class, () -> {
            for (Object m : msgs) {
                ch.writeOutbound(m);
            }
        });
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        assertFalse(ch.isOpen(), "the connection is closed");
        ch.finishAndReleaseAll();
    }

    static ReplyData data(long cookie, long index, boolean last, boolean done, int... bytes) {
        ByteBuf b = Unpooled.buffer();
        for (int x : bytes) {
            b.writeByte(x);
        }
        return new ReplyData(cookie, index, b, last, done);
    }
}
