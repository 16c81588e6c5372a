package io.jbackup.nbd.client;

import io.jbackup.error.UsageException;
import io.jbackup.nbd.protocol.ClientFlags;
import io.jbackup.nbd.protocol.HandshakeDecoder;
import io.jbackup.nbd.protocol.HandshakeEncoder;
import io.jbackup.nbd.protocol.NbdConnectionClosedException;
import io.jbackup.nbd.protocol.NbdOption;
import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.jbackup.nbd.protocol.NbdProtocolException;
import io.jbackup.nbd.protocol.OptionReply;
import io.jbackup.nbd.protocol.OptionRequest;
import io.jbackup.nbd.protocol.ServerGreeting;
import io.jbackup.nbd.tls.NbdTls;
import io.jbackup.nbd.tls.NbdTlsException;
import io.jbackup.nbd.tls.TlsConfig;
import io.jbackup.nbd.tls.TlsHandshakeCompletion;
import io.jbackup.nbd.tls.TlsMode;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandler;
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
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The low level of one connection's handshake, driven from the calling thread: connects, reads the greeting, sends
 * the client flags and negotiates STARTTLS, then sends one option at a time and collects its replies up to the final
 * one, all within one deadline ({@link ClientOptions#handshakeTimeout()}). The channel's handlers only decode and
 * queue what arrives. What the options mean is up to {@link Handshake} (negotiation for transmission) and
 * {@link ExportQueries} (queries that end with {@code NBD_OPT_ABORT}).
 */
final class OptionChannel implements AutoCloseable {
    /** Logs under {@link Handshake}'s name, as before the handshake was split. */
    private static final Logger LOG = LoggerFactory.getLogger(Handshake.class);
    /** Bound on the replies to one option (exports listed, contexts listed). */
    static final int MAX_REPLIES_PER_OPTION = 100_000;

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

    final NbdUri uri;
    final ClientOptions opts;
    final Channel channel;
    private final HandshakeDecoder decoder;
    private final Events events;
    private final long deadline;
    private ServerGreeting greeting;
    private ClientFlags clientFlags;
    private boolean tls;

    private OptionChannel(NbdUri uri, ClientOptions opts, Channel channel, HandshakeDecoder decoder, Events events) {
        this.uri = uri;
        this.opts = opts;
        this.channel = channel;
        this.decoder = decoder;
        this.events = events;
        this.deadline = System.nanoTime() + opts.handshakeTimeout().toNanos();
    }

    /** Connects, reads the greeting, sends the client flags and negotiates TLS as configured. */
    static OptionChannel open(NbdUri uri, ClientOptions opts) throws IOException {
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
        OptionChannel h = new OptionChannel(uri, opts, ch, decoder, events);
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

    Object next(String waitingFor) throws IOException {
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

    void send(Object msg) {
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

    NbdHandshakeException refused(OptionReply.Error e, String what) {
        String hint = "";
        if (e.type().equals(NbdOptionReplyType.ERR_TLS_REQD)) {
            hint = "; the server requires TLS: use an nbds:// URI or --tls with --tls-creds DIR or --tls-psk-file FILE";
        } else if (e.type().equals(NbdOptionReplyType.ERR_UNKNOWN)) {
            hint = "; check the export name (list exports with: jbackup inspect --list URI)";
        }
        return new NbdHandshakeException("server " + uri + " refused " + what + " (" + e.describe() + ")" + hint,
            e.type());
    }

    /**
     * Prepares the decoder for the reply to {@code NBD_OPT_EXPORT_NAME}, which has a format of its own (with or
     * without the zero padding, as the client flags said).
     */
    void expectExportNameReply() throws IOException {
        boolean noZeroes = clientFlags.noZeroes();
        try {
            channel.eventLoop().submit(() -> decoder.expectExportNameReply(noZeroes)).get(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted");
        } catch (ExecutionException | TimeoutException e) {
            throw new NbdProtocolException("cannot prepare for the EXPORT_NAME reply: " + e, e);
        }
    }

    /** What arrived and was not taken yet (null if nothing); call on the event loop. */
    Object pending() {
        return events.queue.peek();
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
