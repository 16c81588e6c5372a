package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.EncoderException;
import io.netty.handler.codec.MessageToMessageEncoder;

import java.util.List;

/**
 * Encodes {@link NbdRequest}s, the client's side of transmission; the counterpart of the server's
 * {@link ServerRequestDecoder}, which decodes the same type. The payload (WRITE data, a BLOCK_STATUS payload)
 * is passed on as its own message so it is never copied. Stateless and sharable.
 * <pre>
 * COMPACT   0x25609513(4) command-flags(2) type(2) cookie(8) offset(8) length(4) [WRITE payload]
 * EXTENDED  0x21e41c71(4) command-flags(2) type(2) cookie(8) offset(8) length(8) [payload iff PAYLOAD_LEN]
 * </pre>
 * In extended mode a request with a payload gets {@code NBD_CMD_FLAG_PAYLOAD_LEN} (its length is the payload's);
 * compact requests must not carry that flag, nor a length above 32 bits.
 */
@ChannelHandler.Sharable
public final class RequestEncoder extends MessageToMessageEncoder<NbdRequest> {
    public static final int COMPACT_HEADER_LENGTH = 28;
    public static final int EXTENDED_HEADER_LENGTH = 32;
    public static final RequestEncoder COMPACT = new RequestEncoder(NbdHeaderMode.COMPACT);
    public static final RequestEncoder EXTENDED = new RequestEncoder(NbdHeaderMode.EXTENDED);

    private final NbdHeaderMode mode;

    public RequestEncoder(NbdHeaderMode mode) {
        super(NbdRequest.class);
        this.mode = mode;
    }

    /** The shared encoder of {@code mode}. */
    public static RequestEncoder of(NbdHeaderMode mode) {
        return mode == NbdHeaderMode.EXTENDED ? EXTENDED : COMPACT;
    }

    public NbdHeaderMode mode() {
        return mode;
    }

    @Override
    protected void encode(ChannelHandlerContext ctx, NbdRequest req, List<Object> out) {
        ByteBuf payload = req.payload();
        int flags = req.flags();
        if (req.payloadSkipped()) {
            throw new EncoderException(req + ": a request whose payload was skipped on receipt cannot be sent");
        }
        if (mode == NbdHeaderMode.COMPACT && ((req.length() >>> 32) != 0
            || (flags & NbdConstants.CMD_FLAG_PAYLOAD_LEN) != 0)) {
            if (payload != null) {
                payload.release();
            }
            throw new EncoderException(req + ": a compact request header carries neither a length above 32 bits nor "
                + "NBD_CMD_FLAG_PAYLOAD_LEN");
        }
        ByteBuf header = ctx.alloc().ioBuffer(mode.requestHeaderLength());
        header.writeInt(mode == NbdHeaderMode.COMPACT ? NbdConstants.REQUEST_MAGIC
            : NbdConstants.EXTENDED_REQUEST_MAGIC);
        if (mode == NbdHeaderMode.EXTENDED && payload != null) {
            flags |= NbdConstants.CMD_FLAG_PAYLOAD_LEN;
        }
        header.writeShort(flags);
        header.writeShort(req.command().code());
        header.writeLong(req.cookie());
        header.writeLong(req.offset());
        if (mode == NbdHeaderMode.COMPACT) {
            header.writeInt((int) req.length());
        } else {
            header.writeLong(req.length());
        }
        out.add(header);
        if (payload != null) {
            out.add(payload);
        }
    }
}
