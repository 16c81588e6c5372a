package io.jbackup.nbd.tls;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.PromiseCombiner;
import io.netty.util.concurrent.ScheduledFuture;

import java.io.IOException;
import java.nio.channels.ClosedChannelException;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Objects;
import java.util.concurrent.TimeUnit;

import org.bouncycastle.tls.TlsProtocol;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * TLS-PSK for a netty channel, client or server, on BouncyCastle's non-blocking TLS engine. JSSE (and so netty's
 * {@code SslHandler}) has no PSK support; this handler is the PSK counterpart of {@code SslHandler}. Create it with
 * {@link NbdTls} (or the factories here) and add it at the front of the pipeline once STARTTLS has been agreed.
 * This class is the netty side and the record flow: when the handshake starts, completes or fails, what is queued,
 * flushed and closed. Its parts: {@link PskPeer} (the BouncyCastle client/server, PSK identities and keys, the
 * protocol parameters, what the handshake learned), {@link TlsRecordPump} (bytes between netty buffers and the
 * engine), {@link PskFailures} (failure messages), {@link TlsVersions} (versions and suites).
 *
 * <h2>Behaviour in the pipeline</h2>
 * <ul>
 *   <li>On {@code handlerAdded} (or {@code channelActive}, if added before the channel is active) a client
 *       sends its ClientHello; a server waits for one. A handshake timeout (default 10 s) fails the connection.</li>
 *   <li>Inbound {@link ByteBuf}s are ciphertext; the handler passes decrypted plaintext on as {@link ByteBuf}s
 *       (any split, any size; partial records are buffered). Outbound {@link ByteBuf}s are plaintext; writes made
 *       before the handshake completes are queued and sent, in order, once it completes. A {@code flush()}
 *       issued before completion takes effect then. Other outbound message types fail their promise.</li>
 *   <li>When the handshake completes a {@link TlsHandshakeCompletion} user event is fired once (success or
 *       failure), after any queued writes were encrypted and before any plaintext is passed on.</li>
 *   <li>Failures (a fatal alert sent or received, a bad record, the timeout) become one {@link NbdTlsException}
 *       with a message naming the likely cause: it fails queued writes, is fired as {@code exceptionCaught}
 *       (and as a failed {@link TlsHandshakeCompletion} during the handshake), and the channel is closed after
 *       the alert is flushed.</li>
 *   <li>{@code close()} sends close_notify and closes the channel once it is written (or after 3 s). Write
 *       errors and I/O exceptions after close was requested (EPIPE, connection reset - qemu-nbd drops the socket
 *       right after {@code NBD_CMD_DISC}) are ignored. A close_notify from the peer closes the channel.</li>
 *   <li>A connection that closes during the handshake yields a failed {@link TlsHandshakeCompletion} only.</li>
 * </ul>
 *
 * <p>Copies: see {@link TlsRecordPump}. Large writes are encrypted in 64 KiB slices so BouncyCastle's output queue
 * stays small.
 *
 * <p>Not thread-safe and not {@code @Sharable}: one instance per channel; all methods run on its event loop.
 */
public final class BcTlsHandler extends ChannelDuplexHandler {
    private static final Logger LOG = LoggerFactory.getLogger(BcTlsHandler.class);

    /** Default handshake timeout. */
    public static final long DEFAULT_HANDSHAKE_TIMEOUT_MILLIS = 10_000;

    /** Plaintext encrypted per output buffer when writing large messages. */
    private static final int WRITE_SLICE = 4 * TlsRecordPump.RECORD_PLAINTEXT;
    private static final long CLOSE_NOTIFY_TIMEOUT_MILLIS = 3_000;

    private final long handshakeTimeoutMillis;
    private final PskPeer peer;
    private final TlsProtocol tls;
    private final TlsRecordPump pump;

    private ChannelHandlerContext ctx;
    private boolean started;
    private volatile boolean handshakeDone;
    private boolean failed;
    private boolean closeRequested;
    private boolean closeForwarded;
    private boolean flushWhenReady;
    private boolean needsReadAfterComplete;
    private final ArrayDeque<PendingWrite> pending = new ArrayDeque<>();
    private ScheduledFuture<?> handshakeTimeout;

    private record PendingWrite(ByteBuf buf, ChannelPromise promise) {
    }

    private BcTlsHandler(PskPeer peer, long handshakeTimeoutMillis) {
        if (handshakeTimeoutMillis <= 0) {
            throw new IllegalArgumentException("handshakeTimeoutMillis (" + handshakeTimeoutMillis + ") must be positive");
        }
        this.handshakeTimeoutMillis = handshakeTimeoutMillis;
        this.peer = peer;
        this.tls = this.peer.protocol();
        this.pump = new TlsRecordPump(tls);
    }

    /**
     * A TLS-PSK client presenting {@code identity} with {@code key}.
     *
     * @param keySource the {@code keys.psk} file the key came from, named in error messages (may be null)
     */
    public static BcTlsHandler pskClient(String identity, byte[] key, Path keySource, TlsVersions versions,
                                         long handshakeTimeoutMillis) {
        if (identity == null || identity.isEmpty()) {
            throw new IllegalArgumentException("PSK identity must be non-empty");
        }
        if (key == null || key.length == 0) {
            throw new IllegalArgumentException("PSK key must be non-empty");
        }
        return new BcTlsHandler(PskPeer.client(LOG, versions, identity, key.clone(), keySource), handshakeTimeoutMillis);
    }

    /** A TLS-PSK server accepting any identity in {@code keys}. */
    public static BcTlsHandler pskServer(PskKeyFile keys, TlsVersions versions, long handshakeTimeoutMillis) {
        Objects.requireNonNull(keys, "keys");
        return new BcTlsHandler(PskPeer.server(LOG, versions, keys), handshakeTimeoutMillis);
    }

    /** Whether the handshake has completed successfully. */
    public boolean isHandshakeComplete() {
        return handshakeDone;
    }

    /** The PSK identity in use (client: the configured one; server: the client's, once the handshake completed). */
    public String pskIdentity() {
        return peer.identity();
    }

    /** Negotiated protocol ({@code "TLSv1.3"}/{@code "TLSv1.2"}) once the handshake completed, else null. */
    public String protocol() {
        return peer.protocolName();
    }

    /** Negotiated cipher suite (IANA name) once the handshake completed, else null. */
    public String cipherSuite() {
        return peer.suiteName();
    }

    // ---------------------------------------------------------------- lifecycle

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        this.ctx = ctx;
        if (ctx.channel().isActive()) {
            start();
        }
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) throws Exception {
        start();
        super.channelActive(ctx);
    }

    private void start() {
        if (started) {
            return;
        }
        started = true;
        handshakeTimeout = ctx.executor().schedule(this::onHandshakeTimeout, handshakeTimeoutMillis,
            TimeUnit.MILLISECONDS);
        try {
            peer.start();
        } catch (Exception e) {
            fail(e);
            return;
        }
        writeAndFlushOutput();
    }

    private void onHandshakeTimeout() {
        if (!handshakeDone && !failed) {
            fail(new NbdTlsException("TLS handshake did not complete within " + handshakeTimeoutMillis + " ms; "
                + "the peer may not speak TLS on this connection or may expect X.509 instead of PSK"));
        }
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        cancelTimeout();
        failPending(new ClosedChannelException());
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) throws Exception {
        cancelTimeout();
        if (!handshakeDone && !failed) {
            failed = true;
            NbdTlsException e = new NbdTlsException(!started ? "connection closed before the TLS handshake started"
                : closeRequested ? "connection closed locally during the TLS handshake"
                : PskFailures.closedDuringHandshake(peer.facts(false)));
            failPending(e);
            ctx.fireUserEventTriggered(TlsHandshakeCompletion.failed(e));
        } else {
            failPending(new ClosedChannelException());
        }
        super.channelInactive(ctx);
    }

    // ---------------------------------------------------------------- inbound

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (!(msg instanceof ByteBuf in)) {
            ctx.fireChannelRead(msg);
            return;
        }
        try {
            if (failed || tls.isClosed()) {
                return;
            }
            if (!started) {
                start();
                if (failed) {
                    return;
                }
            }
            pump.offer(in);
        } catch (Exception e) {
            fail(e);
            return;
        } finally {
            in.release();
        }
        writeAndFlushOutput();
        if (peer.completed() && !handshakeDone) {
            onHandshakeComplete();
        }
        if (failed || closeForwarded) {
            return;
        }
        int n = pump.availablePlaintext();
        if (n > 0) {
            ByteBuf plain;
            try {
                plain = pump.readPlaintext(ctx.alloc(), n);
            } catch (RuntimeException e) {
                fail(e);
                return;
            }
            ctx.fireChannelRead(plain);
        } else {
            needsReadAfterComplete = true;
        }
        if (tls.isClosed() && !closeForwarded) {
            // close_notify received (BouncyCastle already queued ours, flushed above)
            LOG.debug("{}: peer sent close_notify", ctx.channel());
            closeRequested = true;
            closeForwarded = true;
            ctx.close();
        }
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        boolean readMore = needsReadAfterComplete && !ctx.channel().config().isAutoRead();
        needsReadAfterComplete = false;
        if (readMore) {
            // we consumed ciphertext (handshake) without producing anything downstream could react to
            ctx.read();
        }
        ctx.fireChannelReadComplete();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        if (closeRequested && cause instanceof IOException) {
            LOG.debug("{}: ignoring I/O error after close: {}", ctx.channel(), cause.toString());
            return;
        }
        ctx.fireExceptionCaught(cause);
    }

    // ---------------------------------------------------------------- outbound

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        if (!(msg instanceof ByteBuf buf)) {
            ReferenceCountUtil.release(msg);
            promise.setFailure(new IllegalArgumentException("BcTlsHandler writes ByteBuf only, got "
                + (msg == null ? "null" : msg.getClass().getName())));
            return;
        }
        if (failed || closeRequested) {
            buf.release();
            promise.setFailure(new ClosedChannelException());
            return;
        }
        if (!handshakeDone) {
            pending.add(new PendingWrite(buf, promise));
            return;
        }
        encryptAndWrite(buf, promise);
    }

    @Override
    public void flush(ChannelHandlerContext ctx) {
        if (!handshakeDone && !failed) {
            flushWhenReady = true;
            return;
        }
        ctx.flush();
    }

    @Override
    public void close(ChannelHandlerContext ctx, ChannelPromise promise) {
        if (closeForwarded) {
            ctx.close(promise);
            return;
        }
        closeRequested = true;
        closeForwarded = true;
        cancelTimeout();
        failPending(new ClosedChannelException());
        ByteBuf out = null;
        if (started && !failed && !tls.isClosed()) {
            try {
                tls.close(); // queues close_notify
            } catch (IOException | RuntimeException e) {
                LOG.debug("{}: close_notify not sent: {}", ctx.channel(), e.toString());
            }
            out = pump.takeOutput(ctx.alloc());
        }
        if (out == null || !ctx.channel().isActive()) {
            if (out != null) {
                out.release();
            }
            ctx.close(promise);
            return;
        }
        ChannelFuture written = ctx.writeAndFlush(out);
        ScheduledFuture<?> timer = ctx.executor().schedule(() -> {
            ctx.close(promise);
        }, CLOSE_NOTIFY_TIMEOUT_MILLIS, TimeUnit.MILLISECONDS);
        written.addListener(f -> {
            // EPIPE / reset while sending close_notify is expected (peer already gone): close regardless
            if (timer.cancel(false)) {
                ctx.close(promise);
            }
        });
    }

    private void encryptAndWrite(ByteBuf buf, ChannelPromise promise) {
        try {
            int len = buf.readableBytes();
            if (len == 0) {
                ctx.write(Unpooled.EMPTY_BUFFER, promise);
                return;
            }
            if (len <= WRITE_SLICE) {
                pump.encrypt(buf, len);
                writeOutput(promise);
                return;
            }
            PromiseCombiner combiner = new PromiseCombiner(ctx.executor());
            while (buf.isReadable()) {
                pump.encrypt(buf, Math.min(WRITE_SLICE, buf.readableBytes()));
                ChannelPromise p = ctx.newPromise();
                combiner.add((ChannelFuture) p);
                writeOutput(p);
            }
            combiner.finish(promise);
        } catch (Exception e) {
            promise.tryFailure(e);
            fail(e);
        } finally {
            buf.release();
        }
    }

    private void writeOutput(ChannelPromise promise) {
        ByteBuf out = pump.takeOutput(ctx.alloc());
        ctx.write(out == null ? Unpooled.EMPTY_BUFFER : out, promise);
    }

    /** Writes and flushes whatever BouncyCastle has queued (handshake messages, alerts, close_notify). */
    private void writeAndFlushOutput() {
        ByteBuf out = pump.takeOutput(ctx.alloc());
        if (out != null) {
            ctx.writeAndFlush(out).addListener(ChannelFutureListener.FIRE_EXCEPTION_ON_FAILURE);
        }
    }

    // ---------------------------------------------------------------- handshake completion and failure

    private void onHandshakeComplete() {
        handshakeDone = true;
        cancelTimeout();
        LOG.debug("{}: TLS-PSK handshake complete: {} {} identity '{}'", ctx.channel(), peer.protocolName(),
            peer.suiteName(), PskFailures.printable(pskIdentity()));
        while (!pending.isEmpty() && !failed) {
            PendingWrite w = pending.poll();
            encryptAndWrite(w.buf(), w.promise());
        }
        if (failed) {
            return;
        }
        if (flushWhenReady) {
            flushWhenReady = false;
            ctx.flush();
        }
        ctx.fireUserEventTriggered(TlsHandshakeCompletion.succeeded(peer.protocolName(), peer.suiteName()));
    }

    private void fail(Throwable cause) {
        if (failed) {
            return;
        }
        failed = true;
        cancelTimeout();
        NbdTlsException e = cause instanceof NbdTlsException n ? n : describe(cause);
        LOG.debug("{}: TLS failure: {}", ctx.channel(), e.getMessage(), cause);
        failPending(e);
        boolean duringHandshake = !handshakeDone;
        // send the alert BouncyCastle queued, then close
        ByteBuf out = null;
        try {
            out = pump.takeOutput(ctx.alloc());
        } catch (RuntimeException ignored) {
            // nothing to send
        }
        closeRequested = true;
        if (duringHandshake) {
            ctx.fireUserEventTriggered(TlsHandshakeCompletion.failed(e));
        }
        ctx.fireExceptionCaught(e);
        closeForwarded = true;
        if (out != null && ctx.channel().isActive()) {
            ctx.writeAndFlush(out).addListener(ChannelFutureListener.CLOSE);
        } else {
            if (out != null) {
                out.release();
            }
            ctx.close();
        }
    }

    private void failPending(Throwable cause) {
        PendingWrite w;
        while ((w = pending.poll()) != null) {
            w.buf().release();
            w.promise().tryFailure(cause);
        }
    }

    private void cancelTimeout() {
        if (handshakeTimeout != null) {
            handshakeTimeout.cancel(false);
            handshakeTimeout = null;
        }
    }

    /** Turns a BouncyCastle failure into a message for the user ({@link PskFailures}). */
    NbdTlsException describe(Throwable cause) {
        return PskFailures.describe(cause, peer.facts(handshakeDone));
    }
}
