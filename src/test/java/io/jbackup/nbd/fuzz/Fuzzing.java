package io.jbackup.nbd.fuzz;

import io.jbackup.nbd.protocol.NbdProtocolException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.codec.DecoderException;
import io.netty.util.ReferenceCountUtil;

import java.lang.reflect.Field;
import java.util.function.Consumer;

/**
 * Shared plumbing of the NBD codec fuzz targets.
 *
 * <p>Every target takes the raw fuzzer input laid out as
 * <pre>
 * config(1)  target-specific switches (negotiated state of the decoder)
 * split(1)   bytes per write into the channel: 1..255, or 0 for one write of everything
 * wire(...)  the bytes a hostile peer sends
 * </pre>
 * so the seed corpus files are plain protocol messages behind two bytes, and the fuzzer mutates the negotiated
 * state and the TCP segmentation along with the bytes.
 *
 * <p>The invariants checked for every input: the decoder fails only with a {@link DecoderException} whose cause is
 * an {@link NbdProtocolException} (anything else, an {@code IndexOutOfBoundsException}, an
 * {@code IllegalArgumentException} from a record, an {@code OutOfMemoryError}, is a finding); its cumulation buffer
 * never holds more than the bound the decoder was configured with; and the run ends (the fuzzer's per-input timeout
 * catches a loop).
 */
final class Fuzzing {
    private Fuzzing() {
    }

    /** The input's config byte (0 if the input is empty). */
    static int config(byte[] in) {
        return in.length > 0 ? in[0] & 0xff : 0;
    }

    /** Bytes per write (the input's split byte; 0 means everything at once). */
    static int split(byte[] in) {
        return in.length > 1 ? in[1] & 0xff : 0;
    }

    /** The wire bytes (everything after the two header bytes). */
    static byte[] wire(byte[] in) {
        if (in.length <= 2) {
            return new byte[0];
        }
        byte[] w = new byte[in.length - 2];
        System.arraycopy(in, 2, w, 0, w.length);
        return w;
    }

    /**
     * Writes {@code wire} into {@code ch} in pieces of {@code split} bytes, running {@code afterEach} after every
     * piece (on the test thread, which is the embedded channel's event loop), and stops at the first decoder error
     * or when a handler closed the channel (as the client does on a protocol error).
     *
     * @return the error raised (allowed kinds only), or null if all bytes were decoded
     */
    static Throwable feed(EmbeddedChannel ch, byte[] wire, int split, Runnable afterEach) {
        int step = split == 0 ? Math.max(1, wire.length) : split;
        for (int pos = 0; pos < wire.length && ch.isOpen(); pos += step) {
            int n = Math.min(step, wire.length - pos);
            ByteBuf piece = Unpooled.copiedBuffer(wire, pos, n);
            try {
                ch.writeInbound(piece);
                afterEach.run();
            } catch (Throwable t) {
                requireAllowed(t);
                return t;
            }
        }
        return null;
    }

    /** An allocator of unpooled heap buffers that adds each buffer it makes to {@code allocated} (leak checks). */
    static io.netty.buffer.ByteBufAllocator tracking(java.util.List<io.netty.buffer.ByteBuf> allocated) {
        return new io.netty.buffer.AbstractByteBufAllocator(false) {
            @Override
            protected io.netty.buffer.ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
                io.netty.buffer.ByteBuf b = new io.netty.buffer.UnpooledHeapByteBuf(this, initialCapacity, maxCapacity);
                allocated.add(b);
                return b;
            }

            @Override
            protected io.netty.buffer.ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
                return newHeapBuffer(initialCapacity, maxCapacity);
            }

            @Override
            public boolean isDirectBufferPooled() {
                return false;
            }
        };
    }

    /** Closes the channel (end of stream: {@code decodeLast}); an allowed error is returned, others thrown. */
    static Throwable finish(EmbeddedChannel ch) {
        try {
            ch.finish();
            ch.checkException();
            return null;
        } catch (Throwable t) {
            requireAllowed(t);
            return t;
        } finally {
            drain(ch, m -> { });
        }
    }

    /**
     * Releases every message the channel produced, after handing it to {@code seen}. A decoded {@link NbdRequest} owns
     * its payload but is no netty {@code ReferenceCounted} (so {@code finishAndReleaseAll} would leave it): released
     * here by its own {@code release()}.
     */
    static void drain(EmbeddedChannel ch, Consumer<Object> seen) {
        for (Object o; (o = ch.readInbound()) != null; ) {
            try {
                seen.accept(o);
            } finally {
                if (o instanceof io.jbackup.nbd.protocol.NbdRequest r) {
                    r.release();
                } else {
                    ReferenceCountUtil.release(o);
                }
            }
        }
        for (Object o; (o = ch.readOutbound()) != null; ) {
            ReferenceCountUtil.release(o);
        }
    }

    /** A decoder failure is allowed only as a DecoderException caused by NbdProtocolException. */
    static void requireAllowed(Throwable t) {
        if (t instanceof DecoderException d && d.getCause() instanceof NbdProtocolException) {
            return;
        }
        if (t instanceof NbdProtocolException) {
            return;
        }
        throw new AssertionError("decoder failed with an undocumented exception: " + t, t);
    }

    private static final Field CUMULATION;

    static {
        try {
            CUMULATION = ByteToMessageDecoder.class.getDeclaredField("cumulation");
            CUMULATION.setAccessible(true);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Bytes the decoder holds back waiting for the rest of a message. */
    static int buffered(ByteToMessageDecoder d) {
        try {
            ByteBuf c = (ByteBuf) CUMULATION.get(d);
            return c == null ? 0 : c.readableBytes();
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Fails if the decoder buffers more than {@code bound} bytes. */
    static void requireBuffered(ByteToMessageDecoder d, int bound, String what) {
        int b = buffered(d);
        if (b > bound) {
            throw new AssertionError(what + " buffers " + b + " bytes; the configured bound is " + bound);
        }
    }
}
