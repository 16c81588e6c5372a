package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.ServerOptionDecoder;
import io.jbackup.nbd.protocol.ServerOptionReplyEncoder;
import io.jbackup.nbd.protocol.ServerReplyEncoder;
import io.jbackup.nbd.tls.NbdTls;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.nio.NioServerDomainSocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.concurrent.GlobalEventExecutor;
import java.io.IOException;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An NBD server (fixed newstyle) serving the exports of an {@link ExportProvider} on TCP and/or a Unix socket.
 *
 * <p>Supported: {@code NBD_OPT_GO/INFO} (EXPORT, NAME, DESCRIPTION, BLOCK_SIZE), {@code EXPORT_NAME}, {@code LIST},
 * {@code ABORT}, {@code STARTTLS} (X.509 and PSK, optional or required), {@code STRUCTURED_REPLY},
 * {@code LIST/SET_META_CONTEXT} ({@code base:allocation} plus export-defined contexts); commands READ (simple and
 * structured, holes as {@code OFFSET_HOLE}, DF), WRITE, WRITE_ZEROES, TRIM, FLUSH, CACHE, BLOCK_STATUS (REQ_ONE)
 * and DISC. Replies may complete out of order; per-connection limits bound the memory a client can make the
 * server hold (see {@link ServerConfig}). A misbehaving client only loses its own connection.
 *
 * <pre>{@code
 * try (NbdServer server = NbdServer.start(ServerConfig.builder().unixSocket(sock).build(), provider)) {
 *     ... server.socketPath() ...
 * }
 * }</pre>
 */
public final class NbdServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NbdServer.class);

    /** User event fired on every connection when the server shuts down. */
    static final Object SHUTDOWN_EVENT = new Object() {
        @Override
        public String toString() {
            return "NbdServer.SHUTDOWN";
        }
    };

    private static final ServerOptionReplyEncoder OPTION_ENCODER = new ServerOptionReplyEncoder();

    private final ServerConfig config;
    private final ServerContext context;
    private final EventLoopGroup bossGroup;
    private final EventLoopGroup workerGroup;
    private final ChannelGroup connections = new DefaultChannelGroup("nbd-connections", GlobalEventExecutor.INSTANCE);
    private final List<Channel> listeners = new ArrayList<>();
    private final AtomicInteger connectionCount = new AtomicInteger();
    private final AtomicBoolean closed = new AtomicBoolean();
    private SocketAddress tcpAddress;
    private Path socketPath;
    private Object socketIdentity;

    private NbdServer(ServerConfig config, ExportProvider provider) throws IOException {
        this.config = config;
        Function<ByteBufAllocator, ChannelHandler> tls = null;
        if (config.tls().enabled()) {
            NbdTls.ServerTls serverTls = NbdTls.server(config.tls());
            log.info("TLS {} with {}", config.tls().mode() == io.jbackup.nbd.tls.TlsMode.REQUIRE ? "required" : "optional",
                serverTls.description());
            tls = serverTls::newHandler;
        }
        ThreadPoolExecutor blocking = new ThreadPoolExecutor(config.blockingThreads(), config.blockingThreads(),
            30, TimeUnit.SECONDS, new LinkedBlockingQueue<>(), new DefaultThreadFactory("nbd-server-blocking", true));
        blocking.allowCoreThreadTimeOut(true);
        this.context = new ServerContext(config, provider, blocking, tls);
        this.bossGroup = new NioEventLoopGroup(1, new DefaultThreadFactory("nbd-server-accept", true));
        this.workerGroup = new NioEventLoopGroup(config.ioThreads(), new DefaultThreadFactory("nbd-server-io", true));
    }

    /**
     * Starts listening. Fails if an address is in use ({@link java.net.BindException}; for the Unix socket a
     * {@link SocketPathException} when a server accepts on it or the path is not a socket) or TLS credentials cannot
     * be loaded. A stale Unix socket file at the path is replaced ({@link UnixSockets#claim}).
     */
    public static NbdServer start(ServerConfig config, ExportProvider exports) throws IOException {
        NbdServer s = new NbdServer(config, exports);
        try {
            s.bind();
        } catch (IOException | RuntimeException e) {
            s.close();
            throw e;
        }
        return s;
    }

    private void bind() throws IOException {
        if (config.tcpAddress() != null) {
            ServerBootstrap b = bootstrap().channel(NioServerSocketChannel.class)
                .childOption(ChannelOption.TCP_NODELAY, true).childOption(ChannelOption.SO_KEEPALIVE, true)
                .option(ChannelOption.SO_REUSEADDR, true);
            Channel ch = bindOrThrow(b, config.tcpAddress(), "TCP address " + config.tcpAddress());
            listeners.add(ch);
            tcpAddress = ch.localAddress();
            log.info("NBD server listening on {}", tcpAddress);
        }
        if (config.unixSocket() != null) {
            Path p = config.unixSocket().toAbsolutePath();
            UnixSockets.claim(p, "--socket");
            ServerBootstrap b = bootstrap().channel(NioServerDomainSocketChannel.class);
            Channel ch = bindOrThrow(b, UnixDomainSocketAddress.of(p), "Unix socket " + p);
            listeners.add(ch);
            socketPath = p;
            socketIdentity = UnixSockets.identity(p);
            log.info("NBD server listening on unix:{}", p);
        }
    }

    private Channel bindOrThrow(ServerBootstrap b, SocketAddress address, String what) throws IOException {
        var f = b.bind(address).awaitUninterruptibly();
        if (!f.isSuccess()) {
            java.net.BindException e = new java.net.BindException("cannot listen on " + what + ": "
                + f.cause().getMessage());
            e.initCause(f.cause());
            throw e;
        }
        return f.channel();
    }

    private ServerBootstrap bootstrap() {
        return new ServerBootstrap().group(bossGroup, workerGroup)
            .option(ChannelOption.SO_BACKLOG, 128)
            .childHandler(new ChannelInitializer<Channel>() {
                @Override
                protected void initChannel(Channel ch) {
                    if (closed.get()) {
                        ch.close();
                        return;
                    }
                    if (connectionCount.incrementAndGet() > config.maxConnections()) {
                        connectionCount.decrementAndGet();
                        log.warn("refusing connection from {}: {} connections already (limit {})",
                            ch.remoteAddress(), config.maxConnections(), config.maxConnections());
                        ch.close();
                        return;
                    }
                    ch.closeFuture().addListener(f -> connectionCount.decrementAndGet());
                    connections.add(ch);
                    ServerOptionDecoder decoder = new ServerOptionDecoder(config.maxOptionLength());
                    ch.pipeline()
                        .addLast(HandshakeHandler.OPTION_DECODER, decoder)
                        .addLast("optionEncoder", OPTION_ENCODER)
                        .addLast(HandshakeHandler.REPLY_ENCODER, new ServerReplyEncoder())
                        .addLast(HandshakeHandler.NAME, new HandshakeHandler(context, decoder));
                }
            });
    }

    /** The bound TCP address (with the actual port), or null. */
    public SocketAddress tcpAddress() {
        return tcpAddress;
    }

    /** The Unix socket path, or null. */
    public Path socketPath() {
        return socketPath;
    }

    /** Reply bytes queued in the server, not yet written to any socket (tests check that this stays bounded). */
    long pendingWriteBytesForTest() {
        long n = 0;
        for (Channel ch : connections) {
            io.netty.channel.ChannelOutboundBuffer b = ch.unsafe().outboundBuffer();
            n += b == null ? 0 : b.totalPendingWriteBytes();
        }
        return n;
    }

    /** Connections currently open. */
    public int connectionCount() {
        return connectionCount.get();
    }

    /**
     * Stops accepting, lets connections in transmission finish their in-flight requests (queued ones fail with
     * ESHUTDOWN) for up to {@link ServerConfig#shutdownTimeout()}, then closes everything. Idempotent.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        context.beginShutdown();
        for (Channel l : listeners) {
            l.close().awaitUninterruptibly();
        }
        for (Channel ch : connections) {
            ch.pipeline().fireUserEventTriggered(SHUTDOWN_EVENT);
        }
        long deadline = System.nanoTime() + config.shutdownTimeout().toNanos();
        while (!connections.isEmpty() && System.nanoTime() < deadline) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        if (!connections.isEmpty()) {
            log.warn("closing {} connections that did not finish within {}", connections.size(),
                config.shutdownTimeout());
        }
        connections.close().awaitUninterruptibly();
        workerGroup.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly();
        bossGroup.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly();
        ExecutorService blocking = context.blocking;
        blocking.shutdown();
        try {
            if (!blocking.awaitTermination(5, TimeUnit.SECONDS)) {
                blocking.shutdownNow();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (socketPath != null) {
            UnixSockets.removeIfOurs(socketPath, socketIdentity);
        }
        log.info("NBD server stopped");
    }
}
