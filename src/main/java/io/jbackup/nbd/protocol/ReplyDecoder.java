package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.codec.DecoderException;

import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Client-side decoder for transmission replies, an explicit state machine; the counterpart of the server's
 * {@link ServerReplyEncoder}, which encodes the same {@link NbdReply} types.
 *
 * <p>Wire formats (big-endian):
 * <pre>
 * simple reply      0x67446698(4) error(4) cookie(8) [READ data, when error == 0]       (compact only)
 * structured chunk  0x668e33ef(4) flags(2) type(2) cookie(8) length(4) payload(length)  (compact only)
 * extended chunk    0x6e8a278c(4) flags(2) type(2) cookie(8) offset(8) length(8) payload (extended only; the
 *                   offset echoes the request's)
 *   NONE            length 0, flag DONE set
 *   OFFSET_DATA     offset(8) data(length - 8), length &gt;= 9
 *   OFFSET_HOLE     offset(8) hole-size(4, nonzero), length == 12
 *   BLOCK_STATUS    context-id(4) n x {extent-length(4, nonzero) status(4)}, length == 4 + 8n, n &gt;= 1
 *   ERROR           error(4, nonzero) message-length(2) message, length &gt;= 6
 *   ERROR_OFFSET    error(4, nonzero) message-length(2) message offset(8), length &gt;= 14
 *   BLOCK_STATUS_EXT context-id(4) count(4, == n) n x {extent-length(8, nonzero) status(8)}, length == 8 + 16n,
 *                   n &gt;= 1 (extended only; BLOCK_STATUS is compact only)
 * </pre>
 *
 * <p>A simple reply does not say how much data follows: that depends on the request, so the decoder asks
 * {@link RequestLookup} (the client's in-flight table) for the READ length of the cookie.
 *
 * <p>READ data (simple reply data and {@code OFFSET_DATA} payloads) is not accumulated: it is passed on in
 * {@link ReplyData} pieces as bytes arrive, so a 32 MiB chunk costs no 32 MiB buffer and the receiver copies each byte
 * once, straight into its destination. Every other chunk is bounded by {@code maxMetadataPayload} before it is
 * buffered; data chunks by {@code maxDataPayload}. A violation raises a {@link DecoderException} whose cause is an
 * {@link NbdProtocolException}; the decoder then discards all further input.
 */
public final class ReplyDecoder extends ByteToMessageDecoder {
    /** The in-flight requests, as far as decoding needs them. Called on the channel's event loop. */
    @FunctionalInterface
    public interface RequestLookup {
        /**
         * How many data bytes follow a successful simple reply with this cookie (the READ length; 0 for other
         * commands).
         *
         * @throws NbdProtocolException if no request with this cookie is in flight
         */
        long simpleReplyDataLength(long cookie) throws NbdProtocolException;
    }

    /**
     * A block-status chunk of 2^20 descriptors (the most a server should send, {@code doc/proto.md}): the default
     * bound for metadata chunks.
     */
    public static final int DEFAULT_MAX_METADATA_PAYLOAD = 4 + 8 * (1 << 20);
    /** The same for extended headers: a {@code BLOCK_STATUS_EXT} chunk of 2^20 descriptors. */
    public static final int DEFAULT_MAX_METADATA_PAYLOAD_EXTENDED = 8 + 16 * (1 << 20);

    private static final int SIMPLE_HEADER_LENGTH = 16;
    private static final int STRUCTURED_HEADER_LENGTH = 20;
    private static final int EXTENDED_HEADER_LENGTH = 32;

    private enum State {
        READ_HEADER,
        READ_DATA_OFFSET,
        READ_DATA,
        READ_CHUNK_PAYLOAD,
        BAD_MESSAGE
    }

    private final NbdHeaderMode mode;
    private final long maxDataPayload;
    private final int maxMetadataPayload;
    private final RequestLookup lookup;

    private State state = State.READ_HEADER;
    // the chunk being decoded
    private long cookie;
    private int flags;
    private NbdReplyChunkType type;
    private long chunkLength;
    // READ data being streamed
    private long dataIndex;
    private long dataLength;
    private boolean dataDone;

    /**
     * @param mode               header mode negotiated
     * @param maxDataPayload     largest READ data accepted in one simple reply or OFFSET_DATA chunk
     * @param maxMetadataPayload largest payload of any other chunk (block status, errors)
     * @param lookup             the in-flight request table
     */
    public ReplyDecoder(NbdHeaderMode mode, long maxDataPayload, int maxMetadataPayload, RequestLookup lookup) {
        this.mode = java.util.Objects.requireNonNull(mode, "mode");
        if (maxDataPayload < 1 || maxMetadataPayload < 64) {
            throw new IllegalArgumentException("maxDataPayload " + maxDataPayload + " must be >= 1, "
                + "maxMetadataPayload " + maxMetadataPayload + " must be >= 64");
        }
        this.maxDataPayload = maxDataPayload;
        this.maxMetadataPayload = maxMetadataPayload;
        this.lookup = lookup;
    }

    public NbdHeaderMode mode() {
        return mode;
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) throws Exception {
        try {
            switch (state) {
                case READ_HEADER -> decodeHeader(in, out);
                case READ_DATA_OFFSET -> decodeDataOffset(in, out);
                case READ_DATA -> decodeData(in, out);
                case READ_CHUNK_PAYLOAD -> decodeChunkPayload(in, out);
                case BAD_MESSAGE -> in.skipBytes(in.readableBytes());
                default -> throw new IllegalStateException(state.name());
            }
        } catch (NbdProtocolException e) {
            state = State.BAD_MESSAGE;
            in.skipBytes(in.readableBytes());
            throw new DecoderException(e);
        }
    }

    @Override
    protected void decodeLast(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) throws Exception {
        if (in.isReadable()) {
            decode(ctx, in, out);
        }
        if (state == State.BAD_MESSAGE) {
            return;
        }
        if (state != State.READ_HEADER || in.isReadable()) {
            String where = switch (state) {
                case READ_HEADER -> "a reply header (" + in.readableBytes() + " bytes of it received)";
                case READ_DATA_OFFSET, READ_DATA -> String.format("the READ data of cookie 0x%x (%d of %d bytes "
                    + "received)", cookie, dataIndex, dataLength);
                case READ_CHUNK_PAYLOAD -> String.format("a %s chunk for cookie 0x%x (%d of %d payload bytes "
                    + "received)", type, cookie, in.readableBytes(), chunkLength);
                case BAD_MESSAGE -> "a bad message";
            };
            state = State.BAD_MESSAGE;
            in.skipBytes(in.readableBytes());
            throw new DecoderException(new NbdConnectionClosedException("server closed the connection in the middle of "
                + where));
        }
    }

    private void decodeHeader(ByteBuf in, List<Object> out) throws NbdProtocolException {
        if (in.readableBytes() < 4) {
            return;
        }
        int base = in.readerIndex();
        int magic = in.getInt(base);
        if (mode == NbdHeaderMode.EXTENDED) {
            if (magic != NbdConstants.EXTENDED_REPLY_MAGIC) {
                throw new NbdProtocolException(String.format("bad reply magic 0x%08x (expected extended 0x%08x: "
                    + "extended headers were negotiated, so simple and structured replies are not allowed)", magic,
                    NbdConstants.EXTENDED_REPLY_MAGIC));
            }
            if (in.readableBytes() < EXTENDED_HEADER_LENGTH) {
                return;
            }
            in.skipBytes(4);
            flags = in.readUnsignedShort();
            type = NbdReplyChunkType.valueOf(in.readUnsignedShort());
            cookie = in.readLong();
            in.skipBytes(8); // the request's offset, echoed
            chunkLength = in.readLong();
            if (chunkLength < 0 || chunkLength > Integer.MAX_VALUE) {
                throw new NbdProtocolException(String.format("%s chunk for cookie 0x%x announces %s payload bytes, "
                    + "more than any reply this client accepts", type, cookie, Long.toUnsignedString(chunkLength)));
            }
            chunk(in, out);
            return;
        }
        if (magic == NbdConstants.SIMPLE_REPLY_MAGIC) {
            if (in.readableBytes() < SIMPLE_HEADER_LENGTH) {
                return;
            }
            in.skipBytes(4);
            NbdError error = NbdError.valueOf(in.readInt());
            cookie = in.readLong();
            long len = error.code() == 0 ? lookup.simpleReplyDataLength(cookie) : 0;
            if (len > maxDataPayload) {
                throw new NbdProtocolException(String.format("simple reply for cookie 0x%x would carry %d bytes of "
                    + "READ data; the limit is %d", cookie, len, maxDataPayload));
            }
            out.add(new NbdReply.Simple(cookie, error, len));
            if (len > 0) {
                startData(len, true);
            }
            return;
        }
        if (magic != NbdConstants.STRUCTURED_REPLY_MAGIC) {
            throw new NbdProtocolException(String.format("bad reply magic 0x%08x (expected simple 0x%08x or "
                + "structured 0x%08x)", magic, NbdConstants.SIMPLE_REPLY_MAGIC, NbdConstants.STRUCTURED_REPLY_MAGIC));
        }
        if (in.readableBytes() < STRUCTURED_HEADER_LENGTH) {
            return;
        }
        in.skipBytes(4);
        flags = in.readUnsignedShort();
        type = NbdReplyChunkType.valueOf(in.readUnsignedShort());
        cookie = in.readLong();
        chunkLength = in.readUnsignedInt();
        chunk(in, out);
    }

    /** Checks the header of a structured or extended chunk and chooses how to read its payload. */
    private void chunk(ByteBuf in, List<Object> out) throws NbdProtocolException {
        boolean done = (flags & NbdConstants.REPLY_FLAG_DONE) != 0;
        int code = type.code();
        if (code == NbdReplyChunkType.NONE.code()) {
            if (chunkLength != 0 || !done) {
                throw new NbdProtocolException(String.format("NONE chunk for cookie 0x%x has length %d and flags "
                    + "0x%x; it must have length 0 and the DONE flag", cookie, chunkLength, flags));
            }
            out.add(new NbdReply.None(cookie, flags));
        } else if (code == NbdReplyChunkType.OFFSET_DATA.code()) {
            if (chunkLength < 9 || chunkLength - 8 > maxDataPayload) {
                throw new NbdProtocolException(String.format("OFFSET_DATA chunk for cookie 0x%x has length %d; "
                    + "it must be between 9 and %d", cookie, chunkLength, maxDataPayload + 8));
            }
            state = State.READ_DATA_OFFSET;
        } else if (code == NbdReplyChunkType.OFFSET_HOLE.code()) {
            requireLength(chunkLength == 12, "must be 12");
            state = State.READ_CHUNK_PAYLOAD;
        } else if (code == NbdReplyChunkType.BLOCK_STATUS.code() && mode == NbdHeaderMode.COMPACT) {
            requireLength(chunkLength >= 12 && (chunkLength - 4) % 8 == 0, "must be 4 + 8n with n >= 1");
            requireLength(chunkLength <= maxMetadataPayload, "exceeds the limit of " + maxMetadataPayload);
            state = State.READ_CHUNK_PAYLOAD;
        } else if (code == NbdReplyChunkType.BLOCK_STATUS_EXT.code() && mode == NbdHeaderMode.EXTENDED) {
            requireLength(chunkLength >= 24 && (chunkLength - 8) % 16 == 0, "must be 8 + 16n with n >= 1");
            requireLength(chunkLength <= maxMetadataPayload, "exceeds the limit of " + maxMetadataPayload);
            state = State.READ_CHUNK_PAYLOAD;
        } else if (code == NbdReplyChunkType.BLOCK_STATUS.code() || code == NbdReplyChunkType.BLOCK_STATUS_EXT.code()) {
            throw new NbdProtocolException(String.format("%s chunk for cookie 0x%x with %s headers (doc/proto.md: "
                + "BLOCK_STATUS_EXT with extended headers, BLOCK_STATUS otherwise)", type, cookie,
                mode.name().toLowerCase(java.util.Locale.ROOT)));
        } else if (code == NbdReplyChunkType.ERROR.code()) {
            requireLength(chunkLength >= 6, "must be at least 6");
            requireLength(chunkLength <= maxMetadataPayload, "exceeds the limit of " + maxMetadataPayload);
            state = State.READ_CHUNK_PAYLOAD;
        } else if (code == NbdReplyChunkType.ERROR_OFFSET.code()) {
            requireLength(chunkLength >= 14, "must be at least 14");
            requireLength(chunkLength <= maxMetadataPayload, "exceeds the limit of " + maxMetadataPayload);
            state = State.READ_CHUNK_PAYLOAD;
        } else if (type.isError()) {
            requireLength(chunkLength <= maxMetadataPayload, "exceeds the limit of " + maxMetadataPayload);
            state = State.READ_CHUNK_PAYLOAD;
            if (chunkLength == 0) {
                // an unknown error type without payload: complete it now, with the header's bytes (netty refuses
                // a decode() call that emits a message without reading anything)
                decodeChunkPayload(in, out);
            }
        } else {
            throw new NbdProtocolException(String.format("structured reply chunk of unknown type %s for cookie 0x%x"
                + " (a client must disconnect on unknown non-error chunks)", type, cookie));
        }
    }

    private void requireLength(boolean ok, String rule) throws NbdProtocolException {
        if (!ok) {
            throw new NbdProtocolException(String.format("%s chunk for cookie 0x%x has length %d, which %s",
                type, cookie, chunkLength, rule));
        }
    }

    private void decodeDataOffset(ByteBuf in, List<Object> out) {
        if (in.readableBytes() < 8) {
            return;
        }
        long offset = in.readLong();
        long len = chunkLength - 8;
        out.add(new NbdReply.OffsetData(cookie, flags, offset, len));
        startData(len, (flags & NbdConstants.REPLY_FLAG_DONE) != 0);
    }

    private void startData(long len, boolean done) {
        dataIndex = 0;
        dataLength = len;
        dataDone = done;
        state = State.READ_DATA;
    }

    private void decodeData(ByteBuf in, List<Object> out) {
        int n = (int) Math.min(in.readableBytes(), dataLength - dataIndex);
        if (n == 0) {
            return;
        }
        boolean last = dataIndex + n == dataLength;
        out.add(new ReplyData(cookie, dataIndex, in.readRetainedSlice(n), last, last && dataDone));
        dataIndex += n;
        if (last) {
            state = State.READ_HEADER;
        }
    }

    private void decodeChunkPayload(ByteBuf in, List<Object> out) throws NbdProtocolException {
        if (in.readableBytes() < chunkLength) {
            return;
        }
        int len = (int) chunkLength;
        ByteBuf p = in.readSlice(len);
        state = State.READ_HEADER;
        int code = type.code();
        if (code == NbdReplyChunkType.OFFSET_HOLE.code()) {
            long offset = p.readLong();
            long size = p.readUnsignedInt();
            if (size == 0) {
                throw new NbdProtocolException(String.format("OFFSET_HOLE chunk for cookie 0x%x has hole size 0",
                    cookie));
            }
            out.add(new NbdReply.OffsetHole(cookie, flags, offset, size));
        } else if (code == NbdReplyChunkType.BLOCK_STATUS.code()) {
            int contextId = p.readInt();
            int n = (len - 4) / 8;
            long[] pairs = new long[2 * n];
            for (int i = 0; i < n; i++) {
                long l = p.readUnsignedInt();
                if (l == 0) {
                    throw new NbdProtocolException(String.format("BLOCK_STATUS chunk for cookie 0x%x: descriptor %d "
                        + "of %d has length 0", cookie, i, n));
                }
                pairs[2 * i] = l;
                pairs[2 * i + 1] = p.readUnsignedInt();
            }
            out.add(new NbdReply.BlockStatus(cookie, flags, contextId, new NbdReply.PackedDescriptors(pairs)));
        } else if (code == NbdReplyChunkType.BLOCK_STATUS_EXT.code()) {
            out.add(blockStatusExt(p, len));
        } else {
            out.add(decodeError(p, len));
        }
    }

    private NbdReply.BlockStatus blockStatusExt(ByteBuf p, int len) throws NbdProtocolException {
        int contextId = p.readInt();
        long count = p.readUnsignedInt();
        int n = (len - 8) / 16;
        if (count != n) {
            throw new NbdProtocolException(String.format("BLOCK_STATUS_EXT chunk for cookie 0x%x says %d descriptors "
                + "but its length %d holds %d", cookie, count, len, n));
        }
        long[] pairs = new long[2 * n];
        for (int i = 0; i < n; i++) {
            long l = p.readLong();
            if (l <= 0) {
                throw new NbdProtocolException(String.format("BLOCK_STATUS_EXT chunk for cookie 0x%x: descriptor %d "
                    + "of %d has length %s (expected: 1 to 2^63 - 1)", cookie, i, n, Long.toUnsignedString(l)));
            }
            pairs[2 * i] = l;
            pairs[2 * i + 1] = p.readLong();
        }
        return new NbdReply.BlockStatus(cookie, flags, contextId, new NbdReply.PackedDescriptors(pairs));
    }

    private NbdReply.Error decodeError(ByteBuf p, int len) throws NbdProtocolException {
        boolean known = type.code() == NbdReplyChunkType.ERROR.code()
            || type.code() == NbdReplyChunkType.ERROR_OFFSET.code();
        if (len < 6) {
            // unknown error type too short to carry an error value: the reply failed, reason unknown
            return new NbdReply.Error(cookie, flags, type, NbdError.EINVAL, "", -1);
        }
        int code = p.readInt();
        int msgLen = p.readUnsignedShort();
        int fixed = type.code() == NbdReplyChunkType.ERROR_OFFSET.code() ? 14 : 6;
        if (msgLen > len - fixed || msgLen > NbdConstants.MAX_STRING_LENGTH) {
            if (known) {
                throw new NbdProtocolException(String.format("%s chunk for cookie 0x%x: message length %d does not "
                    + "fit the chunk length %d", type, cookie, msgLen, len));
            }
            return new NbdReply.Error(cookie, flags, type, errorValue(code), "", -1);
        }
        if (code == 0 && known) {
            throw new NbdProtocolException(String.format("%s chunk for cookie 0x%x carries error value 0", type,
                cookie));
        }
        String message = p.toString(p.readerIndex(), msgLen, StandardCharsets.UTF_8);
        p.skipBytes(msgLen);
        long offset = -1;
        if (type.code() == NbdReplyChunkType.ERROR_OFFSET.code()) {
            offset = p.readLong();
            if (offset < 0) {
                throw new NbdProtocolException(String.format("ERROR_OFFSET chunk for cookie 0x%x names offset %s, "
                    + "beyond any export (2^63 - 1)", cookie, Long.toUnsignedString(offset)));
            }
        }
        return new NbdReply.Error(cookie, flags, type, errorValue(code), message, offset);
    }

    private static NbdError errorValue(int code) {
        // a client should treat unexpected error values as EINVAL, but keep the value for the message
        return code == 0 ? NbdError.EINVAL : NbdError.valueOf(code);
    }
}
