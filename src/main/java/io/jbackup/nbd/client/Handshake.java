package io.jbackup.nbd.client;

import io.jbackup.error.UsageException;
import io.jbackup.nbd.protocol.ClientFlags;
import io.jbackup.nbd.protocol.ExportNameReply;
import io.jbackup.nbd.protocol.HandshakeDecoder;
import io.jbackup.nbd.protocol.HandshakeEncoder;
import io.jbackup.nbd.protocol.NbdConnectionClosedException;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdHeaderMode;
import io.jbackup.nbd.protocol.NbdInfoType;
import io.jbackup.nbd.protocol.NbdOption;
import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.jbackup.nbd.protocol.NbdProtocolException;
import io.jbackup.nbd.protocol.OptionReply;
import io.jbackup.nbd.protocol.OptionRequest;
import io.jbackup.nbd.protocol.ReplyDecoder;
import io.jbackup.nbd.protocol.RequestEncoder;
import io.jbackup.nbd.protocol.ServerGreeting;
import io.jbackup.nbd.tls.NbdTls;
import io.jbackup.nbd.tls.NbdTlsException;
import io.jbackup.nbd.tls.TlsConfig;
import io.jbackup.nbd.tls.TlsHandshakeCompletion;
import io.jbackup.nbd.tls.TlsMode;
import io.netty.channel.ChannelHandler;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.handler.codec.DecoderException;
import io.netty.util.ReferenceCountUtil;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Drives the handshake of one connection from the calling thread: greeting, client flags, STARTTLS, then the options
 * each operation needs. The channel's handlers only decode and queue what arrives; this class sends one option at a
 * time and waits for its final reply, all within one deadline ({@link ClientOptions#handshakeTimeout()}).
 */
final class Handshake implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Handshake.class);
    /** Bound on the replies to one option (exports listed, contexts listed). */
    static final int MAX_REPLIES_PER_OPTION = 100_000;
    static final List<NbdInfoType> INFO_REQUESTS = List.of(NbdInfoType.BLOCK_SIZE, NbdInfoType.NAME,
        NbdInfoType.DESCRIPTION);

    private static final Object CLOSED = new Object();

    private record Failure(Throwable cause) {
    }

    /**
     * Queues decoded messages, TLS handshake events and failures for the handshake thread. When armed with a TLS
     * handler, it installs it in front of the pipeline on the event loop the moment the STARTTLS ACK is decoded.
     */
    private static final class Events extends ChannelInboundHandlerAdapter {
        final LinkedBlockingQueue<Object> queue = new LinkedBlockingQueue<>();
        volatile java.util.function.Supplier<ChannelHandler> tlsOnAck;

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            java.util.function.Supplier<ChannelHandler> tls = tlsOnAck;
            if (tls != null && msg instanceof OptionReply.Ack a && a.option().equals(NbdOption.STARTTLS)) {
                tlsOnAck = null;
                try {
                    ctx.pipeline().addFirst(NbdTls.HANDLER_NAME, tls.get());
                } catch (RuntimeException e) {
                    queue.add(new Failure(e));
                    ctx.close();
                    return;
                }
            }
            queue.add(msg);
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
            if (evt instanceof TlsHandshakeCompletion) {
                queue.add(evt);
            } else {
                ctx.fireUserEventTriggered(evt);
            }
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            queue.add(new Failure(cause instanceof DecoderException && cause.getCause() != null
                ? cause.getCause() : cause));
            ctx.close();
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            queue.add(CLOSED);
        }
    }

    /**
     * The outcome of a successful negotiation, ready for transmission.
     *
     * @param structured     reply chunks are allowed: structured replies or extended headers
     * @param mode           the header mode: {@link NbdHeaderMode#EXTENDED} when extended headers were acknowledged
     * @param offeredBitmaps when a {@code qemu:dirty-bitmap:} context was asked for and not granted, the bitmap
     *                       names the export offers (listed on this connection); otherwise empty
     */
    record Negotiated(ExportInfo info, boolean structured, NbdHeaderMode mode, Map<Integer, String> contexts,
                      List<String> offeredBitmaps) {
    }

    final NbdUri uri;
    final ClientOptions opts;
    final Channel channel;
    private final HandshakeDecoder decoder;
    private final Events events;
    private final long deadline;
    private ServerGreeting greeting;
    private ClientFlags clientFlags;
    private boolean tls;

    private Handshake(NbdUri uri, ClientOptions opts, Channel channel, HandshakeDecoder decoder, Events events) {
        this.uri = uri;
        this.opts = opts;
        this.channel = channel;
        this.decoder = decoder;
        this.events = events;
        this.deadline = System.nanoTime() + opts.handshakeTimeout().toNanos();
    }

    /** Connects, reads the greeting, sends the client flags and negotiates TLS as configured. */
    static Handshake start(NbdUri uri, ClientOptions opts) throws IOException {
        TlsConfig tlsConfig = effectiveTls(uri, opts);
        // load and check the credentials before touching the network
        NbdTls.ClientTls creds = tlsConfig.enabled() ? NbdTls.client(tlsConfig) : null;
        HandshakeDecoder decoder = new HandshakeDecoder();
        Events events = new Events();
        Channel ch = Transports.connect(uri, opts.connectTimeout(), new ChannelInitializer<>() {
            @Override
            protected void initChannel(Channel c) {
                c.pipeline().addLast("handshake-encoder", HandshakeEncoder.INSTANCE)
                    .addLast("handshake-decoder", decoder)
                    .addLast("handshake-events", events);
            }
        });
        Handshake h = new Handshake(uri, opts, ch, decoder, events);
        try {
            h.greet();
            h.startTls(tlsConfig, creds);
            return h;
        } catch (IOException | RuntimeException e) {
            if (e instanceof NbdHandshakeException) {
                h.abort(); // the server refused something: soft disconnect
            } else {
                h.close();
            }
            throw e;
        }
    }

    boolean fixedNewstyle() {
        return greeting.fixedNewstyle();
    }

    boolean tlsActive() {
        return tls;
    }

    // ---- low level ----

    private Object next(String waitingFor) throws IOException {
        long left = deadline - System.nanoTime();
        Object o;
        try {
            o = left <= 0 ? events.queue.poll() : events.queue.poll(left, TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for " + waitingFor + " from " + uri);
        }
        if (o == null) {
            throw new NbdTimeoutException("NBD handshake with " + uri + " timed out after "
                + opts.handshakeTimeout().toMillis() + " ms while waiting for " + waitingFor);
        }
        if (o instanceof Failure f) {
            Throwable c = f.cause();
            if (c instanceof IOException io) {
                throw io;
            }
            throw new NbdProtocolException("NBD handshake with " + uri + " failed while waiting for " + waitingFor
                + ": " + c, c);
        }
        if (o == CLOSED) {
            throw new NbdConnectionClosedException("server " + uri + " closed the connection while jbackup waited for "
                + waitingFor);
        }
        return o;
    }

    private void send(Object msg) {
        channel.writeAndFlush(msg).addListener(ChannelFutureListener.FIRE_EXCEPTION_ON_FAILURE);
    }

    /** Sends one option and collects its replies up to the final ACK or error. */
    List<OptionReply> option(OptionRequest req) throws IOException {
        send(req);
        List<OptionReply> replies = new ArrayList<>();
        while (true) {
            Object o = next("the reply to NBD_OPT_" + req.option().name());
            if (!(o instanceof OptionReply r)) {
                ReferenceCountUtil.release(o);
                throw new NbdProtocolException("unexpected " + o.getClass().getSimpleName() + " from " + uri
                    + " while waiting for the reply to NBD_OPT_" + req.option().name());
            }
            if (!r.option().equals(req.option())) {
                throw new NbdProtocolException("server " + uri + " answered option " + r.option() + " but the client "
                    + "sent " + req.option());
            }
            if (r instanceof OptionReply.Unknown u) {
                throw new NbdProtocolException("server " + uri + " sent unknown reply type " + u.type() + " to "
                    + req.option());
            }
            replies.add(r);
            if (r.isFinal()) {
                return replies;
            }
            if (replies.size() > MAX_REPLIES_PER_OPTION) {
                throw new NbdProtocolException("server " + uri + " sent more than " + MAX_REPLIES_PER_OPTION
                    + " replies to " + req.option());
            }
        }
    }

    static OptionReply last(List<OptionReply> replies) {
        return replies.get(replies.size() - 1);
    }

    private void greet() throws IOException {
        Object o = next("the server greeting");
        if (!(o instanceof ServerGreeting g)) {
            throw new NbdProtocolException("expected the server greeting from " + uri + ", got " + o);
        }
        greeting = g;
        clientFlags = ClientFlags.answering(g);
        send(clientFlags);
        LOG.debug("{}: greeting flags 0x{}", uri, Integer.toHexString(g.handshakeFlags()));
    }

    /** The TLS configuration in effect: an {@code nbds} URI always requires TLS. */
    static TlsConfig effectiveTls(NbdUri uri, ClientOptions opts) {
        TlsConfig cfg = opts.tls();
        if (uri.tls()) {
            if (!cfg.enabled()) {
                throw new UsageException(uri.scheme() + ":// requires TLS credentials: give --tls-creds DIR "
                    + "(X.509) or --tls-psk-file FILE (PSK)");
            }
            return cfg.withMode(TlsMode.REQUIRE);
        }
        return cfg;
    }

    private void startTls(TlsConfig cfg, NbdTls.ClientTls creds) throws IOException {
        if (!cfg.enabled()) {
            return;
        }
        boolean require = cfg.mode() == TlsMode.REQUIRE;
        if (!greeting.fixedNewstyle()) {
            if (require) {
                throw new NbdHandshakeException("server " + uri + " does not support fixed newstyle negotiation, so it "
                    + "cannot do TLS; TLS is required (--tls=require or nbds://), so jbackup will not continue in "
                    + "plaintext", null);
            }
            LOG.warn("{}: server cannot negotiate TLS (no fixed newstyle); continuing in plaintext (--tls=prefer)",
                uri);
            return;
        }
        String host = uri.isUnix() ? null : uri.host();
        int port = uri.isUnix() ? -1 : uri.port();
        events.tlsOnAck = () -> creds.newHandler(channel.alloc(), host, port);
        List<OptionReply> r = option(OptionRequest.startTls());
        events.tlsOnAck = null;
        OptionReply fin = last(r);
        if (fin instanceof OptionReply.Error e) {
            if (require) {
                throw new NbdHandshakeException("server " + uri + " refused NBD_OPT_STARTTLS (" + e.describe() + "): it "
                    + "does not offer TLS; TLS is required (--tls=require or nbds://), so jbackup will not fall back "
                    + "to plaintext", e.type());
            }
            LOG.warn("{}: server refused STARTTLS ({}); continuing in plaintext (--tls=prefer)", uri, e.describe());
            return;
        }
        Object o = next("the TLS handshake (" + creds.description() + ")");
        if (!(o instanceof TlsHandshakeCompletion c)) {
            throw new NbdProtocolException("server " + uri + " sent " + o + " when the TLS handshake was expected");
        }
        if (!c.success()) {
            Throwable cause = c.cause();
            throw cause instanceof NbdTlsException t ? t
                : new NbdTlsException("TLS handshake with " + uri + " failed: " + cause, cause);
        }
        tls = true;
        LOG.debug("{}: TLS established: {} {} ({})", uri, c.protocol(), c.cipherSuite(), creds.description());
    }

    private NbdHandshakeException refused(OptionReply.Error e, String what) {
        String hint = "";
        if (e.type().equals(NbdOptionReplyType.ERR_TLS_REQD)) {
            hint = "; the server requires TLS: use an nbds:// URI or --tls with --tls-creds DIR or --tls-psk-file FILE";
        } else if (e.type().equals(NbdOptionReplyType.ERR_UNKNOWN)) {
            hint = "; check the export name (list exports with: jbackup inspect --list URI)";
        }
        return new NbdHandshakeException("server " + uri + " refused " + what + " (" + e.describe() + ")" + hint,
            e.type());
    }

    // ---- negotiation for a transmission connection ----

    /**
     * Extended headers (else structured replies, else neither), meta contexts, then GO (or EXPORT_NAME for servers
     * without GO, never after extended headers). Runs after STARTTLS, so TLS connections negotiate it afresh.
     */
    Negotiated negotiate(List<String> metaContexts) throws IOException {
        boolean structured = false;
        NbdHeaderMode mode = NbdHeaderMode.COMPACT;
        Map<Integer, String> contexts = new LinkedHashMap<>();
        List<String> offered = List.of();
        if (greeting.fixedNewstyle()) {
            if (opts.extendedHeaders() && negotiateExtendedHeaders()) {
                mode = NbdHeaderMode.EXTENDED;
                structured = true;
            } else {
                structured = negotiateStructuredReplies();
            }
            if (structured && !metaContexts.isEmpty()) {
                List<OptionReply> r = option(OptionRequest.setMetaContext(uri.export(), metaContexts));
                OptionReply fin = last(r);
                if (fin instanceof OptionReply.Error e) {
                    if (e.type().equals(NbdOptionReplyType.ERR_TLS_REQD)) {
                        throw refused(e, "NBD_OPT_SET_META_CONTEXT");
                    }
                    LOG.warn("{}: server refused meta contexts {} ({}); block status will not be available", uri,
                        metaContexts, e.describe());
                } else {
                    for (OptionReply x : r) {
                        if (x instanceof OptionReply.MetaContext m) {
                            if (contexts.containsKey(m.contextId())) {
                                throw new NbdProtocolException("server " + uri + " gave context id " + m.contextId()
                                    + " to both " + contexts.get(m.contextId()) + " and " + m.name());
                            }
                            contexts.put(m.contextId(), m.name());
                        }
                    }
                }
                if (contexts.size() < metaContexts.size()) {
                    LOG.debug("{}: server selected meta contexts {} of {}", uri, contexts.values(), metaContexts);
                    offered = bitmapsIfMissing(metaContexts, contexts.values());
                }
            }
            List<OptionReply> r = option(OptionRequest.go(uri.export(), INFO_REQUESTS));
            OptionReply fin = last(r);
            if (fin instanceof OptionReply.Ack) {
                return new Negotiated(exportInfo(uri.export(), "", r, true), structured, mode, contexts, offered);
            }
            OptionReply.Error e = (OptionReply.Error) fin;
            if (!e.type().equals(NbdOptionReplyType.ERR_UNSUP) || mode == NbdHeaderMode.EXTENDED) {
                throw refused(e, "NBD_OPT_GO for export '" + uri.export() + "'");
            }
            LOG.debug("{}: server does not support NBD_OPT_GO; falling back to NBD_OPT_EXPORT_NAME", uri);
        }
        if (tls && !greeting.fixedNewstyle()) {
            throw new IllegalStateException("TLS without fixed newstyle");
        }
        return new Negotiated(exportName(), structured, mode, contexts, offered);
    }

    /**
     * When a requested dirty bitmap was not granted: the bitmaps the export does offer, asked with
     * {@code NBD_OPT_LIST_META_CONTEXT} on this connection before GO (a second connection would wait forever on a
     * server that serves one client at a time, such as qemu-nbd without {@code -e}). Empty if none was missing, or
     * if the server refuses the listing (it only serves a message).
     */
    private List<String> bitmapsIfMissing(List<String> requested, java.util.Collection<String> granted)
        throws IOException {
        String prefix = NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX;
        if (requested.stream().noneMatch(c -> c.startsWith(prefix) && !granted.contains(c))) {
            return List.of();
        }
        try {
            List<String> names = new ArrayList<>();
            for (String c : listMetaContexts(List.of(prefix))) {
                if (c.startsWith(prefix) && !names.contains(c.substring(prefix.length()))) {
                    names.add(c.substring(prefix.length()));
                }
            }
            return List.copyOf(names);
        } catch (NbdHandshakeException e) {
            LOG.debug("{}: cannot list the export's bitmaps: {}", uri, e.getMessage());
            return List.of();
        }
    }

    /**
     * {@code NBD_OPT_EXTENDED_HEADERS} (QEMU 8.2+): true when acknowledged. A server without them (QEMU 7.2,
     * nbdkit 1.32) answers {@code ERR_UNSUP}; the client then falls back to structured replies.
     */
    boolean negotiateExtendedHeaders() throws IOException {
        OptionReply fin = last(option(OptionRequest.extendedHeaders()));
        if (fin instanceof OptionReply.Error e) {
            if (e.type().equals(NbdOptionReplyType.ERR_TLS_REQD)) {
                throw refused(e, "NBD_OPT_EXTENDED_HEADERS");
            }
            LOG.debug("{}: no extended headers ({})", uri, e.describe());
            return false;
        }
        return true;
    }

    boolean negotiateStructuredReplies() throws IOException {
        OptionReply fin = last(option(OptionRequest.structuredReply()));
        if (fin instanceof OptionReply.Error e) {
            if (e.type().equals(NbdOptionReplyType.ERR_TLS_REQD)) {
                throw refused(e, "NBD_OPT_STRUCTURED_REPLY");
            }
            LOG.debug("{}: no structured replies ({})", uri, e.describe());
            return false;
        }
        return true;
    }

    private ExportInfo exportName() throws IOException {
        boolean noZeroes = clientFlags.noZeroes();
        try {
            channel.eventLoop().submit(() -> decoder.expectExportNameReply(noZeroes)).get(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted");
        } catch (ExecutionException | TimeoutException e) {
            throw new NbdProtocolException("cannot prepare for the EXPORT_NAME reply: " + e, e);
        }
        send(OptionRequest.exportName(uri.export()));
        Object o;
        try {
            o = next("the reply to NBD_OPT_EXPORT_NAME");
        } catch (NbdConnectionClosedException e) {
            throw new NbdHandshakeException("server " + uri + " closed the connection after NBD_OPT_EXPORT_NAME '"
                + uri.export() + "': the export does not exist or needs TLS (list exports with: jbackup inspect "
                + "--list URI)", null);
        }
        if (!(o instanceof ExportNameReply r)) {
            throw new NbdProtocolException("expected the EXPORT_NAME reply from " + uri + ", got " + o);
        }
        return validate(new ExportInfo(uri.export(), "", r.size(), effectiveFlags(r.transmissionFlags()),
            ExportInfo.DEFAULT_MIN_BLOCK, ExportInfo.DEFAULT_PREFERRED_BLOCK, ExportInfo.DEFAULT_MAX_BLOCK));
    }

    private static int effectiveFlags(int flags) {
        // without HAS_FLAGS the other bits carry no meaning
        return (flags & NbdConstants.TFLAG_HAS_FLAGS) != 0 ? flags : 0;
    }

    /** Builds the export information from the INFO replies of {@code NBD_OPT_INFO} or {@code NBD_OPT_GO}. */
    ExportInfo exportInfo(String name, String description, List<OptionReply> replies, boolean required)
        throws NbdProtocolException {
        OptionReply.InfoExport export = null;
        OptionReply.InfoBlockSize bs = null;
        String canonical = name;
        String desc = description;
        for (OptionReply r : replies) {
            if (r instanceof OptionReply.InfoExport e) {
                if (export != null && (export.size() != e.size()
                    || export.transmissionFlags() != e.transmissionFlags())) {
                    throw new NbdProtocolException("server " + uri + " sent NBD_INFO_EXPORT twice for export '" + name
                        + "' with different values (size " + Long.toUnsignedString(export.size()) + " then "
                        + Long.toUnsignedString(e.size()) + ", flags 0x" + Integer.toHexString(
                        export.transmissionFlags()) + " then 0x" + Integer.toHexString(e.transmissionFlags()) + ")");
                }
                export = e;
            } else if (r instanceof OptionReply.InfoBlockSize b) {
                if (bs != null && !bs.equals(b)) {
                    throw new NbdProtocolException("server " + uri + " sent NBD_INFO_BLOCK_SIZE twice for export '"
                        + name + "' with different values (" + bs + " then " + b + ")");
                }
                bs = b;
            } else if (r instanceof OptionReply.InfoName n) {
                canonical = n.name();
            } else if (r instanceof OptionReply.InfoDescription d) {
                desc = d.description();
            }
        }
        if (export == null) {
            if (required) {
                throw new NbdProtocolException("server " + uri + " acknowledged NBD_OPT_GO without sending "
                    + "NBD_INFO_EXPORT (size and flags)");
            }
            return new ExportInfo(canonical, desc, -1, 0, ExportInfo.DEFAULT_MIN_BLOCK,
                ExportInfo.DEFAULT_PREFERRED_BLOCK, ExportInfo.DEFAULT_MAX_BLOCK);
        }
        int min = ExportInfo.DEFAULT_MIN_BLOCK;
        int pref = ExportInfo.DEFAULT_PREFERRED_BLOCK;
        int max = ExportInfo.DEFAULT_MAX_BLOCK;
        if (bs != null) {
            if (bs.minimum() < 1 || bs.minimum() > 65536 || Long.bitCount(bs.minimum()) != 1
                || Long.bitCount(bs.preferred()) != 1 || bs.preferred() < Math.max(bs.minimum(), 512)
                || bs.maximum() < bs.preferred()) {
                throw new NbdProtocolException("server " + uri + " sent invalid block sizes for export '" + name
                    + "': minimum " + bs.minimum() + ", preferred " + bs.preferred() + ", maximum " + bs.maximum()
                    + " (doc/proto.md: the minimum is a power of 2 up to 64 KiB, the preferred a power of 2 of at "
                    + "least max(minimum, 512), the maximum at least the preferred)");
            }
            min = (int) bs.minimum();
            pref = (int) Math.min(bs.preferred(), 1 << 30);
            max = (int) Math.min(bs.maximum(), Integer.MAX_VALUE);
        }
        return validate(new ExportInfo(canonical, desc, export.size(), effectiveFlags(export.transmissionFlags()),
            min, pref, max));
    }

    /**
     * Refuses sizes jbackup cannot address: above 2^63 - 1 (negative as a Java long), or not a multiple of the
     * minimum block size (the tail could not be read with requests the server must accept).
     */
    private ExportInfo validate(ExportInfo info) throws NbdProtocolException {
        if (info.size() < 0) {
            throw new NbdProtocolException("server " + uri + " reports export size " + Long.toUnsignedString(
                info.size()) + " for '" + info.name() + "', more than jbackup supports (2^63 - 1)");
        }
        if (info.size() % info.minBlock() != 0) {
            throw new NbdProtocolException("server " + uri + " reports export size " + info.size() + " for '"
                + info.name() + "', which is not a multiple of its minimum block size " + info.minBlock()
                + ": the last " + info.size() % info.minBlock() + " bytes could not be read with aligned requests");
        }
        return info;
    }

    /**
     * Switches the channel to transmission: replaces the handshake codec with the request encoder and reply decoder.
     * Bytes already received stay in order.
     */
    Connection toTransmission(Negotiated n) throws IOException {
        TransmissionHandler th = new TransmissionHandler(uri.toString(), n.info().size(), n.structured(),
            opts.maxInFlight(), opts.requestTimeout().toNanos());
        int maxMetadata = n.mode() == NbdHeaderMode.EXTENDED ? ReplyDecoder.DEFAULT_MAX_METADATA_PAYLOAD_EXTENDED
            : ReplyDecoder.DEFAULT_MAX_METADATA_PAYLOAD;
        ReplyDecoder rd = new ReplyDecoder(n.mode(), opts.maxReplyPayload(),
            (int) Math.min(opts.maxReplyPayload(), maxMetadata), th);
        try {
            channel.eventLoop().submit(() -> {
                if (!events.queue.isEmpty()) {
                    throw new NbdProtocolException("server " + uri + " sent more after the handshake ended: "
                        + events.queue.peek());
                }
                channel.pipeline().replace("handshake-events", "nbd-client", th);
                channel.pipeline().replace("handshake-encoder", "request-encoder", RequestEncoder.of(n.mode()));
                channel.pipeline().replace("handshake-decoder", "reply-decoder", rd);
                return null;
            }).get(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof IOException io) {
                throw io;
            }
            throw new NbdProtocolException("cannot switch to transmission: " + e.getCause(), e.getCause());
        } catch (TimeoutException e) {
            throw new NbdTimeoutException("cannot switch to transmission: event loop did not respond");
        }
        return new Connection(channel, th, n.contexts());
    }

    // ---- queries that end with ABORT ----

    /** {@code NBD_OPT_LIST}: export names and their free-text details, in the server's order. */
    List<OptionReply.Server> list() throws IOException {
        requireFixedNewstyle("list exports");
        List<OptionReply> r = option(OptionRequest.list());
        if (last(r) instanceof OptionReply.Error e) {
            throw refused(e, "NBD_OPT_LIST");
        }
        List<OptionReply.Server> out = new ArrayList<>();
        for (OptionReply x : r) {
            if (x instanceof OptionReply.Server s) {
                out.add(s);
            } else if (!(x instanceof OptionReply.Ack)) {
                throw new NbdProtocolException("unexpected reply " + x + " to NBD_OPT_LIST from " + uri);
            }
        }
        return out;
    }

    /** {@code NBD_OPT_INFO} for one export; null if the server does not support INFO. */
    ExportInfo info(String export, String details) throws IOException {
        List<OptionReply> r = option(OptionRequest.info(export, INFO_REQUESTS));
        if (last(r) instanceof OptionReply.Error e) {
            if (e.type().equals(NbdOptionReplyType.ERR_UNSUP)) {
                return null;
            }
            throw refused(e, "NBD_OPT_INFO for export '" + export + "'");
        }
        return exportInfo(export, details, r, true);
    }

    /** {@code NBD_OPT_LIST_META_CONTEXT}: context names matching the queries (all with no queries). */
    List<String> listMetaContexts(List<String> queries) throws IOException {
        List<OptionReply> r = option(OptionRequest.listMetaContext(uri.export(), queries));
        if (last(r) instanceof OptionReply.Error e) {
            if (e.type().equals(NbdOptionReplyType.ERR_UNSUP)) {
                return List.of();
            }
            throw refused(e, "NBD_OPT_LIST_META_CONTEXT");
        }
        List<String> names = new ArrayList<>();
        for (OptionReply x : r) {
            if (x instanceof OptionReply.MetaContext m) {
                names.add(m.name());
            }
        }
        return names;
    }

    void requireFixedNewstyle(String what) throws NbdHandshakeException {
        if (!greeting.fixedNewstyle()) {
            throw new NbdHandshakeException("server " + uri + " cannot " + what + ": it does not support fixed "
                + "newstyle negotiation", null);
        }
    }

    /** Soft disconnect: {@code NBD_OPT_ABORT}, a short wait for the ACK (or close), then close. */
    void abort() {
        if (channel.isActive() && greeting != null && greeting.fixedNewstyle()) {
            try {
                send(OptionRequest.abort());
                long until = Math.min(deadline, System.nanoTime() + TimeUnit.SECONDS.toNanos(1));
                while (System.nanoTime() < until) {
                    Object o = events.queue.poll(until - System.nanoTime(), TimeUnit.NANOSECONDS);
                    if (o == null || o == CLOSED || o instanceof Failure
                        || (o instanceof OptionReply r && r.option().equals(NbdOption.ABORT))) {
                        break;
                    }
                    ReferenceCountUtil.release(o);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        close();
    }

    @Override
    public void close() {
        channel.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
        for (Object o; (o = events.queue.poll()) != null; ) {
            ReferenceCountUtil.release(o);
        }
    }
}
