package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.ClientFlags;
import io.jbackup.nbd.protocol.ExportNameReply;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdInfoType;
import io.jbackup.nbd.protocol.NbdOption;
import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.jbackup.nbd.protocol.OptionReply;
import io.jbackup.nbd.protocol.OptionRequest;
import io.jbackup.nbd.protocol.OptionTooLong;
import io.jbackup.nbd.protocol.ServerGreeting;
import io.jbackup.nbd.protocol.ServerOptionDecoder;
import io.jbackup.nbd.protocol.ServerRequestDecoder;
import io.jbackup.nbd.server.OptionPayloads.BadOption;
import io.jbackup.nbd.tls.TlsHandshakeCompletion;
import io.jbackup.nbd.tls.TlsMode;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.ScheduledFuture;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server side of fixed-newstyle negotiation for one connection: greeting, client flags, then one option at a
 * time (the {@link ServerOptionDecoder} pauses after each until this handler resumes it). Provider calls run on the
 * server's blocking executor; reading from the socket is suspended meanwhile. On {@code NBD_OPT_GO} or
 * {@code NBD_OPT_EXPORT_NAME} it swaps itself and the option decoder for a {@link ServerRequestDecoder} and a
 * {@link TransmissionHandler}.
 *
 * <p>This class is the state machine and the reply to each option. Option data is decoded by
 * {@link OptionPayloads}; which meta contexts a query lists or selects is {@link MetaContexts}' job; provider calls
 * and the cached export are {@link ProviderCalls}'; the transmission flags and the switch of the pipeline are
 * {@link TransmissionSetup}'s.
 */
final class HandshakeHandler extends ChannelInboundHandlerAdapter {
    private static final Logger log = LoggerFactory.getLogger(HandshakeHandler.class);

    static final String NAME = "handshake";
    static final String OPTION_DECODER = "optionDecoder";
    static final String REQUEST_DECODER = "requestDecoder";
    static final String REPLY_ENCODER = "replyEncoder";
    static final String REQUEST_GUARD = "requestGuard";
    static final String TRANSMISSION = "transmission";

    private final ServerContext server;
    private final ServerOptionDecoder decoder;
    private ChannelHandlerContext ctx;
    private ScheduledFuture<?> timeout;
    private String peer = "?";

    private boolean noZeroes;
    private boolean tlsStarted;
    private boolean tlsActive;
    private boolean structured;
    /** NBD_OPT_EXTENDED_HEADERS was acknowledged: extended headers (and everything structured replies give). */
    private boolean extended;
    private String metaExport;
    private List<String> metaSelected = List.of();
    /** Set in {@link #handlerAdded}. */
    private ProviderCalls calls;
    private boolean finished;
    /** Replies back up (the client does not read them): reading is suspended until the channel is writable. */
    private boolean resumeWhenWritable;

    HandshakeHandler(ServerContext server, ServerOptionDecoder decoder) {
        this.server = server;
        this.decoder = decoder;
    }

    private boolean tlsRequired() {
        return server.config.tls().mode() == TlsMode.REQUIRE;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        this.ctx = ctx;
        this.calls = new ProviderCalls(server, ctx, () -> finished);
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        peer = String.valueOf(ctx.channel().remoteAddress());
        if (peer.isEmpty() || "null".equals(peer)) {
            peer = ctx.channel().id().asShortText();
        }
        long ms = server.config.handshakeTimeout().toMillis();
        timeout = ctx.executor().schedule(() -> {
            if (!finished) {
                log.info("{}: handshake not finished after {} ms, closing", peer, ms);
                finished = true;
                ctx.close();
            }
        }, ms, TimeUnit.MILLISECONDS);
        ctx.writeAndFlush(new ServerGreeting(NbdConstants.FLAG_FIXED_NEWSTYLE | NbdConstants.FLAG_NO_ZEROES));
        ctx.fireChannelActive();
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        cancelTimeout();
        calls.dropCached();
        finished = true;
        ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        log.info("{}: closing connection during handshake: {}", peer, cause.toString());
        log.debug("{}: handshake failure", peer, cause);
        finished = true;
        ctx.close();
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt instanceof TlsHandshakeCompletion c) {
            if (!c.success()) {
                log.info("{}: TLS handshake failed: {}", peer, c.cause() == null ? "?" : c.cause().getMessage());
                finished = true;
                ctx.close();
                return;
            }
            log.debug("{}: TLS up: {} {}", peer, c.protocol(), c.cipherSuite());
            tlsActive = true;
            // STARTTLS discards all prior negotiation state
            structured = false;
            extended = false;
            metaExport = null;
            metaSelected = List.of();
            calls.dropCached();
            resume();
        } else if (evt == NbdServer.SHUTDOWN_EVENT) {
            finished = true;
            ctx.close();
        } else {
            ctx.fireUserEventTriggered(evt);
        }
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (finished) {
            ReferenceCountUtil.release(msg);
            return;
        }
        if (msg instanceof ClientFlags f) {
            if (f.unknownBits() != 0) {
                log.info("{}: client sent unknown client flags 0x{}, closing", peer, Integer.toHexString(f.flags()));
                close();
                return;
            }
            noZeroes = f.noZeroes();
            if (!f.fixedNewstyle() && tlsRequired()) {
                log.info("{}: client does not support fixed newstyle, which TLS needs; closing", peer);
                close();
            }
        } else if (msg instanceof OptionRequest r) {
            try {
                handle(r.option().code(), Unpooled.wrappedBuffer(r.data()));
            } catch (RuntimeException e) {
                log.warn("{}: failed to handle option {}: {}", peer, r.option(), e.toString(), e);
                close();
            }
        } else if (msg instanceof OptionTooLong t) {
            if (t.option() == NbdOption.EXPORT_NAME.code()) {
                log.info("{}: NBD_OPT_EXPORT_NAME of {} bytes, closing", peer, t.length());
                close();
                return;
            }
            if (tlsRequired() && !tlsActive && t.option() != NbdOption.STARTTLS.code()
                && t.option() != NbdOption.ABORT.code()) {
                reply(OptionReply.error(t.option(), NbdOptionReplyType.ERR_TLS_REQD,
                    "TLS is required: negotiate NBD_OPT_STARTTLS first (option " + t.type() + ")"));
                return;
            }
            reply(OptionReply.error(t.option(), NbdOptionReplyType.ERR_TOO_BIG, "option " + t.type() + " has "
                + t.length() + " bytes of data; this server accepts at most " + server.config.maxOptionLength()));
        } else {
            ReferenceCountUtil.release(msg);
        }
    }

    private void handle(int opt, ByteBuf data) {
        NbdOption option = NbdOption.valueOf(opt);
        log.debug("{}: option {} with {} bytes", peer, option, data.readableBytes());
        if (server.shuttingDown() && opt != NbdOption.ABORT.code()) {
            reply(OptionReply.error(opt, NbdOptionReplyType.ERR_SHUTDOWN, "server is shutting down"));
            return;
        }
        if (tlsRequired() && !tlsActive && opt != NbdOption.STARTTLS.code() && opt != NbdOption.ABORT.code()) {
            if (opt == NbdOption.EXPORT_NAME.code()) {
                log.info("{}: NBD_OPT_EXPORT_NAME before TLS on a TLS-only server, closing", peer);
                close();
                return;
            }
            reply(OptionReply.error(opt, NbdOptionReplyType.ERR_TLS_REQD,
                "TLS is required: negotiate NBD_OPT_STARTTLS first (option " + option + ")"));
            return;
        }
        switch (opt) {
            case 1 -> exportName(data);
            case 2 -> abort();
            case 3 -> list(opt, data);
            case 5 -> startTls(opt, data);
            case 6, 7 -> infoOrGo(opt, data);
            case 8 -> structuredReply(opt, data);
            case 9, 10 -> metaContext(opt, data);
            case 11 -> extendedHeaders(opt, data);
            default -> reply(OptionReply.error(opt, NbdOptionReplyType.ERR_UNSUP,
                "option " + option + " is not supported by this server"));
        }
    }

    // ---- options -------------------------------------------------------------------------------------------

    private void exportName(ByteBuf data) {
        if (extended) {
            // its reply cannot say which headers follow; doc/proto.md: a client must not send it after this
            log.info("{}: NBD_OPT_EXPORT_NAME after NBD_OPT_EXTENDED_HEADERS, closing", peer);
            close();
            return;
        }
        String name;
        try {
            name = OptionPayloads.exportName(data);
        } catch (BadOption e) {
            log.info("{}: NBD_OPT_EXPORT_NAME: {}, closing", peer, e.getMessage());
            close();
            return;
        }
        withExport(name, (export, failure) -> {
            if (export == null) {
                log.info("{}: NBD_OPT_EXPORT_NAME '{}': {}; closing (no error reply is possible)", peer, name,
                    failure);
                close();
                return;
            }
            ctx.write(new ExportNameReply(export.size(), transmissionFlags(export), !noZeroes));
            startTransmission(name, export);
        });
    }

    private void abort() {
        finished = true;
        ctx.writeAndFlush(OptionReply.ack(NbdOption.ABORT.code())).addListener(ChannelFutureListener.CLOSE);
    }

    private void list(int opt, ByteBuf data) {
        if (data.isReadable()) {
            reply(OptionReply.error(opt, NbdOptionReplyType.ERR_INVALID, "NBD_OPT_LIST takes no data"));
            return;
        }
        calls.async(server.provider::list, (listing, failure) -> {
            if (failure != null) {
                log.warn("{}: listing exports failed: {}", peer, failure.toString(), failure);
                reply(OptionReply.error(opt, NbdOptionReplyType.ERR_UNKNOWN, "cannot list exports: " + message(failure)));
                return;
            }
            for (ExportListing e : listing) {
                ctx.write(OptionReply.server(opt, e.name(), e.description()));
            }
            reply(OptionReply.ack(opt));
        });
    }

    private void startTls(int opt, ByteBuf data) {
        if (data.isReadable()) {
            reply(OptionReply.error(opt, NbdOptionReplyType.ERR_INVALID, "NBD_OPT_STARTTLS takes no data"));
            return;
        }
        if (tlsStarted) {
            reply(OptionReply.error(opt, NbdOptionReplyType.ERR_INVALID, "TLS is already active"));
            return;
        }
        if (server.tlsHandlerFactory == null) {
            reply(OptionReply.error(opt, NbdOptionReplyType.ERR_POLICY, "TLS is not enabled on this server"));
            return;
        }
        if (decoder.bufferedBytes() > 0) {
            log.info("{}: client sent data after NBD_OPT_STARTTLS before the reply, closing", peer);
            close();
            return;
        }
        tlsStarted = true;
        ctx.writeAndFlush(OptionReply.ack(opt));
        ctx.pipeline().addFirst(io.jbackup.nbd.tls.NbdTls.HANDLER_NAME, server.tlsHandlerFactory.apply(ctx.alloc()));
        // the decoder stays paused until TlsHandshakeCompletion
    }

    private void structuredReply(int opt, ByteBuf data) {
        if (data.isReadable()) {
            reply(OptionReply.error(opt, NbdOptionReplyType.ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data"));
            return;
        }
        structured = true;
        reply(OptionReply.ack(opt));
    }

    /**
     * {@code NBD_OPT_EXTENDED_HEADERS}: 32-byte requests and replies with 64-bit lengths from GO on; block status
     * then comes as {@code BLOCK_STATUS_EXT} and may carry a payload ({@code NBD_FLAG_BLOCK_STATUS_PAYLOAD}).
     */
    private void extendedHeaders(int opt, ByteBuf data) {
        if (data.isReadable()) {
            reply(OptionReply.error(opt, NbdOptionReplyType.ERR_INVALID, "NBD_OPT_EXTENDED_HEADERS takes no data"));
            return;
        }
        extended = true;
        reply(OptionReply.ack(opt));
    }

    private void infoOrGo(int opt, ByteBuf data) {
        boolean go = opt == NbdOption.GO.code();
        OptionPayloads.InfoRequest request;
        try {
            request = OptionPayloads.info(data);
        } catch (BadOption e) {
            reply(OptionReply.error(opt, NbdOptionReplyType.ERR_INVALID, NbdOption.valueOf(opt) + ": " + e.getMessage()));
            return;
        }
        String name = request.name();
        Set<Integer> requested = request.requested();
        withExport(name, (export, failure) -> {
            if (export == null) {
                reply(OptionReply.error(opt, NbdOptionReplyType.ERR_UNKNOWN, failure));
                return;
            }
            ctx.write(OptionReply.infoExport(opt, export.size(), transmissionFlags(export)));
            if (requested.contains(NbdInfoType.NAME.code())) {
                ctx.write(OptionReply.infoString(opt, NbdInfoType.NAME, export.name()));
            }
            if (requested.contains(NbdInfoType.DESCRIPTION.code()) && !export.description().isEmpty()) {
                ctx.write(OptionReply.infoString(opt, NbdInfoType.DESCRIPTION, export.description()));
            }
            ctx.write(OptionReply.infoBlockSize(opt, export.minBlockSize(), export.preferredBlockSize(),
                TransmissionSetup.maxPayload(server, export)));
            if (go) {
                ctx.write(OptionReply.ack(opt));
                startTransmission(name, export);
            } else {
                reply(OptionReply.ack(opt));
            }
        });
    }

    private void metaContext(int opt, ByteBuf data) {
        boolean set = opt == NbdOption.SET_META_CONTEXT.code();
        if (set) {
            // SET replaces the previous selection, also when it fails
            metaExport = null;
            metaSelected = List.of();
        }
        if (!structured && !extended) {
            reply(OptionReply.error(opt, NbdOptionReplyType.ERR_INVALID,
                NbdOption.valueOf(opt) + " needs NBD_OPT_STRUCTURED_REPLY or NBD_OPT_EXTENDED_HEADERS first"));
            return;
        }
        OptionPayloads.MetaContextRequest request;
        try {
            request = OptionPayloads.metaContext(data);
        } catch (BadOption e) {
            reply(OptionReply.error(opt, NbdOptionReplyType.ERR_INVALID, NbdOption.valueOf(opt) + ": " + e.getMessage()));
            return;
        }
        String exportName = request.exportName();
        withExport(exportName, (export, failure) -> {
            if (export == null) {
                reply(OptionReply.error(opt, NbdOptionReplyType.ERR_UNKNOWN, failure));
                return;
            }
            List<String> result = MetaContexts.select(MetaContexts.of(export), request.queries(), set);
            for (int i = 0; i < result.size(); i++) {
                ctx.write(OptionReply.metaContext(opt, set ? i : 0, result.get(i)));
            }
            if (set) {
                metaExport = exportName;
                metaSelected = List.copyOf(result);
            }
            reply(OptionReply.ack(opt));
        });
    }

    // ---- transmission --------------------------------------------------------------------------------------

    private void startTransmission(String requestedName, NbdExport export) {
        finished = true;
        cancelTimeout();
        calls.handOver(export);
        calls.dropCached();
        boolean chunks = structured || extended;
        List<TransmissionHandler.Context> contexts = chunks && requestedName.equals(metaExport)
            ? MetaContexts.forTransmission(export, metaSelected) : List.of();
        log.info("{}: serving export '{}' ({} bytes, {}{}{})", peer, export.name(), export.size(),
            export.readOnly() ? "read-only" : "writable", extended ? ", extended headers"
                : structured ? ", structured replies" : "", tlsActive ? ", TLS" : "");
        setup().switchPipeline(ctx, server, export, peer, contexts);
    }

    /** What negotiation agreed on so far. */
    private TransmissionSetup setup() {
        return new TransmissionSetup(structured, extended, !metaSelected.isEmpty());
    }

    private int transmissionFlags(NbdExport e) {
        return setup().transmissionFlags(e);
    }

    // ---- helpers -------------------------------------------------------------------------------------------

    /** Writes and flushes a final option reply, then lets the decoder deliver the next option. */
    private void reply(OptionReply r) {
        ctx.writeAndFlush(r);
        resume();
    }

    /**
     * Lets the decoder deliver the next option, unless the client is not reading its replies (the channel is not
     * writable): then reading stops until the replies drain, so a client that pipelines options without reading
     * cannot make the server queue replies without bound.
     */
    private void resume() {
        if (finished || !ctx.channel().isActive()) {
            return;
        }
        if (!ctx.channel().isWritable()) {
            resumeWhenWritable = true;
            ctx.channel().config().setAutoRead(false);
            return;
        }
        decoder.resume();
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        if (resumeWhenWritable && ctx.channel().isWritable()) {
            resumeWhenWritable = false;
            ctx.channel().config().setAutoRead(true);
            resume();
        }
        ctx.fireChannelWritabilityChanged();
    }

    private void close() {
        finished = true;
        ctx.close();
    }

    private void cancelTimeout() {
        if (timeout != null) {
            timeout.cancel(false);
            timeout = null;
        }
    }

    /**
     * Calls {@code then} on the event loop with the opened export (kept cached for later options), or with null
     * and a message for the client.
     */
    private void withExport(String name, BiConsumer<NbdExport, String> then) {
        calls.open(name, (export, failure) -> {
            if (failure != null) {
                if (failure instanceof java.io.IOException || failure instanceof IllegalArgumentException) {
                    // a condition the message explains (an overlay another serve holds, a damaged index): no stack
                    // trace on the console, only with -vv
                    log.warn("{}: opening export '{}' failed: {}", peer, name, message(failure));
                    log.debug("{}: opening export '{}' failed", peer, name, failure);
                } else {
                    log.warn("{}: opening export '{}' failed: {}", peer, name, failure.toString(), failure);
                }
                then.accept(null, "cannot open export '" + name + "': " + message(failure));
            } else if (export == null) {
                then.accept(null, "no export named '" + name + "'");
            } else {
                then.accept(export, null);
            }
        });
    }

    private static String message(Throwable t) {
        return t.getMessage() != null ? t.getMessage() : t.getClass().getSimpleName();
    }
}
