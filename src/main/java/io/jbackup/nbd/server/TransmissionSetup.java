package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdHeaderMode;
import io.jbackup.nbd.protocol.RequestOffsets;
import io.jbackup.nbd.protocol.ServerReplyEncoder;
import io.jbackup.nbd.protocol.ServerRequestDecoder;
import io.netty.channel.ChannelHandlerContext;
import java.util.List;

/**
 * What option negotiation agreed on for one connection, and what follows from it for an export: the transmission
 * flags it is announced with, its payload limit, and the switch of the connection's pipeline from negotiation to
 * transmission. The switch replaces the {@link HandshakeHandler} with a {@link TransmissionHandler}, adds a
 * {@link ServerRequestDecoder} behind the option decoder with a {@link StalledRequestGuard} before it, swaps the
 * reply encoder for one with extended headers if they were negotiated, and then removes the option decoder (which
 * hands any bytes it still buffers to the request decoder).
 *
 * @param structured   {@code NBD_OPT_STRUCTURED_REPLY} was acknowledged
 * @param extended     {@code NBD_OPT_EXTENDED_HEADERS} was acknowledged
 * @param metaContexts {@code NBD_OPT_SET_META_CONTEXT} selected at least one context
 */
record TransmissionSetup(boolean structured, boolean extended, boolean metaContexts) {

    int transmissionFlags(NbdExport e) {
        int f = NbdConstants.TFLAG_HAS_FLAGS | NbdConstants.TFLAG_SEND_FLUSH | NbdConstants.TFLAG_SEND_FUA
            | NbdConstants.TFLAG_SEND_CACHE;
        if (e.readOnly()) {
            f |= NbdConstants.TFLAG_READ_ONLY;
        } else {
            f |= NbdConstants.TFLAG_SEND_TRIM | NbdConstants.TFLAG_SEND_WRITE_ZEROES;
        }
        if (structured || extended) {
            f |= NbdConstants.TFLAG_SEND_DF;
        }
        if (extended && metaContexts) {
            // doc/proto.md: not without meta contexts (as qemu-nbd 10)
            f |= NbdConstants.TFLAG_BLOCK_STATUS_PAYLOAD;
        }
        if (e.canMultiConn()) {
            f |= NbdConstants.TFLAG_CAN_MULTI_CONN;
        }
        return f;
    }

    /** The largest READ/WRITE payload announced for {@code e}: its own limit or the server's, whichever is less. */
    static int maxPayload(ServerContext server, NbdExport e) {
        return Math.min(e.maxPayload(), server.config.maxPayload());
    }

    /** Switches the pipeline of {@code ctx} (the handshake handler's context) to serving {@code export}. */
    void switchPipeline(ChannelHandlerContext ctx, ServerContext server, NbdExport export, String peer,
                        List<TransmissionHandler.Context> contexts) {
        boolean chunks = structured || extended;
        int maxPayload = maxPayload(server, export);
        TransmissionHandler th = new TransmissionHandler(server, export, peer, chunks, extended, contexts,
            transmissionFlags(export), maxPayload);
        ctx.flush();
        var pipeline = ctx.pipeline();
        pipeline.replace(ctx.handler(), HandshakeHandler.TRANSMISSION, th);
        NbdHeaderMode mode = extended ? NbdHeaderMode.EXTENDED : NbdHeaderMode.COMPACT;
        RequestOffsets offsets = extended ? new RequestOffsets() : null;
        if (extended) {
            pipeline.replace(HandshakeHandler.REPLY_ENCODER, HandshakeHandler.REPLY_ENCODER,
                new ServerReplyEncoder(mode, offsets));
        }
        ServerRequestDecoder decoder = new ServerRequestDecoder(mode, maxPayload, export.readOnly(), offsets);
        pipeline.addAfter(HandshakeHandler.OPTION_DECODER, HandshakeHandler.REQUEST_DECODER, decoder);
        pipeline.addBefore(HandshakeHandler.REQUEST_DECODER, HandshakeHandler.REQUEST_GUARD,
            new StalledRequestGuard(decoder, server.config.requestTimeout(), peer));
        // removing the option decoder hands any bytes it still buffers to the request decoder
        pipeline.remove(HandshakeHandler.OPTION_DECODER);
        ctx.channel().config().setAutoRead(true);
    }
}
