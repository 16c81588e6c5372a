package io.jbackup.nbd.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.DecoderException;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class ServerRequestDecoderTest {
    private static final int MAX = 4096;

    static ByteBuf request(ByteBuf b, int flags, int type, long cookie, long offset, long length) {
        return b.writeInt(NbdConstants.REQUEST_MAGIC).writeShort(flags).writeShort(type).writeLong(cookie)
            .writeLong(offset).writeInt((int) length);
    }

    record Req(int flags, int type, long cookie, long offset, long length, byte[] payload, boolean skipped) {
    }

    static List<Req> feed(byte[] bytes, int split) {
        EmbeddedChannel ch = new EmbeddedChannel(new ServerRequestDecoder(MAX));
        ch.writeInbound(Unpooled.wrappedBuffer(bytes, 0, split));
        ch.writeInbound(Unpooled.wrappedBuffer(bytes, split, bytes.length - split));
        List<Req> out = new ArrayList<>();
        NbdRequest r;
        while ((r = ch.readInbound()) != null) {
            out.add(new Req(r.flags(), r.command().code(), r.cookie(), r.offset(), r.length(),
                r.payload() == null ? null : ByteBufUtil.getBytes(r.payload()), r.payloadSkipped()));
            r.release();
        }
        assertFalse(ch.finish());
        return out;
    }

    @Test
    void decodesRequestsSplitAtEveryPosition() {
        ByteBuf b = Unpooled.buffer();
        request(b, 0, 0, 1, 4096, 512);
        request(b, 1, 1, 2, 0, 5).writeBytes(new byte[] {1, 2, 3, 4, 5});
        request(b, 8, 7, 0xFFFFFFFFFFFFFFFFL, -1L, 0xFFFFFFFFL);
        request(b, 0, 1, 3, 0, 0);
        request(b, 0, 2, 4, 0, 0);
        b.writeBytes(new byte[] {9, 9, 9}); // ignored after DISC
        byte[] bytes = ByteBufUtil.getBytes(b);
        for (int split = 0; split <= bytes.length; split++) {
            List<Req> out = feed(bytes, split);
            assertEquals(5, out.size(), "split " + split);
            assertEquals(new Req(0, 0, 1, 4096, 512, null, false), out.get(0));
            assertArrayEquals(new byte[] {1, 2, 3, 4, 5}, out.get(1).payload());
            assertEquals(1, out.get(1).flags());
            Req bs = out.get(2);
            assertEquals(-1L, bs.cookie());
            assertEquals(-1L, bs.offset());
            assertEquals(0xFFFFFFFFL, bs.length());
            assertArrayEquals(new byte[0], out.get(3).payload());
            assertEquals(2, out.get(4).type());
        }
    }

    @Test
    void oversizedWritePayloadIsSkippedAndStreamStaysInSync() {
        ByteBuf b = Unpooled.buffer();
        request(b, 0, 1, 7, 0, MAX + 100).writeBytes(new byte[MAX + 100]);
        request(b, 0, 0, 8, 0, 512);
        byte[] bytes = ByteBufUtil.getBytes(b);
        for (int split = 0; split <= bytes.length; split += 97) {
            List<Req> out = feed(bytes, split);
            assertEquals(2, out.size(), "split " + split);
            assertTrue(out.get(0).skipped());
            assertNull(out.get(0).payload());
            assertEquals(MAX + 100, out.get(0).length());
            assertEquals(8, out.get(1).cookie());
        }
    }

    @Test
    void readOnlyModeSkipsEveryWritePayload() {
        ByteBuf b = Unpooled.buffer();
        request(b, 0, 1, 7, 0, 100).writeBytes(new byte[100]);
        request(b, 0, 1, 8, 0, 0);
        request(b, 0, 0, 9, 0, 512);
        byte[] bytes = ByteBufUtil.getBytes(b);
        for (int split = 0; split <= bytes.length; split++) {
            EmbeddedChannel ch = new EmbeddedChannel(new ServerRequestDecoder(MAX, true));
            ch.writeInbound(Unpooled.wrappedBuffer(bytes, 0, split));
            ch.writeInbound(Unpooled.wrappedBuffer(bytes, split, bytes.length - split));
            NbdRequest w = ch.readInbound();
            assertTrue(w.payloadSkipped());
            NbdRequest empty = ch.readInbound();
            assertEquals(8, empty.cookie());
            empty.release();
            NbdRequest read = ch.readInbound();
            assertEquals(9, read.cookie());
            assertFalse(ch.finish());
        }
    }

    @Test
    void hugeWriteLengthIsNotBuffered() {
        EmbeddedChannel ch = new EmbeddedChannel(new ServerRequestDecoder(MAX));
        ch.writeInbound(request(Unpooled.buffer(), 0, 1, 7, 0, 0xFFFFFFFFL));
        NbdRequest r = ch.readInbound();
        assertTrue(r.payloadSkipped());
        for (int i = 0; i < 16; i++) {
            ch.writeInbound(Unpooled.wrappedBuffer(new byte[1 << 16]));
        }
        assertNull(ch.readInbound());
        ch.finishAndReleaseAll();
    }

    @Test
    void badMagicFails() {
        EmbeddedChannel ch = new EmbeddedChannel(new ServerRequestDecoder(MAX));
        ByteBuf b = Unpooled.buffer().writeInt(0x21e41c71).writeZero(28);
        DecoderException e = assertThrows(DecoderException.class, () -> ch.writeInbound(b));
        assertInstanceOf(NbdProtocolException.class, e.getCause());
        ch.finishAndReleaseAll();
    }
}
