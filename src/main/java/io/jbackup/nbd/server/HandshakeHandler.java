package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.ClientFlags;
import io.jbackup.nbd.protocol.ExportNameReply;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdHeaderMode;
import io.jbackup.nbd.protocol.NbdInfoType;
import io.jbackup.nbd.protocol.NbdOption;
import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.jbackup.nbd.protocol.OptionReply;
import io.jbackup.nbd.protocol.OptionRequest;
import io.jbackup.nbd.protocol.OptionTooLong;
import io.jbackup.nbd.protocol.RequestOffsets;
import io.jbackup.nbd.protocol.ServerGreeting;
import io.jbackup.nbd.protocol.ServerOptionDecoder;
import io.jbackup.nbd.protocol.ServerReplyEncoder;
import io.jbackup.nbd.protocol.ServerRequestDecoder;
import io.jbackup.nbd.tls.TlsHandshakeCompletion;
import io.jbackup.nbd.tls.TlsMode;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.ScheduledFuture;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
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
 * <p>Meta context queries: {@code LIST} with no query returns every context of the export; a query ending in
 * {@code :} (for example {@code base:}, {@code qemu:} or {@code qemu:dirty-bitmap:}) is a prefix wildcard in
 * {@code LIST}; anything else must match a context name exactly. {@code SET} selects exact matches only; other
 * queries are ignored. Context ids are the positions in the {@code SET} reply (0, 1, ...).
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
    private NbdExport cached;
    private String cachedName;
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
        dropCached();
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
            dropCached();
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
            name = readString(data, data.readableBytes(), "export name");
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
        async(server.provider::list, (listing, failure) -> {
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
        String name;
        Set<Integer> requested = new LinkedHashSet<>();
        try {
            if (data.readableBytes() < 6) {
                throw new BadOption("option data of " + data.readableBytes() + " bytes (expected: >= 6)");
            }
            long nameLen = data.readUnsignedInt();
            if (nameLen > data.readableBytes() - 2) {
                throw new BadOption("export name length " + nameLen + " exceeds the option data");
            }
            name = readString(data, (int) nameLen, "export name");
            int count = data.readUnsignedShort();
            if (data.readableBytes() != 2 * count) {
                throw new BadOption(count + " information requests need " + 2 * count + " bytes, "
                    + data.readableBytes() + " present");
            }
            for (int i = 0; i < count; i++) {
                requested.add(data.readUnsignedShort());
            }
        } catch (BadOption e) {
            reply(OptionReply.error(opt, NbdOptionReplyType.ERR_INVALID, NbdOption.valueOf(opt) + ": " + e.getMessage()));
            return;
        }
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
                maxPayload(export)));
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
        String exportName;
        List<String> queries = new ArrayList<>();
        try {
            if (data.readableBytes() < 8) {
                throw new BadOption("option data of " + data.readableBytes() + " bytes (expected: >= 8)");
            }
            long nameLen = data.readUnsignedInt();
            if (nameLen > data.readableBytes() - 4) {
                throw new BadOption("export name length " + nameLen + " exceeds the option data");
            }
            exportName = readString(data, (int) nameLen, "export name");
            long count = data.readUnsignedInt();
            for (long i = 0; i < count; i++) {
                if (data.readableBytes() < 4) {
                    throw new BadOption("query " + i + " of " + count + " is missing");
                }
                long qlen = data.readUnsignedInt();
                if (qlen > data.readableBytes()) {
                    throw new BadOption("query length " + qlen + " exceeds the option data");
                }
                queries.add(readString(data, (int) qlen, "query"));
            }
            if (data.isReadable()) {
                throw new BadOption(data.readableBytes() + " bytes after the last query");
            }
        } catch (BadOption e) {
            reply(OptionReply.error(opt, NbdOptionReplyType.ERR_INVALID, NbdOption.valueOf(opt) + ": " + e.getMessage()));
            return;
        }
        withExport(exportName, (export, failure) -> {
            if (export == null) {
                reply(OptionReply.error(opt, NbdOptionReplyType.ERR_UNKNOWN, failure));
                return;
            }
            Map<String, ExtentSource> available = contextsOf(export);
            List<String> result = new ArrayList<>();
            if (!set && queries.isEmpty()) {
                result.addAll(available.keySet());
            }
            for (String q : queries) {
                if (!set && q.endsWith(":")) {
                    for (String name : available.keySet()) {
                        if (name.startsWith(q) && !result.contains(name)) {
                            result.add(name);
                        }
                    }
                } else if (available.containsKey(q) && !result.contains(q)) {
                    result.add(q);
                }
            }
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
        if (export == cached) {
            cached = null;
            cachedName = null;
        }
        dropCached();
        List<TransmissionHandler.Context> contexts = new ArrayList<>();
        boolean chunks = structured || extended;
        if (chunks && requestedName.equals(metaExport)) {
            Map<String, ExtentSource> available = contextsOf(export);
            for (int i = 0; i < metaSelected.size(); i++) {
                ExtentSource src = available.get(metaSelected.get(i));
                if (src != null) {
                    contexts.add(new TransmissionHandler.Context(i, metaSelected.get(i), src));
                }
            }
        }
        log.info("{}: serving export '{}' ({} bytes, {}{}{})", peer, export.name(), export.size(),
            export.readOnly() ? "read-only" : "writable", extended ? ", extended headers"
                : structured ? ", structured replies" : "", tlsActive ? ", TLS" : "");
        TransmissionHandler th = new TransmissionHandler(server, export, peer, chunks, extended, contexts,
            transmissionFlags(export), maxPayload(export));
        ctx.flush();
        var pipeline = ctx.pipeline();
        pipeline.replace(this, TRANSMISSION, th);
        NbdHeaderMode mode = extended ? NbdHeaderMode.EXTENDED : NbdHeaderMode.COMPACT;
        RequestOffsets offsets = extended ? new RequestOffsets() : null;
        if (extended) {
            pipeline.replace(REPLY_ENCODER, REPLY_ENCODER, new ServerReplyEncoder(mode, offsets));
        }
        ServerRequestDecoder decoder = new ServerRequestDecoder(mode, maxPayload(export), export.readOnly(), offsets);
        pipeline.addAfter(OPTION_DECODER, REQUEST_DECODER, decoder);
        pipeline.addBefore(REQUEST_DECODER, REQUEST_GUARD, new StalledRequestGuard(decoder,
            server.config.requestTimeout(), peer));
        // removing the option decoder hands any bytes it still buffers to the request decoder
        pipeline.remove(OPTION_DECODER);
        ctx.channel().config().setAutoRead(true);
    }

    private int transmissionFlags(NbdExport e) {
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
        if (extended && !metaSelected.isEmpty()) {
            // doc/proto.md: not without meta contexts (as qemu-nbd 10)
            f |= NbdConstants.TFLAG_BLOCK_STATUS_PAYLOAD;
        }
        if (e.canMultiConn()) {
            f |= NbdConstants.TFLAG_CAN_MULTI_CONN;
        }
        return f;
    }

    private int maxPayload(NbdExport e) {
        return Math.min(e.maxPayload(), server.config.maxPayload());
    }

    private static Map<String, ExtentSource> contextsOf(NbdExport export) {
        Map<String, ExtentSource> m = new LinkedHashMap<>();
        m.put(NbdConstants.CONTEXT_BASE_ALLOCATION, export::allocation);
        for (Map.Entry<String, ExtentSource> e : export.metaContexts().entrySet()) {
            String name = e.getKey();
            int colon = name.indexOf(':');
            if (colon > 0 && colon < name.length() - 1 && e.getValue() != null) {
                m.putIfAbsent(name, e.getValue());
            }
        }
        return m;
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

    private void dropCached() {
        if (cached != null) {
            server.closeExport(cached);
            cached = null;
            cachedName = null;
        }
    }

    /**
     * Calls {@code then} on the event loop with the opened export (kept cached for later options), or with null
     * and a message for the client.
     */
    private void withExport(String name, BiConsumer<NbdExport, String> then) {
        if (cached != null && name.equals(cachedName)) {
            then.accept(cached, null);
            return;
        }
        dropCached();
        async(() -> {
            NbdExport e = server.provider.open(name);
            if (e != null) {
                try {
                    ServerContext.checkExport(e);
                } catch (IllegalStateException bad) {
                    server.closeExport(e);
                    throw bad;
                }
            }
            return e;
        }, (export, failure) -> {
            if (failure != null) {
                log.warn("{}: opening export '{}' failed: {}", peer, name, failure.toString(), failure);
                then.accept(null, "cannot open export '" + name + "': " + message(failure));
            } else if (export == null) {
                then.accept(null, "no export named '" + name + "'");
            } else {
                cached = export;
                cachedName = name;
                then.accept(export, null);
            }
        });
    }

    /**
     * Runs {@code task} on the blocking executor with reading suspended, then {@code then} on the event loop
     * (skipped, and an export result closed, if the connection went away meanwhile).
     */
    private <T> void async(Callable<T> task, BiConsumer<T, Throwable> then) {
        ctx.channel().config().setAutoRead(false);
        CompletableFuture<T> f;
        try {
            f = CompletableFuture.supplyAsync(() -> {
                try {
                    return task.call();
                } catch (Exception e) {
                    throw new CompletionException(e);
                }
            }, server.blocking);
        } catch (RuntimeException rejected) {
            f = CompletableFuture.failedFuture(rejected);
        }
        f.whenComplete((value, failure) -> {
            Throwable cause = failure instanceof CompletionException && failure.getCause() != null
                ? failure.getCause() : failure;
            Runnable r = () -> {
                if (finished || !ctx.channel().isActive()) {
                    if (value instanceof NbdExport e) {
                        server.closeExport(e);
                    }
                    return;
                }
                ctx.channel().config().setAutoRead(true);
                then.accept(value, cause);
            };
            try {
                ctx.executor().execute(r);
            } catch (RuntimeException rejected) {
                if (value instanceof NbdExport e) {
                    server.closeExport(e);
                }
            }
        });
    }

    private static String message(Throwable t) {
        return t.getMessage() != null ? t.getMessage() : t.getClass().getSimpleName();
    }

    /** Reads a UTF-8 protocol string of {@code len} bytes: at most 4096 bytes, valid UTF-8, no NUL. */
    private static String readString(ByteBuf data, int len, String what) throws BadOption {
        if (len > NbdConstants.MAX_STRING_LENGTH) {
            throw new BadOption(what + " of " + len + " bytes (expected: <= " + NbdConstants.MAX_STRING_LENGTH + ")");
        }
        ByteBuffer b = data.nioBuffer(data.readerIndex(), len);
        data.skipBytes(len);
        try {
            String s = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT).decode(b).toString();
            if (s.indexOf('\0') >= 0) {
                throw new BadOption(what + " contains a NUL character");
            }
            return s;
        } catch (CharacterCodingException e) {
            throw new BadOption(what + " is not valid UTF-8");
        }
    }

    /** A syntactically invalid option (answered with ERR_INVALID). */
    private static final class BadOption extends Exception {
        private static final long serialVersionUID = 1L;

        BadOption(String message) {
            super(message, null, false, false);
        }
    }
}
