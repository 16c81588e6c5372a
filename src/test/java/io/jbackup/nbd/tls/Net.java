package io.jbackup.nbd.tls;

import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.nio.NioDomainSocketChannel;
import io.netty.channel.socket.nio.NioServerDomainSocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/** Real loopback TCP / unix-socket netty peers for TLS tests. Close it to stop its event loops. */
final class Net implements AutoCloseable {
    final EventLoopGroup group = new NioEventLoopGroup(2);

    /** Echoes plaintext back (through the TLS handler in front of it). */
    static final class Echo extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ctx.write(msg);
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            ctx.flush();
            ctx.fireChannelReadComplete();
        }
    }

    /** A listening test server; {@link #probe()} is the probe of the first accepted connection. */
    record Server(Channel listen, CompletableFuture<Probe> accepted, SocketAddress address) implements AutoCloseable {
        @Override
        public void close() {
            listen.close().syncUninterruptibly();
        }

        Probe probe() {
            return Probe.await(accepted, "accepted connection");
        }
    }

    static InetSocketAddress loopback() {
        return new InetSocketAddress("127.0.0.1", 0);
    }

    /** Server whose connections get {@code tls.get()} (may be null for none), optionally an echo, and a probe. */
    Server server(SocketAddress bindTo, Supplier<ChannelHandler> tls, boolean echo) {
        CompletableFuture<Probe> accepted = new CompletableFuture<>();
        boolean unix = bindTo instanceof UnixDomainSocketAddress;
        Channel ch = new ServerBootstrap().group(group)
            .channel(unix ? NioServerDomainSocketChannel.class : NioServerSocketChannel.class)
            .childHandler(new ChannelInitializer<Channel>() {
                @Override
                protected void initChannel(Channel c) {
                    Probe p = new Probe();
                    c.pipeline().addLast(NbdTls.HANDLER_NAME, tls.get());
                    if (echo) {
                        c.pipeline().addLast(new Echo());
                    }
                    c.pipeline().addLast(p);
                    accepted.complete(p);
                }
            }).bind(bindTo).syncUninterruptibly().channel();
        return new Server(ch, accepted, ch.localAddress());
    }

    /** Connects with a pipeline of just {@code probe}. */
    Channel connect(SocketAddress to, Probe probe) {
        boolean unix = to instanceof UnixDomainSocketAddress;
        return new Bootstrap().group(group).channel(unix ? NioDomainSocketChannel.class : NioSocketChannel.class)
            .handler(probe).connect(to).syncUninterruptibly().channel();
    }

    /** Connects and adds {@code tls} at the front (as a client does after the STARTTLS ACK). */
    Channel connect(SocketAddress to, ChannelHandler tls, Probe probe) {
        Channel ch = connect(to, probe);
        ch.pipeline().addFirst(NbdTls.HANDLER_NAME, tls);
        return ch;
    }

    @Override
    public void close() {
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }
}
