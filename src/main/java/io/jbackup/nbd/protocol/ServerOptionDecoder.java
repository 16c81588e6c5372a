package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import java.util.List;

/**
 * Decodes the client side of the fixed-newstyle handshake: the 4-byte {@link ClientFlags}, then options
 * ({@code IHAVEOPT(8) option(4) length(4) data}) as {@link OptionRequest}s, or {@link OptionTooLong} for an option
 * whose length exceeds {@code maxOptionLength} (its data is then skipped without being buffered).
 *
 * <p>A client must wait for the final reply to one option before it sends the next, so after each option the
 * decoder <em>pauses</em>: it keeps any further bytes buffered until the handler calls {@link #resume()}. This also
 * lets the handler replace the decoder after {@code NBD_OPT_GO}/{@code NBD_OPT_EXPORT_NAME}: bytes that follow
 * (the first transmission requests of a pipelining client) are handed to the next handler when this decoder is
 * removed.
 *
 * <p>A wrong option magic raises {@link NbdProtocolException}; the connection cannot be resynchronised.
 */
public final class ServerOptionDecoder extends ByteToMessageDecoder {
    private enum State { CLIENT_FLAGS, OPTION_HEADER, OPTION_DATA, SKIP_DATA, FAILED }

    private static final int HEADER_LENGTH = 16;

    private final int maxOptionLength;
    private State state = State.CLIENT_FLAGS;
    private boolean paused;
    private boolean inChannelRead;
    private int option;
    private long remaining;
    private ChannelHandlerContext ctx;

    /**
     * @param maxOptionLength longest option data buffered; longer options are reported as {@link OptionTooLong}
     */
    public ServerOptionDecoder(int maxOptionLength) {
        if (maxOptionLength < 1024) {
            throw new IllegalArgumentException("maxOptionLength: " + maxOptionLength + " (expected: >= 1024)");
        }
        this.maxOptionLength = maxOptionLength;
    }

    /** Whether the decoder waits for {@link #resume()} before decoding the next option. */
    public boolean isPaused() {
        return paused;
    }

    /** Bytes received but not decoded yet. */
    public int bufferedBytes() {
        return actualReadableBytes();
    }

    /**
     * Allows the next option to be decoded, decoding any bytes already buffered. Must be called on the event loop.
     */
    public void resume() {
        paused = false;
        if (!inChannelRead && ctx != null && !ctx.isRemoved() && actualReadableBytes() > 0) {
            try {
                channelRead(ctx, Unpooled.EMPTY_BUFFER);
            } catch (Exception e) {
                ctx.fireExceptionCaught(e);
            }
        }
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        this.ctx = ctx;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
        inChannelRead = true;
        try {
            super.channelRead(ctx, msg);
        } finally {
            inChannelRead = false;
        }
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) throws Exception {
        for (;;) {
            switch (state) {
                case CLIENT_FLAGS:
                    if (in.readableBytes() < 4) {
                        return;
                    }
                    out.add(new ClientFlags(in.readInt()));
                    state = State.OPTION_HEADER;
                    return;
                case OPTION_HEADER:
                    if (paused || in.readableBytes() < HEADER_LENGTH) {
                        return;
                    }
                    long magic = in.getLong(in.readerIndex());
                    if (magic != NbdConstants.IHAVEOPT) {
                        state = State.FAILED;
                        throw new NbdProtocolException("option magic 0x" + Long.toHexString(magic)
                            + " (expected IHAVEOPT 0x" + Long.toHexString(NbdConstants.IHAVEOPT) + ")");
                    }
                    in.skipBytes(8);
                    option = in.readInt();
                    remaining = in.readUnsignedInt();
                    paused = true;
                    if (remaining > maxOptionLength) {
                        out.add(new OptionTooLong(option, remaining));
                        state = State.SKIP_DATA;
                        return;
                    }
                    state = State.OPTION_DATA;
                    break;
                case OPTION_DATA:
                    if (in.readableBytes() < remaining) {
                        return;
                    }
                    byte[] data = new byte[(int) remaining];
                    in.readBytes(data);
                    out.add(new OptionRequest(NbdOption.valueOf(option), data));
                    state = State.OPTION_HEADER;
                    return;
                case SKIP_DATA:
                    int n = (int) Math.min(in.readableBytes(), remaining);
                    in.skipBytes(n);
                    remaining -= n;
                    if (remaining > 0) {
                        return;
                    }
                    state = State.OPTION_HEADER;
                    break;
                case FAILED:
                    in.skipBytes(in.readableBytes());
                    return;
                default:
                    throw new IllegalStateException("unknown state " + state);
            }
        }
    }
}
