package io.jbackup.nbd.tls;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Last handler of a test pipeline: collects received bytes for a blocking {@link #read}, and records the
 * {@link TlsHandshakeCompletion}, the first exception and the channel closing.
 */
final class Probe extends ChannelInboundHandlerAdapter {
    static final Duration TIMEOUT = Duration.ofSeconds(20);

    final CompletableFuture<TlsHandshakeCompletion> handshake = new CompletableFuture<>();
    final CompletableFuture<Throwable> error = new CompletableFuture<>();
    final CompletableFuture<Void> closed = new CompletableFuture<>();
    private final LinkedBlockingQueue<byte[]> chunks = new LinkedBlockingQueue<>();
    private int handshakeEvents;
    private byte[] current = new byte[0];
    private int pos;

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        ByteBuf b = (ByteBuf) msg;
        try {
            byte[] a = new byte[b.readableBytes()];
            b.readBytes(a);
            chunks.add(a);
        } finally {
            b.release();
        }
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt instanceof TlsHandshakeCompletion c) {
            handshakeEvents++;
            if (!handshake.complete(c)) {
                error.complete(new AssertionError("second TlsHandshakeCompletion: " + c));
            }
        }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        error.complete(cause);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        closed.complete(null);
    }

    int handshakeEvents() {
        return handshakeEvents;
    }

    /** Waits for the handshake event and returns it. */
    TlsHandshakeCompletion awaitHandshake() {
        return await(handshake, "TLS handshake event");
    }

    /** Waits for a successful handshake. */
    TlsHandshakeCompletion awaitSuccess() {
        TlsHandshakeCompletion c = awaitHandshake();
        if (!c.success()) {
            throw new AssertionError("handshake failed", c.cause());
        }
        return c;
    }

    Throwable awaitError() {
        return await(error, "exceptionCaught");
    }

    void awaitClosed() {
        await(closed, "channel close");
    }

    /** Reads exactly {@code n} bytes. */
    byte[] read(int n) {
        byte[] out = new byte[n];
        int off = 0;
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (off < n) {
            if (pos == current.length) {
                try {
                    byte[] next = chunks.poll(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                    if (next == null) {
                        throw new AssertionError("timed out after " + off + " of " + n + " bytes"
                            + (error.isDone() ? "; error: " + error.getNow(null) : "")
                            + (closed.isDone() ? "; channel closed" : ""));
                    }
                    current = next;
                    pos = 0;
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new AssertionError(e);
                }
                continue;
            }
            int k = Math.min(n - off, current.length - pos);
            System.arraycopy(current, pos, out, off, k);
            pos += k;
            off += k;
        }
        return out;
    }

    /** Bytes received and not yet read. */
    int buffered() {
        int n = current.length - pos;
        for (byte[] c : chunks) {
            n += c.length;
        }
        return n;
    }

    static <T> T await(CompletableFuture<T> f, String what) {
        try {
            return f.get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            throw new AssertionError("timed out waiting for " + what);
        } catch (ExecutionException e) {
            throw new AssertionError(what + " failed", e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }
}
