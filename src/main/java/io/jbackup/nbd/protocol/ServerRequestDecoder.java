package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import java.util.List;

/**
 * Decodes transmission requests into {@link NbdRequest}s, the server's side of transmission; the counterpart of
 * the client's {@link RequestEncoder}, which encodes the same type.
 * <pre>
 * COMPACT   0x25609513(4) flags(2) type(2) cookie(8) offset(8) length(4)   then length payload bytes for WRITE
 * EXTENDED  0x21e41c71(4) flags(2) type(2) cookie(8) offset(8) length(8)   then length payload bytes iff the flag
 *                                                                          NBD_CMD_FLAG_PAYLOAD_LEN is set
 * </pre>
 * In extended mode a WRITE without {@code PAYLOAD_LEN} cannot be framed and raises {@link NbdProtocolException};
 * a payload on any other command (a BLOCK_STATUS payload) is buffered or skipped like a WRITE's. With a
 * {@link RequestOffsets} table, each request that gets a reply (all but DISC) has its offset recorded for the
 * extended reply headers.
 *
 * <p>A WRITE payload up to {@code maxPayload} bytes is buffered and attached to the request; a longer one is
 * reported at once with {@link NbdRequest#payloadSkipped()} (and no payload) and then discarded as it arrives (as is every
 * payload when the decoder is told to skip them all, for a read-only export), so the stream
 * stays in sync and nothing larger than {@code maxPayload} is ever buffered. After {@code NBD_CMD_DISC} every
 * further byte is ignored (the client must not send any). A wrong request magic raises
 * {@link NbdProtocolException}: the stream cannot be resynchronised.
 */
public final class ServerRequestDecoder extends ByteToMessageDecoder {
    private enum State { HEADER, PAYLOAD, SKIP_PAYLOAD, DISCONNECTED }

    /** Size of a compact request header. */
    public static final int HEADER_LENGTH = 28;

    private final NbdHeaderMode mode;
    private final RequestOffsets offsets;
    private final int maxPayload;
    private final boolean skipAllPayloads;
    private State state = State.HEADER;
    private int flags;
    private NbdCommand command;
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
        this(NbdHeaderMode.COMPACT, maxPayload, skipAllPayloads, null);
    }

    /**
     * @param mode            the header mode negotiated
     * @param maxPayload      longest payload buffered; longer ones are skipped and flagged
     * @param skipAllPayloads skip and flag every WRITE payload (for a read-only export, where every write fails)
     * @param offsets         where request offsets are recorded for extended replies, or null
     */
    public ServerRequestDecoder(NbdHeaderMode mode, int maxPayload, boolean skipAllPayloads, RequestOffsets offsets) {
        this.mode = java.util.Objects.requireNonNull(mode, "mode");
        this.offsets = offsets;
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
                    int headerLength = mode.requestHeaderLength();
                    if (in.readableBytes() < headerLength) {
                        return;
                    }
                    boolean extended = mode == NbdHeaderMode.EXTENDED;
                    int expected = extended ? NbdConstants.EXTENDED_REQUEST_MAGIC : NbdConstants.REQUEST_MAGIC;
                    int magic = in.getInt(in.readerIndex());
                    if (magic != expected) {
                        state = State.DISCONNECTED;
                        throw new NbdProtocolException("request magic 0x" + Integer.toHexString(magic)
                            + " (expected " + (extended ? "extended " : "") + "0x" + Integer.toHexString(expected)
                            + ")");
                    }
                    in.skipBytes(4);
                    flags = in.readUnsignedShort();
                    command = NbdCommand.valueOf(in.readUnsignedShort());
                    cookie = in.readLong();
                    offset = in.readLong();
                    length = extended ? in.readLong() : in.readUnsignedInt();
                    boolean write = command.equals(NbdCommand.WRITE);
                    boolean hasPayload = write;
                    if (extended) {
                        hasPayload = (flags & NbdConstants.CMD_FLAG_PAYLOAD_LEN) != 0;
                        if (write && !hasPayload) {
                            state = State.DISCONNECTED;
                            throw new NbdProtocolException("extended WRITE request (cookie " + cookie + ") without "
                                + "NBD_CMD_FLAG_PAYLOAD_LEN: its payload cannot be framed");
                        }
                        if (hasPayload && length < 0) {
                            state = State.DISCONNECTED;
                            throw new NbdProtocolException("extended request (cookie " + cookie + ") announces a "
                                + "payload of " + Long.toUnsignedString(length) + " bytes");
                        }
                    }
                    if (!command.equals(NbdCommand.DISC) && offsets != null) {
                        offsets.put(cookie, offset);
                    }
                    if (hasPayload) {
                        if (length > maxPayload || (skipAllPayloads && write && length > 0)) {
                            out.add(new NbdRequest(flags, command, cookie, offset, length, null, true));
                            state = State.SKIP_PAYLOAD;
                            return;
                        }
                        state = State.PAYLOAD;
                        break;
                    }
                    out.add(new NbdRequest(flags, command, cookie, offset, length, null, false));
                    if (command.equals(NbdCommand.DISC)) {
                        state = State.DISCONNECTED;
                    }
                    return;
                case PAYLOAD:
                    if (in.readableBytes() < length) {
                        return;
                    }
                    ByteBuf payload = in.readRetainedSlice((int) length);
                    out.add(new NbdRequest(flags, command, cookie, offset, length, payload, false));
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
