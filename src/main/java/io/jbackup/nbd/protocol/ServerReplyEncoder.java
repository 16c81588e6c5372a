package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOutboundHandlerAdapter;
import io.netty.channel.ChannelPromise;

/**
 * Encodes {@link ServerReply} messages, the server's side of transmission; the counterpart of the client's
 * {@link ReplyDecoder}.
 * <pre>
 * COMPACT   simple reply      0x67446698(4) error(4) cookie(8) [data]
 *           structured chunk  0x668e33ef(4) flags(2) type(2) cookie(8) length(4) payload
 * EXTENDED  extended chunk    0x6e8a278c(4) flags(2) type(2) cookie(8) request-offset(8) length(8) payload
 * </pre>
 * In extended mode there are no simple replies: a {@link ServerReply.Simple} becomes a {@code NONE} chunk (error 0,
 * no data), an {@code ERROR} chunk, or one final {@code OFFSET_DATA} chunk (data); {@link ServerReply.BlockStatus}
 * becomes {@code BLOCK_STATUS_EXT} ({@code context-id(4) count(4)} then {@code length(8) status(8)} per extent), and
 * the request offset comes from the {@link RequestOffsets} the request decoder filled. Data buffers are not copied:
 * the header is written as its own buffer followed by the data buffer, and the caller's promise completes when the
 * data is written. Other messages pass through. The compact encoder is stateless and sharable ({@link #COMPACT});
 * an extended one belongs to one connection.
 */
@ChannelHandler.Sharable
public final class ServerReplyEncoder extends ChannelOutboundHandlerAdapter {
    /** Size of a structured chunk header. */
    public static final int CHUNK_HEADER_LENGTH = 20;
    /** Size of a simple reply header. */
    public static final int SIMPLE_HEADER_LENGTH = 16;
    /** Size of an extended chunk header. */
    public static final int EXTENDED_HEADER_LENGTH = 32;
    /** The compact encoder, shared by all connections. */
    public static final ServerReplyEncoder COMPACT = new ServerReplyEncoder();

    private final NbdHeaderMode mode;
    private final RequestOffsets offsets;

    /** A compact encoder. */
    public ServerReplyEncoder() {
        this(NbdHeaderMode.COMPACT, null);
    }

    /**
     * @param mode    the header mode negotiated
     * @param offsets the request offsets (required in extended mode)
     */
    public ServerReplyEncoder(NbdHeaderMode mode, RequestOffsets offsets) {
        if (mode == NbdHeaderMode.EXTENDED && offsets == null) {
            throw new IllegalArgumentException("extended replies need the request offsets");
        }
        this.mode = mode;
        this.offsets = offsets;
    }

    public NbdHeaderMode mode() {
        return mode;
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        if (!(msg instanceof ServerReply reply)) {
            ctx.write(msg, promise);
            return;
        }
        if (mode == NbdHeaderMode.EXTENDED) {
            writeExtended(ctx, reply, promise);
        } else if (reply instanceof ServerReply.Simple s) {
            ByteBuf h = ctx.alloc().buffer(SIMPLE_HEADER_LENGTH);
            h.writeInt(NbdConstants.SIMPLE_REPLY_MAGIC).writeInt(s.error()).writeLong(s.cookie());
            writeWithData(ctx, h, s.data(), promise);
        } else if (reply instanceof ServerReply.OffsetData d) {
            int len = d.data().readableBytes();
            ByteBuf h = ctx.alloc().buffer(CHUNK_HEADER_LENGTH + 8);
            chunkHeader(h, d.done(), NbdReplyChunkType.OFFSET_DATA, d.cookie(), 8L + len).writeLong(d.offset());
            writeWithData(ctx, h, d.data(), promise);
        } else if (reply instanceof ServerReply.OffsetHole o) {
            ByteBuf h = ctx.alloc().buffer(CHUNK_HEADER_LENGTH + 12);
            chunkHeader(h, o.done(), NbdReplyChunkType.OFFSET_HOLE, o.cookie(), 12).writeLong(o.offset())
                .writeInt(o.length());
            ctx.write(h, promise);
        } else if (reply instanceof ServerReply.BlockStatus b) {
            int n = b.extents().size();
            ByteBuf h = ctx.alloc().buffer(CHUNK_HEADER_LENGTH + 4 + 8 * n);
            chunkHeader(h, b.done(), NbdReplyChunkType.BLOCK_STATUS, b.cookie(), 4L + 8L * n).writeInt(b.contextId());
            for (Extent e : b.extents()) {
                h.writeInt((int) e.length()).writeInt(e.flags());
            }
            ctx.write(h, promise);
        } else if (reply instanceof ServerReply.Error e) {
            byte[] m = NbdStrings.utf8Limited(e.message() == null ? "" : e.message());
            ByteBuf h = ctx.alloc().buffer(CHUNK_HEADER_LENGTH + 6 + m.length);
            chunkHeader(h, e.done(), NbdReplyChunkType.ERROR, e.cookie(), 6L + m.length).writeInt(e.error())
                .writeShort(m.length).writeBytes(m);
            ctx.write(h, promise);
        } else if (reply instanceof ServerReply.None n) {
            ByteBuf h = ctx.alloc().buffer(CHUNK_HEADER_LENGTH);
            chunkHeader(h, true, NbdReplyChunkType.NONE, n.cookie(), 0);
            ctx.write(h, promise);
        } else {
            throw new IllegalStateException("unknown reply " + reply);
        }
    }

    private void writeExtended(ChannelHandlerContext ctx, ServerReply reply, ChannelPromise promise) {
        if (reply instanceof ServerReply.Simple s) {
            if (s.data() != null) {
                // READ data: one final OFFSET_DATA chunk at the request's offset
                long at = offsets.offset(s.cookie(), false);
                reply = new ServerReply.OffsetData(s.cookie(), true, at, s.data());
            } else if (s.error() != 0) {
                reply = new ServerReply.Error(s.cookie(), true, s.error(), "");
            } else {
                reply = new ServerReply.None(s.cookie());
            }
        }
        if (reply instanceof ServerReply.OffsetData d) {
            int len = d.data().readableBytes();
            ByteBuf h = ctx.alloc().buffer(EXTENDED_HEADER_LENGTH + 8);
            extendedHeader(h, d.done(), NbdReplyChunkType.OFFSET_DATA, d.cookie(), 8L + len).writeLong(d.offset());
            writeWithData(ctx, h, d.data(), promise);
        } else if (reply instanceof ServerReply.OffsetHole o) {
            ByteBuf h = ctx.alloc().buffer(EXTENDED_HEADER_LENGTH + 12);
            extendedHeader(h, o.done(), NbdReplyChunkType.OFFSET_HOLE, o.cookie(), 12).writeLong(o.offset())
                .writeInt(o.length());
            ctx.write(h, promise);
        } else if (reply instanceof ServerReply.BlockStatus b) {
            int n = b.extents().size();
            ByteBuf h = ctx.alloc().buffer(EXTENDED_HEADER_LENGTH + 8 + 16 * n);
            extendedHeader(h, b.done(), NbdReplyChunkType.BLOCK_STATUS_EXT, b.cookie(), 8L + 16L * n)
                .writeInt(b.contextId()).writeInt(n);
            for (Extent e : b.extents()) {
                h.writeLong(e.length()).writeLong(Integer.toUnsignedLong(e.flags()));
            }
            ctx.write(h, promise);
        } else if (reply instanceof ServerReply.Error e) {
            byte[] m = NbdStrings.utf8Limited(e.message() == null ? "" : e.message());
            ByteBuf h = ctx.alloc().buffer(EXTENDED_HEADER_LENGTH + 6 + m.length);
            extendedHeader(h, e.done(), NbdReplyChunkType.ERROR, e.cookie(), 6L + m.length).writeInt(e.error())
                .writeShort(m.length).writeBytes(m);
            ctx.write(h, promise);
        } else if (reply instanceof ServerReply.None n) {
            ByteBuf h = ctx.alloc().buffer(EXTENDED_HEADER_LENGTH);
            extendedHeader(h, true, NbdReplyChunkType.NONE, n.cookie(), 0);
            ctx.write(h, promise);
        } else {
            throw new IllegalStateException("unknown reply " + reply);
        }
    }

    private ByteBuf extendedHeader(ByteBuf h, boolean done, NbdReplyChunkType type, long cookie, long length) {
        return h.writeInt(NbdConstants.EXTENDED_REPLY_MAGIC).writeShort(done ? NbdConstants.REPLY_FLAG_DONE : 0)
            .writeShort(type.code()).writeLong(cookie).writeLong(offsets.offset(cookie, done)).writeLong(length);
    }

    private static ByteBuf chunkHeader(ByteBuf h, boolean done, NbdReplyChunkType type, long cookie, long length) {
        return h.writeInt(NbdConstants.STRUCTURED_REPLY_MAGIC).writeShort(done ? NbdConstants.REPLY_FLAG_DONE : 0)
            .writeShort(type.code()).writeLong(cookie).writeInt((int) length);
    }

    private static void writeWithData(ChannelHandlerContext ctx, ByteBuf header, ByteBuf data, ChannelPromise promise) {
        if (data == null) {
            ctx.write(header, promise);
        } else {
            ctx.write(header, ctx.voidPromise());
            ctx.write(data, promise);
        }
    }
}
