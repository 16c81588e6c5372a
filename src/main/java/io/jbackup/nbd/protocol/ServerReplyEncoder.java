package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOutboundHandlerAdapter;
import io.netty.channel.ChannelPromise;

/**
 * Encodes {@link ServerReply} messages: simple replies ({@code 0x67446698}) and structured reply chunks
 * ({@code 0x668e33ef(4) flags(2) type(2) cookie(8) length(4) payload}). Data buffers are not copied: the header is
 * written as its own buffer followed by the data buffer, and the caller's promise completes when the data is
 * written. Other messages pass through. Stateless.
 */
@ChannelHandler.Sharable
public final class ServerReplyEncoder extends ChannelOutboundHandlerAdapter {
    /** Size of a structured chunk header. */
    public static final int CHUNK_HEADER_LENGTH = 20;
    /** Size of a simple reply header. */
    public static final int SIMPLE_HEADER_LENGTH = 16;

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        if (!(msg instanceof ServerReply reply)) {
            ctx.write(msg, promise);
            return;
        }
        if (reply instanceof ServerReply.Simple s) {
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
