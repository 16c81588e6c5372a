package io.jbackup.nbd.client;

import io.netty.bootstrap.Bootstrap;
import io.netty.channel.AdaptiveRecvByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.nio.NioDomainSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.util.concurrent.DefaultThreadFactory;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Files;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * Opens NBD transport channels (TCP or unix domain socket, JDK NIO only) on one shared group of daemon I/O threads.
 */
final class Transports {
    private Transports() {
    }

    private static final class Holder {
        static final EventLoopGroup GROUP = new NioEventLoopGroup(
            Math.max(2, Math.min(8, Runtime.getRuntime().availableProcessors())),
            new DefaultThreadFactory("jbackup-nbd-io", true));

        static {
            started = true;
        }
    }

    private static volatile boolean started;

    static EventLoopGroup group() {
        return Holder.GROUP;
    }

    /**
     * Stops the shared I/O threads, if they were started, and waits up to a second for them to end. For a process
     * about to exit: the JVM's exit waits up to 300 ms for every thread that sits in a native call, which an idle
     * event loop does (epoll_wait), so each command would end 0.3 s late (bench/README.md).
     */
    static void shutdown() {
        if (started) {
            Holder.GROUP.shutdownGracefully(0, 0, TimeUnit.MILLISECONDS).awaitUninterruptibly(1, TimeUnit.SECONDS);
        }
    }

    /** Connects to the URI's address, blocking up to {@code timeout}. */
    static Channel connect(NbdUri uri, Duration timeout, ChannelHandler initializer) throws IOException {
        Bootstrap b = new Bootstrap().group(group())
            .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) Math.min(Integer.MAX_VALUE, timeout.toMillis()))
            .option(ChannelOption.RCVBUF_ALLOCATOR, new AdaptiveRecvByteBufAllocator(4096, 64 << 10, 1 << 20))
            .option(ChannelOption.AUTO_READ, true)
            .handler(initializer);
        ChannelFuture f;
        String where;
        if (uri.isUnix()) {
            where = "unix socket " + uri.socket();
            if (!Files.exists(uri.socket())) {
                throw new NbdConnectException("cannot connect to " + where + ": no such file (is the NBD server "
                    + "running?)", null);
            }
            f = b.channel(NioDomainSocketChannel.class).connect(UnixDomainSocketAddress.of(uri.socket()));
        } else {
            where = "tcp " + uri.host() + ":" + uri.port();
            f = b.channel(NioSocketChannel.class).option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.SO_KEEPALIVE, true)
                .connect(new InetSocketAddress(uri.host(), uri.port()));
        }
        try {
            if (!f.await(timeout.toMillis() + 1000, TimeUnit.MILLISECONDS)) {
                f.cancel(false);
                f.channel().close();
                throw new NbdTimeoutException("connecting to " + where + " timed out after " + timeout.toMillis()
                    + " ms");
            }
        } catch (InterruptedException e) {
            f.channel().close();
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted while connecting to " + where);
        }
        if (!f.isSuccess()) {
            Throwable c = f.cause();
            if (c instanceof io.netty.channel.ConnectTimeoutException) {
                throw new NbdTimeoutException("connecting to " + where + " timed out after " + timeout.toMillis()
                    + " ms");
            }
            throw new NbdConnectException("cannot connect to " + where + ": " + c.getMessage(), c);
        }
        return f.channel();
    }
}
