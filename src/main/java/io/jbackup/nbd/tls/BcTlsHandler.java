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
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Vector;
import java.util.concurrent.TimeUnit;

import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.AlertLevel;
import org.bouncycastle.tls.BasicTlsPSKExternal;
import org.bouncycastle.tls.BasicTlsPSKIdentity;
import org.bouncycastle.tls.CertificateRequest;
import org.bouncycastle.tls.CipherSuite;
import org.bouncycastle.tls.PRFAlgorithm;
import org.bouncycastle.tls.PSKTlsClient;
import org.bouncycastle.tls.PSKTlsServer;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.PskIdentity;
import org.bouncycastle.tls.TlsAuthentication;
import org.bouncycastle.tls.TlsClientProtocol;
import org.bouncycastle.tls.TlsContext;
import org.bouncycastle.tls.TlsCredentials;
import org.bouncycastle.tls.TlsFatalAlert;
import org.bouncycastle.tls.TlsPSKExternal;
import org.bouncycastle.tls.TlsPSKIdentityManager;
import org.bouncycastle.tls.TlsProtocol;
import org.bouncycastle.tls.TlsServerCertificate;
import org.bouncycastle.tls.TlsServerProtocol;
import org.bouncycastle.tls.crypto.TlsCrypto;
import org.bouncycastle.tls.crypto.impl.bc.BcTlsCrypto;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * TLS-PSK for a netty channel, client or server, on BouncyCastle's non-blocking {@link TlsClientProtocol} /
 * {@link TlsServerProtocol} with {@link BcTlsCrypto}. JSSE (and so netty's {@code SslHandler}) has no PSK
 * support; this handler is the PSK counterpart of {@code SslHandler}. Create it with {@link NbdTls} (or the
 * factories here) and add it at the front of the pipeline once STARTTLS has been agreed.
 *
 * <h2>Protocol parameters</h2>
 * Compatible with qemu-nbd / qemu / libnbd using GnuTLS {@code tls-creds-psk} (priority
 * {@code NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK}):
 * <ul>
 *   <li>TLS 1.3 external PSK (RFC 8446 with {@code psk_dhe_ke}): identity = username in UTF-8, key from
 *       {@code keys.psk}, PRF HKDF-SHA256 (GnuTLS binds file-based PSKs to SHA-256, so SHA-384 suites are not
 *       offered). Suites {@code TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_CCM_SHA256}.</li>
 *   <li>TLS 1.2 PSK (RFC 4279/5487/7905/6655), AEAD suites only, in preference order
 *       {@code ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256, DHE_PSK_WITH_AES_128_GCM_SHA256,
 *       DHE_PSK_WITH_AES_256_GCM_SHA384, DHE_PSK_WITH_CHACHA20_POLY1305_SHA256, PSK_WITH_AES_128_GCM_SHA256,
 *       PSK_WITH_AES_256_GCM_SHA384, PSK_WITH_CHACHA20_POLY1305_SHA256, PSK_WITH_AES_128_CCM,
 *       DHE_PSK_WITH_AES_128_CCM} - all accepted by GnuTLS 3.7 (ECDHE_PSK with GCM/CCM is not).</li>
 *   <li>Client: one identity. Server: any identity present in the {@link PskKeyFile}; the identity the client
 *       used is available from {@link #pskIdentity()} after the handshake.</li>
 * </ul>
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
 * <p>Copies: heap plaintext is passed to BouncyCastle without copying; direct buffers are copied once, in
 * 16 KiB pieces, into a per-handler scratch array. Ciphertext is read from BouncyCastle straight into a
 * pooled buffer. Large writes are encrypted in 64 KiB slices so BouncyCastle's output queue stays small.
 *
 * <p>Not thread-safe and not {@code @Sharable}: one instance per channel; all methods run on its event loop.
 */
public final class BcTlsHandler extends ChannelDuplexHandler {
    private static final Logger LOG = LoggerFactory.getLogger(BcTlsHandler.class);

    /** Default handshake timeout. */
    public static final long DEFAULT_HANDSHAKE_TIMEOUT_MILLIS = 10_000;

    /** Largest TLS plaintext record; direct-buffer plaintext is copied in pieces of this size. */
    private static final int RECORD_PLAINTEXT = 1 << 14;
    /** Plaintext encrypted per output buffer when writing large messages. */
    private static final int WRITE_SLICE = 4 * RECORD_PLAINTEXT;
    private static final long CLOSE_NOTIFY_TIMEOUT_MILLIS = 3_000;

    private static final SecureRandom RANDOM = new SecureRandom();

    private final boolean isClient;
    private final TlsVersions versions;
    private final long handshakeTimeoutMillis;
    private final TlsProtocol tls;
    private final TlsCrypto crypto = new BcTlsCrypto(RANDOM);

    // client side
    private final String clientIdentity;
    private final byte[] clientKey;
    private final Path keySource;
    // server side
    private final PskKeyFile serverKeys;
    private final List<String> offeredIdentities = new ArrayList<>(2);

    private ChannelHandlerContext ctx;
    private boolean started;
    private boolean handshakeSignalled;
    private volatile boolean handshakeDone;
    private boolean failed;
    private boolean closeRequested;
    private boolean closeForwarded;
    private boolean flushWhenReady;
    private boolean needsReadAfterComplete;
    private final ArrayDeque<PendingWrite> pending = new ArrayDeque<>();
    private ScheduledFuture<?> handshakeTimeout;
    private byte[] scratch;

    private volatile String selectedIdentity;
    private volatile String protocolName;
    private volatile String suiteName;
    private short alertRaised = -1;
    private String alertRaisedMessage;
    private boolean serverSentCertificate;

    private record PendingWrite(ByteBuf buf, ChannelPromise promise) {
    }

    private BcTlsHandler(boolean isClient, TlsVersions versions, long handshakeTimeoutMillis, String clientIdentity,
                         byte[] clientKey, Path keySource, PskKeyFile serverKeys) {
        this.isClient = isClient;
        this.versions = Objects.requireNonNull(versions, "versions");
        if (handshakeTimeoutMillis <= 0) {
            throw new IllegalArgumentException("handshakeTimeoutMillis (" + handshakeTimeoutMillis + ") must be positive");
        }
        this.handshakeTimeoutMillis = handshakeTimeoutMillis;
        this.clientIdentity = clientIdentity;
        this.clientKey = clientKey;
        this.keySource = keySource;
        this.serverKeys = serverKeys;
        this.tls = isClient ? new TlsClientProtocol() : new TlsServerProtocol();
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
        return new BcTlsHandler(true, versions, handshakeTimeoutMillis, identity, key.clone(), keySource, null);
    }

    /** A TLS-PSK server accepting any identity in {@code keys}. */
    public static BcTlsHandler pskServer(PskKeyFile keys, TlsVersions versions, long handshakeTimeoutMillis) {
        Objects.requireNonNull(keys, "keys");
        return new BcTlsHandler(false, versions, handshakeTimeoutMillis, null, null, keys.file(), keys);
    }

    /** Whether the handshake has completed successfully. */
    public boolean isHandshakeComplete() {
        return handshakeDone;
    }

    /** The PSK identity in use (client: the configured one; server: the client's, once the handshake completed). */
    public String pskIdentity() {
        return isClient ? clientIdentity : selectedIdentity;
    }

    /** Negotiated protocol ({@code "TLSv1.3"}/{@code "TLSv1.2"}) once the handshake completed, else null. */
    public String protocol() {
        return protocolName;
    }

    /** Negotiated cipher suite (IANA name) once the handshake completed, else null. */
    public String cipherSuite() {
        return suiteName;
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
            if (isClient) {
                ((TlsClientProtocol) tls).connect(new Client());
            } else {
                ((TlsServerProtocol) tls).accept(new Server());
            }
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
            NbdTlsException e = new NbdTlsException(started ? closedDuringHandshakeMessage()
                : "connection closed before the TLS handshake started");
            failPending(e);
            ctx.fireUserEventTriggered(TlsHandshakeCompletion.failed(e));
        } else {
            failPending(new ClosedChannelException());
        }
        super.channelInactive(ctx);
    }

    private String closedDuringHandshakeMessage() {
        if (closeRequested) {
            return "connection closed locally during the TLS handshake";
        }
        if (isClient) {
            // qemu-nbd (GnuTLS) drops the connection without an alert when the PSK binder or Finished fails
            return "TLS-PSK handshake rejected by the server (it closed the connection): the server does not accept "
                + "identity '" + PskFailures.printable(clientIdentity) + "' with this key, or is not set up for "
                + "TLS-PSK; check --tls-username and --tls-psk-file (" + (keySource == null ? "the PSK key file" : keySource) + ")";
        }
        return "connection closed by the client during the TLS handshake"
            + (selectedIdentity != null ? " (identity '" + PskFailures.printable(selectedIdentity) + "')" : "")
            + "; it may have a different key, or expect X.509 certificates instead of TLS-PSK";
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
            offer(in);
        } catch (Exception e) {
            fail(e);
            return;
        } finally {
            in.release();
        }
        writeAndFlushOutput();
        if (handshakeSignalled && !handshakeDone) {
            onHandshakeComplete();
        }
        if (failed || closeForwarded) {
            return;
        }
        int n = tls.getAvailableInputBytes();
        if (n > 0) {
            ByteBuf plain = ctx.alloc().buffer(n);
            try {
                if (plain.hasArray()) {
                    tls.readInput(plain.array(), plain.arrayOffset() + plain.writerIndex(), n);
                } else {
                    tls.readInput(plain.internalNioBuffer(plain.writerIndex(), n), n);
                }
                plain.writerIndex(plain.writerIndex() + n);
            } catch (RuntimeException e) {
                plain.release();
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

    private void offer(ByteBuf in) throws IOException {
        int len = in.readableBytes();
        if (len == 0) {
            return;
        }
        if (in.hasArray()) {
            tls.offerInput(in.array(), in.arrayOffset() + in.readerIndex(), len);
            in.skipBytes(len);
            return;
        }
        byte[] buf = scratch();
        while (in.isReadable() && !tls.isClosed()) {
            int n = Math.min(buf.length, in.readableBytes());
            in.readBytes(buf, 0, n);
            tls.offerInput(buf, 0, n);
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
            out = takeOutput();
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
                encrypt(buf, len);
                writeOutput(promise);
                return;
            }
            PromiseCombiner combiner = new PromiseCombiner(ctx.executor());
            while (buf.isReadable()) {
                encrypt(buf, Math.min(WRITE_SLICE, buf.readableBytes()));
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

    /** Feeds {@code len} readable bytes of {@code buf} to BouncyCastle as application data. */
    private void encrypt(ByteBuf buf, int len) throws IOException {
        if (buf.hasArray()) {
            tls.writeApplicationData(buf.array(), buf.arrayOffset() + buf.readerIndex(), len);
            buf.skipBytes(len);
            return;
        }
        byte[] s = scratch();
        while (len > 0) {
            int n = Math.min(s.length, len);
            buf.readBytes(s, 0, n);
            tls.writeApplicationData(s, 0, n);
            len -= n;
        }
    }

    private void writeOutput(ChannelPromise promise) {
        ByteBuf out = takeOutput();
        ctx.write(out == null ? Unpooled.EMPTY_BUFFER : out, promise);
    }

    /** Writes and flushes whatever BouncyCastle has queued (handshake messages, alerts, close_notify). */
    private void writeAndFlushOutput() {
        ByteBuf out = takeOutput();
        if (out != null) {
            ctx.writeAndFlush(out).addListener(ChannelFutureListener.FIRE_EXCEPTION_ON_FAILURE);
        }
    }

    private ByteBuf takeOutput() {
        int n = tls.getAvailableOutputBytes();
        if (n == 0) {
            return null;
        }
        ByteBuf out = ctx.alloc().directBuffer(n);
        if (out.hasArray()) {
            tls.readOutput(out.array(), out.arrayOffset() + out.writerIndex(), n);
        } else {
            ByteBuffer nio = out.internalNioBuffer(out.writerIndex(), n);
            tls.readOutput(nio, n);
        }
        out.writerIndex(out.writerIndex() + n);
        return out;
    }

    private byte[] scratch() {
        if (scratch == null) {
            scratch = new byte[RECORD_PLAINTEXT];
        }
        return scratch;
    }

    // ---------------------------------------------------------------- handshake completion and failure

    private void onHandshakeComplete() {
        handshakeDone = true;
        cancelTimeout();
        LOG.debug("{}: TLS-PSK handshake complete: {} {} identity '{}'", ctx.channel(), protocolName, suiteName,
            PskFailures.printable(pskIdentity()));
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
        ctx.fireUserEventTriggered(TlsHandshakeCompletion.succeeded(protocolName, suiteName));
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
            out = takeOutput();
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
        return PskFailures.describe(cause, new PskFailures.Facts(isClient, handshakeDone, serverSentCertificate,
            clientIdentity, keySource, List.copyOf(offeredIdentities), selectedIdentity, alertRaised,
            alertRaisedMessage));
    }

    private void recordCompletion(TlsContext context) {
        ProtocolVersion v = context.getServerVersion();
        protocolName = ProtocolVersion.TLSv13.equals(v) ? "TLSv1.3"
            : ProtocolVersion.TLSv12.equals(v) ? "TLSv1.2" : String.valueOf(v);
        int suite = context.getSecurityParametersConnection().getCipherSuite();
        suiteName = PskFailures.suiteName(suite);
        handshakeSignalled = true;
    }

    private void recordAlertRaised(short level, short description, String message) {
        if (level == AlertLevel.fatal) {
            alertRaised = description;
            alertRaisedMessage = message;
            LOG.debug("TLS alert raised: {} {}", PskFailures.alertName(description), message);
        }
    }

    // ---------------------------------------------------------------- BouncyCastle peers

    private final class Client extends PSKTlsClient {
        Client() {
            super(crypto, new BasicTlsPSKIdentity(clientIdentity.getBytes(StandardCharsets.UTF_8), clientKey));
        }

        @Override
        protected ProtocolVersion[] getSupportedVersions() {
            return versions.protocolVersions();
        }

        @Override
        protected int[] getSupportedCipherSuites() {
            return versions.cipherSuites();
        }

        @Override
        @SuppressWarnings({"rawtypes", "unchecked"})
        public Vector getExternalPSKs() {
            if (!versions.tls13()) {
                return null;
            }
            Vector v = new Vector(1);
            v.add(new BasicTlsPSKExternal(clientIdentity.getBytes(StandardCharsets.UTF_8),
                getCrypto().createSecret(clientKey), PRFAlgorithm.tls13_hkdf_sha256));
            return v;
        }

        @Override
        public TlsAuthentication getAuthentication() {
            return new TlsAuthentication() {
                @Override
                public void notifyServerCertificate(TlsServerCertificate serverCertificate) throws IOException {
                    serverSentCertificate = true;
                    throw new TlsFatalAlert(AlertDescription.handshake_failure,
                        "server authenticates with a certificate, not the pre-shared key");
                }

                @Override
                public TlsCredentials getClientCredentials(CertificateRequest certificateRequest) {
                    return null;
                }
            };
        }

        @Override
        public void notifyHandshakeComplete() throws IOException {
            super.notifyHandshakeComplete();
            recordCompletion(context);
        }

        @Override
        public void notifyAlertRaised(short level, short description, String message, Throwable cause) {
            recordAlertRaised(level, description, message);
        }

        @Override
        public void notifyAlertReceived(short level, short description) {
            LOG.debug("TLS alert received from server: {} {}", level, PskFailures.alertName(description));
        }
    }

    private final class Server extends PSKTlsServer {
        Server() {
            super(crypto, new KeyFileIdentityManager());
        }

        @Override
        protected ProtocolVersion[] getSupportedVersions() {
            return versions.protocolVersions();
        }

        @Override
        protected int[] getSupportedCipherSuites() {
            return versions.cipherSuites();
        }

        @Override
        public TlsCredentials getCredentials() throws IOException {
            if (selectedIdentity == null && ProtocolVersion.TLSv13.equals(context.getServerVersion())) {
                // TLS 1.3 without an acceptable PSK: there is no certificate to fall back to
                throw new TlsFatalAlert(AlertDescription.handshake_failure, "no offered PSK identity is in "
                    + serverKeys.file());
            }
            return super.getCredentials();
        }

        @Override
        public TlsPSKExternal getExternalPSK(@SuppressWarnings("rawtypes") Vector identities) {
            for (Object o : identities) {
                byte[] id = ((PskIdentity) o).getIdentity();
                String name = new String(id, StandardCharsets.UTF_8);
                if (offeredIdentities.size() < 8) {
                    offeredIdentities.add(name);
                }
                var key = serverKeys.key(name);
                if (key.isPresent()) {
                    selectedIdentity = name;
                    return new BasicTlsPSKExternal(id, getCrypto().createSecret(key.get()),
                        PRFAlgorithm.tls13_hkdf_sha256);
                }
            }
            return null;
        }

        @Override
        public void notifyHandshakeComplete() throws IOException {
            super.notifyHandshakeComplete();
            recordCompletion(context);
        }

        @Override
        public void notifyAlertRaised(short level, short description, String message, Throwable cause) {
            recordAlertRaised(level, description, message);
        }

        @Override
        public void notifyAlertReceived(short level, short description) {
            LOG.debug("TLS alert received from client: {} {}", level, PskFailures.alertName(description));
        }
    }

    private final class KeyFileIdentityManager implements TlsPSKIdentityManager {
        @Override
        public byte[] getHint() {
            return null;
        }

        @Override
        public byte[] getPSK(byte[] identity) {
            String name = new String(identity, StandardCharsets.UTF_8);
            if (offeredIdentities.size() < 8) {
                offeredIdentities.add(name);
            }
            var key = serverKeys.key(name);
            if (key.isPresent()) {
                selectedIdentity = name;
                return key.get();
            }
            return null;
        }
    }
}
