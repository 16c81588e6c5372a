package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.EncoderException;
import io.netty.handler.codec.MessageToMessageEncoder;

import java.util.List;

/**
 * Encodes {@link NbdRequest}s: a 28-byte header (compact mode) and, for {@code WRITE}, the payload buffer passed on
 * as its own message so it is never copied. Stateless and sharable.
 */
@ChannelHandler.Sharable
public final class RequestEncoder extends MessageToMessageEncoder<NbdRequest> {
    public static final int COMPACT_HEADER_LENGTH = 28;
    public static final RequestEncoder COMPACT = new RequestEncoder(NbdHeaderMode.COMPACT);

    private final NbdHeaderMode mode;

    public RequestEncoder(NbdHeaderMode mode) {
        super(NbdRequest.class);
        this.mode = mode.requireSupported();
    }

    public NbdHeaderMode mode() {
        return mode;
    }

    @Override
    protected void encode(ChannelHandlerContext ctx, NbdRequest req, List<Object> out) {
        ByteBuf payload = req.payload();
        if ((req.length() >>> 32) != 0) {
            if (payload != null) {
                payload.release();
            }
            throw new EncoderException(req + ": length does not fit the 32-bit compact request header");
        }
        ByteBuf header = ctx.alloc().ioBuffer(COMPACT_HEADER_LENGTH);
        header.writeInt(NbdConstants.REQUEST_MAGIC);
        header.writeShort(req.flags());
        header.writeShort(req.command().code());
        header.writeLong(req.cookie());
        header.writeLong(req.offset());
        header.writeInt((int) req.length());
        out.add(header);
        if (payload != null) {
            out.add(payload);
        }
    }
}
