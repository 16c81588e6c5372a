package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.ExportNameReply;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.ServerGreeting;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOutboundHandlerAdapter;
import io.netty.channel.ChannelPromise;

/**
 * Encodes the server side of the handshake: {@link ServerGreeting}, {@link OptionReply} and
 * {@link ExportNameReply}. Other messages pass through unchanged. Stateless.
 */
@ChannelHandler.Sharable
public final class ServerOptionReplyEncoder extends ChannelOutboundHandlerAdapter {
    /** Zero bytes after the EXPORT_NAME reply when NO_ZEROES was not negotiated. */
    static final int EXPORT_NAME_PADDING = 124;

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        if (msg instanceof OptionReply r) {
            ByteBuf data = r.content();
            ByteBuf out = ctx.alloc().buffer(20 + data.readableBytes());
            try {
                out.writeLong(NbdConstants.OPTION_REPLY_MAGIC).writeInt(r.option()).writeInt(r.replyType())
                    .writeInt(data.readableBytes()).writeBytes(data, data.readerIndex(), data.readableBytes());
            } finally {
                r.release();
            }
            ctx.write(out, promise);
        } else if (msg instanceof ServerGreeting g) {
            ByteBuf out = ctx.alloc().buffer(18);
            out.writeLong(NbdConstants.NBDMAGIC).writeLong(NbdConstants.IHAVEOPT).writeShort(g.handshakeFlags());
            ctx.write(out, promise);
        } else if (msg instanceof ExportNameReply e) {
            int len = 10 + (e.padWithZeroes() ? EXPORT_NAME_PADDING : 0);
            ByteBuf out = ctx.alloc().buffer(len);
            out.writeLong(e.size()).writeShort(e.transmissionFlags()).writeZero(len - 10);
            ctx.write(out, promise);
        } else {
            ctx.write(msg, promise);
        }
    }
}
