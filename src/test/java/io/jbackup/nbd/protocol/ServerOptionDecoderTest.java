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

class ServerOptionDecoderTest {
    private static final int MAX = 4096 + 64;

    static byte[] option(int opt, byte[] data) {
        ByteBuf b = Unpooled.buffer();
        b.writeLong(NbdConstants.IHAVEOPT).writeInt(opt).writeInt(data.length).writeBytes(data);
        return ByteBufUtil.getBytes(b);
    }

    static byte[] concat(byte[]... parts) {
        ByteBuf b = Unpooled.buffer();
        for (byte[] p : parts) {
            b.writeBytes(p);
        }
        return ByteBufUtil.getBytes(b);
    }

    /** Feeds {@code bytes} in two writes split at {@code split}, resuming the decoder after every option. */
    static List<Object> feed(byte[] bytes, int split) {
        ServerOptionDecoder d = new ServerOptionDecoder(MAX);
        EmbeddedChannel ch = new EmbeddedChannel(d);
        List<Object> out = new ArrayList<>();
        ch.writeInbound(Unpooled.wrappedBuffer(bytes, 0, split));
        drain(ch, d, out);
        ch.writeInbound(Unpooled.wrappedBuffer(bytes, split, bytes.length - split));
        drain(ch, d, out);
        assertFalse(ch.finish());
        return out;
    }

    private static void drain(EmbeddedChannel ch, ServerOptionDecoder d, List<Object> out) {
        Object m;
        while ((m = ch.readInbound()) != null) {
            if (m instanceof OptionRequest r) {
                out.add(new Opt(r.option().code(), r.data()));
            } else {
                out.add(m);
            }
            d.resume();
        }
    }

    record Opt(int option, byte[] data) {
    }

    @Test
    void decodesFlagsAndOptionsSplitAtEveryPosition() {
        byte[] go = {0, 0, 0, 3, 'a', 'b', 'c', 0, 1, 0, 3};
        byte[] bytes = concat(new byte[] {0, 0, 0, 3}, option(7, go), option(8, new byte[0]), option(0x1234, new byte[] {9}));
        for (int split = 0; split <= bytes.length; split++) {
            List<Object> out = feed(bytes, split);
            assertEquals(4, out.size(), "split " + split);
            assertEquals(new ClientFlags(3), out.get(0));
            Opt o = (Opt) out.get(1);
            assertEquals(7, o.option());
            assertArrayEquals(go, o.data());
            assertEquals(8, ((Opt) out.get(2)).option());
            assertEquals(0, ((Opt) out.get(2)).data().length);
            assertEquals(0x1234, ((Opt) out.get(3)).option());
        }
    }

    @Test
    void pausesAfterEachOptionUntilResumed() {
        ServerOptionDecoder d = new ServerOptionDecoder(MAX);
        EmbeddedChannel ch = new EmbeddedChannel(d);
        ch.writeInbound(Unpooled.wrappedBuffer(concat(new byte[] {0, 0, 0, 1}, option(8, new byte[0]),
            option(3, new byte[0]))));
        assertInstanceOf(ClientFlags.class, ch.readInbound());
        OptionRequest first = ch.readInbound();
        assertEquals(NbdOption.STRUCTURED_REPLY, first.option());
        assertTrue(d.isPaused());
        assertNull(ch.readInbound(), "the second option must wait for resume()");
        assertEquals(16, d.bufferedBytes());
        d.resume();
        OptionRequest second = ch.readInbound();
        assertEquals(NbdOption.LIST, second.option());
        assertFalse(ch.finish());
    }

    @Test
    void skipsTooLongOptionAndDecodesTheNext() {
        byte[] big = new byte[MAX + 1];
        byte[] bytes = concat(new byte[] {0, 0, 0, 1}, option(9, big), option(3, new byte[0]));
        for (int split : new int[] {0, 3, 4, 19, 20, 21, 100, bytes.length - 17, bytes.length - 16, bytes.length - 1,
            bytes.length}) {
            List<Object> out = feed(bytes, split);
            assertEquals(3, out.size(), "split " + split);
            assertEquals(new OptionTooLong(9, MAX + 1), out.get(1));
            assertEquals(3, ((Opt) out.get(2)).option());
        }
    }

    @Test
    void hugeDeclaredLengthIsNotBuffered() {
        ServerOptionDecoder d = new ServerOptionDecoder(MAX);
        EmbeddedChannel ch = new EmbeddedChannel(d);
        ByteBuf b = Unpooled.buffer().writeInt(1).writeLong(NbdConstants.IHAVEOPT).writeInt(7).writeInt(0xFFFFFFF0);
        ch.writeInbound(b);
        assertInstanceOf(ClientFlags.class, ch.readInbound());
        assertEquals(new OptionTooLong(7, 0xFFFFFFF0L), ch.readInbound());
        ch.writeInbound(Unpooled.wrappedBuffer(new byte[1 << 16]));
        assertEquals(0, d.bufferedBytes(), "skipped data must not be buffered");
        ch.finishAndReleaseAll();
    }

    @Test
    void badMagicFails() {
        EmbeddedChannel ch = new EmbeddedChannel(new ServerOptionDecoder(MAX));
        ByteBuf b = Unpooled.buffer().writeInt(1).writeLong(0x1122334455667788L).writeInt(7).writeInt(0);
        DecoderException e = assertThrows(DecoderException.class, () -> ch.writeInbound(b));
        assertInstanceOf(NbdProtocolException.class, e.getCause());
        assertTrue(e.getCause().getMessage().contains("IHAVEOPT"), e.getCause().getMessage());
        ch.finishAndReleaseAll();
    }

    @Test
    void limitIsCheckedUpFront() {
        assertThrows(IllegalArgumentException.class, () -> new ServerOptionDecoder(10));
    }
}
