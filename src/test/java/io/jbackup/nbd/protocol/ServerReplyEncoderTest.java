package io.jbackup.nbd.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class ServerReplyEncoderTest {
    private static String encode(Object... msgs) {
        EmbeddedChannel ch = new EmbeddedChannel(new ServerOptionReplyEncoder(), new ServerReplyEncoder());
        for (Object m : msgs) {
            ch.writeOutbound(m);
        }
        ByteBuf all = Unpooled.buffer();
        ByteBuf b;
        while ((b = ch.readOutbound()) != null) {
            all.writeBytes(b);
            b.release();
        }
        ch.finishAndReleaseAll();
        return ByteBufUtil.hexDump(all);
    }

    @Test
    void simpleReplies() {
        assertEquals("67446698" + "00000000" + "0000000000000102",
            encode(new ServerReply.Simple(0x102, NbdError.OK)));
        assertEquals("67446698" + "00000016" + "ffffffffffffffff",
            encode(new ServerReply.Simple(-1, NbdError.EINVAL)));
        assertEquals("67446698" + "00000000" + "0000000000000001" + "0102",
            encode(new ServerReply.Simple(1, 0, Unpooled.wrappedBuffer(new byte[] {1, 2}))));
    }

    @Test
    void structuredChunks() {
        assertEquals("668e33ef" + "0000" + "0001" + "0000000000000005" + "0000000b" + "0000000000001000" + "aabbcc",
            encode(new ServerReply.OffsetData(5, false, 4096, Unpooled.wrappedBuffer(new byte[] {(byte) 0xaa, (byte) 0xbb,
                (byte) 0xcc}))));
        assertEquals("668e33ef" + "0001" + "0002" + "0000000000000005" + "0000000c" + "0000000000002000" + "00010000",
            encode(new ServerReply.OffsetHole(5, true, 8192, 65536)));
        assertEquals("668e33ef" + "0001" + "0005" + "0000000000000009" + "00000014" + "00000001"
                + "00001000" + "00000000" + "00002000" + "00000003",
            encode(new ServerReply.BlockStatus(9, true, 1, List.of(new Extent(0, 4096, 0), new Extent(4096, 8192, 3)))));
        assertEquals("668e33ef" + "0001" + "8001" + "0000000000000009" + "00000008" + "00000016" + "0002"
                + ByteBufUtil.hexDump("no".getBytes(StandardCharsets.UTF_8)),
            encode(new ServerReply.Error(9, true, 22, "no")));
        assertEquals("668e33ef" + "0001" + "0000" + "0000000000000009" + "00000000", encode(new ServerReply.None(9)));
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
        String hex = encode(new ServerReply.Error(1, true, 5, s));
        int msgLen = Integer.parseInt(hex.substring(48, 52), 16);
        assertEquals(4096, msgLen);
        assertThrows(IllegalArgumentException.class, () -> new ServerReply.Error(1, true, 0, "x"));
        assertThrows(IllegalArgumentException.class, () -> new ServerReply.OffsetHole(1, true, 0, 0));
    }
}
