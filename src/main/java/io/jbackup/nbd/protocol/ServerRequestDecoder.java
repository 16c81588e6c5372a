package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import java.util.List;

/**
 * Decodes compact transmission requests into {@link ServerRequest}s.
 *
 * <p>A WRITE payload up to {@code maxPayload} bytes is buffered and attached to the request; a longer one is
 * reported at once with {@link ServerRequest#payloadSkipped()} and then discarded as it arrives (as is every
 * payload when the decoder is told to skip them all, for a read-only export), so the stream
 * stays in sync and nothing larger than {@code maxPayload} is ever buffered. After {@code NBD_CMD_DISC} every
 * further byte is ignored (the client must not send any). A wrong request magic raises
 * {@link NbdProtocolException}: the stream cannot be resynchronised.
 */
public final class ServerRequestDecoder extends ByteToMessageDecoder {
    private enum State { HEADER, PAYLOAD, SKIP_PAYLOAD, DISCONNECTED }

    /** Size of a compact request header. */
    public static final int HEADER_LENGTH = 28;

    private final int maxPayload;
    private final boolean skipAllPayloads;
    private State state = State.HEADER;
    private int flags;
    private int type;
    private long cookie;
    private long offset;
    private long length;

    /** @param maxPayload longest WRITE payload buffered; longer ones are skipped and flagged */
    public ServerRequestDecoder(int maxPayload) {
        this(maxPayload, false);
    }

    /**
     * @param maxPayload      longest WRITE payload buffered; longer ones are skipped and flagged
     * @param skipAllPayloads skip and flag every WRITE payload (for a read-only export, where every write fails)
     */
    public ServerRequestDecoder(int maxPayload, boolean skipAllPayloads) {
        if (maxPayload < 512) {
            throw new IllegalArgumentException("maxPayload: " + maxPayload + " (expected: >= 512)");
        }
        this.maxPayload = maxPayload;
        this.skipAllPayloads = skipAllPayloads;
    }

    /** Whether part of a request (header or WRITE payload) has arrived and the rest has not. */
    public boolean midRequest() {
        return state == State.PAYLOAD || state == State.SKIP_PAYLOAD
            || (state == State.HEADER && actualReadableBytes() > 0);
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) throws Exception {
        for (;;) {
            switch (state) {
                case HEADER:
                    if (in.readableBytes() < HEADER_LENGTH) {
                        return;
                    }
                    int magic = in.getInt(in.readerIndex());
                    if (magic != NbdConstants.REQUEST_MAGIC) {
                        state = State.DISCONNECTED;
                        throw new NbdProtocolException("request magic 0x" + Integer.toHexString(magic)
                            + " (expected 0x" + Integer.toHexString(NbdConstants.REQUEST_MAGIC) + ")");
                    }
                    in.skipBytes(4);
                    flags = in.readUnsignedShort();
                    type = in.readUnsignedShort();
                    cookie = in.readLong();
                    offset = in.readLong();
                    length = in.readUnsignedInt();
                    if (type == NbdCommand.WRITE.code()) {
                        if (length > maxPayload || (skipAllPayloads && length > 0)) {
                            out.add(new ServerRequest(flags, type, cookie, offset, length, null, true));
                            state = State.SKIP_PAYLOAD;
                            return;
                        }
                        state = State.PAYLOAD;
                        break;
                    }
                    out.add(new ServerRequest(flags, type, cookie, offset, length, null, false));
                    if (type == NbdCommand.DISC.code()) {
                        state = State.DISCONNECTED;
                    }
                    return;
                case PAYLOAD:
                    if (in.readableBytes() < length) {
                        return;
                    }
                    ByteBuf payload = in.readRetainedSlice((int) length);
                    out.add(new ServerRequest(flags, type, cookie, offset, length, payload, false));
                    state = State.HEADER;
                    return;
                case SKIP_PAYLOAD:
                    int n = (int) Math.min(in.readableBytes(), length);
                    in.skipBytes(n);
                    length -= n;
                    if (length > 0) {
                        return;
                    }
                    state = State.HEADER;
                    break;
                case DISCONNECTED:
                    in.skipBytes(in.readableBytes());
                    return;
                default:
                    throw new IllegalStateException("unknown state " + state);
            }
        }
    }
}
