package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOutboundHandlerAdapter;
import io.netty.channel.ChannelPromise;

/**
 * Encodes the server side of the handshake: {@link ServerGreeting}, {@link OptionReply} and
 * {@link ExportNameReply}. Other messages pass through unchanged. Stateless. The counterpart of the client's
 * {@link HandshakeDecoder}.
 * <pre>
 * option reply     0x3e889045565a9(8) option(4) reply-type(4) length(4) data
 *   ACK            no data
 *   SERVER         name-length(4) name details
 *   INFO           type(2): EXPORT size(8) flags(2) | NAME/DESCRIPTION string | BLOCK_SIZE min(4) pref(4) max(4)
 *   META_CONTEXT   context-id(4) name
 *   error          message (UTF-8, cut to 4096 bytes)
 * </pre>
 */
@ChannelHandler.Sharable
public final class ServerOptionReplyEncoder extends ChannelOutboundHandlerAdapter {
    /** Zero bytes after the EXPORT_NAME reply when NO_ZEROES was not negotiated. */
    static final int EXPORT_NAME_PADDING = 124;

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        if (msg instanceof OptionReply r) {
            ctx.write(encode(ctx.alloc(), r), promise);
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

    /** The wire form of one option reply. */
    static ByteBuf encode(ByteBufAllocator alloc, OptionReply r) {
        NbdOptionReplyType type;
        ByteBuf data = alloc.buffer();
        try {
            if (r instanceof OptionReply.Ack) {
                type = NbdOptionReplyType.ACK;
            } else if (r instanceof OptionReply.Error e) {
                type = e.type();
                data.writeBytes(NbdStrings.utf8Limited(e.message()));
            } else if (r instanceof OptionReply.Server s) {
                type = NbdOptionReplyType.SERVER;
                byte[] n = NbdStrings.utf8Limited(s.name());
                data.writeInt(n.length).writeBytes(n).writeBytes(NbdStrings.utf8Limited(s.details()));
            } else if (r instanceof OptionReply.InfoExport e) {
                type = NbdOptionReplyType.INFO;
                data.writeShort(NbdInfoType.EXPORT.code()).writeLong(e.size()).writeShort(e.transmissionFlags());
            } else if (r instanceof OptionReply.InfoName n) {
                type = NbdOptionReplyType.INFO;
                data.writeShort(NbdInfoType.NAME.code()).writeBytes(NbdStrings.utf8Limited(n.name()));
            } else if (r instanceof OptionReply.InfoDescription d) {
                type = NbdOptionReplyType.INFO;
                data.writeShort(NbdInfoType.DESCRIPTION.code()).writeBytes(NbdStrings.utf8Limited(d.description()));
            } else if (r instanceof OptionReply.InfoBlockSize b) {
                type = NbdOptionReplyType.INFO;
                data.writeShort(NbdInfoType.BLOCK_SIZE.code()).writeInt((int) b.minimum()).writeInt((int) b.preferred())
                    .writeInt((int) b.maximum());
            } else if (r instanceof OptionReply.MetaContext m) {
                type = NbdOptionReplyType.META_CONTEXT;
                data.writeInt(m.contextId()).writeBytes(NbdStrings.utf8Limited(m.name()));
            } else {
                throw new IllegalArgumentException("a server does not send " + r);
            }
            ByteBuf out = alloc.buffer(20 + data.readableBytes());
            out.writeLong(NbdConstants.OPTION_REPLY_MAGIC).writeInt(r.option().code()).writeInt(type.code())
                .writeInt(data.readableBytes()).writeBytes(data);
            return out;
        } finally {
            data.release();
        }
    }
}
