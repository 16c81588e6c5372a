package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.ServerRequestDecoder;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.util.concurrent.ScheduledFuture;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * Closes a connection whose client stopped in the middle of a request: part of a request header or WRITE payload has
 * arrived, the server is reading, and no further byte came for {@code timeout}. Such a client (a slowloris after the
 * handshake, or one that hung while sending) would otherwise hold its connection slot and the buffered part for ever.
 * A connection with no request under way is left alone however long it idles, and the clock stops while the server
 * itself is not reading (flow control: too much in flight).
 *
 * <p>Sits in the pipeline just before the {@link ServerRequestDecoder} it watches, so it sees every byte that decoder
 * gets (after TLS). Checks run on the channel's event loop, four times per timeout (at least once a second).
 */
final class StalledRequestGuard extends ChannelInboundHandlerAdapter {
    private static final Logger log = LoggerFactory.getLogger(StalledRequestGuard.class);

    private final ServerRequestDecoder decoder;
    private final long timeoutNanos;
    private final String peer;
    private long lastProgress = System.nanoTime();
    private ScheduledFuture<?> check;

    StalledRequestGuard(ServerRequestDecoder decoder, Duration timeout, String peer) {
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout: " + timeout + " (expected: > 0)");
        }
        this.decoder = decoder;
        this.timeoutNanos = timeout.toNanos();
        this.peer = peer;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        long period = Math.max(1, Math.min(TimeUnit.SECONDS.toNanos(1), timeoutNanos / 4));
        check = ctx.executor().scheduleAtFixedRate(() -> check(ctx), period, period, TimeUnit.NANOSECONDS);
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        cancel();
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        cancel();
        ctx.fireChannelInactive();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        lastProgress = System.nanoTime();
        ctx.fireChannelRead(msg);
    }

    private void check(ChannelHandlerContext ctx) {
        long now = System.nanoTime();
        if (!ctx.channel().isActive()) {
            cancel();
        } else if (!ctx.channel().config().isAutoRead() || !decoder.midRequest()) {
            lastProgress = now; // nothing owed by the client: the server is not reading, or no request under way
        } else if (now - lastProgress > timeoutNanos) {
            log.info("{}: a request has been incomplete with no byte for {} ms, closing the connection", peer,
                TimeUnit.NANOSECONDS.toMillis(now - lastProgress));
            cancel();
            ctx.close();
        }
    }

    private void cancel() {
        if (check != null) {
            check.cancel(false);
            check = null;
        }
    }
}
