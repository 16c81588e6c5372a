package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.MessageToByteEncoder;

/**
 * Client-side encoder for the handshake phase. Stateless and sharable.
 * <pre>
 * {@link ClientFlags}    flags(4)
 * {@link OptionRequest}  IHAVEOPT(8) option(4) length(4) data(length)
 * </pre>
 */
@ChannelHandler.Sharable
public final class HandshakeEncoder extends MessageToByteEncoder<Object> {
    public static final HandshakeEncoder INSTANCE = new HandshakeEncoder();

    private HandshakeEncoder() {
        super(Object.class, false);
    }

    @Override
    public boolean acceptOutboundMessage(Object msg) {
        return msg instanceof ClientFlags || msg instanceof OptionRequest;
    }

    @Override
    protected void encode(ChannelHandlerContext ctx, Object msg, ByteBuf out) {
        if (msg instanceof ClientFlags f) {
            out.writeInt(f.flags());
        } else {
            OptionRequest o = (OptionRequest) msg;
            out.writeLong(NbdConstants.IHAVEOPT);
            out.writeInt(o.option().code());
            out.writeInt(o.data().length);
            out.writeBytes(o.data());
        }
    }
}
