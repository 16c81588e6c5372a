package io.jbackup.nbd.tls;

import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.DecoderException;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslHandshakeCompletionEvent;

import java.io.IOException;
import java.nio.channels.ClosedChannelException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertPathBuilderException;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertificateExpiredException;
import java.security.cert.CertificateNotYetValidException;
import java.util.Locale;

import javax.net.ssl.SSLException;
import javax.net.ssl.SSLSession;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * X.509 TLS for a channel: when added, it inserts a netty {@link SslHandler} in front of itself and then
 * translates for the handlers behind it:
 * <ul>
 *   <li>{@link SslHandshakeCompletionEvent} becomes {@link TlsHandshakeCompletion} (the netty event is not passed on);</li>
 *   <li>{@link SSLException}s (also wrapped in {@link DecoderException}) become {@link NbdTlsException}s naming the
 *       credentials file to check; the failed completion event carries the same instance;</li>
 *   <li>I/O errors after a close was requested are dropped (peers like qemu-nbd drop the socket after
 *       {@code NBD_CMD_DISC} while close_notify is being sent).</li>
 * </ul>
 * Not {@code @Sharable}. Created by {@link NbdTls}.
 */
final class X509TlsHandler extends ChannelDuplexHandler {
    private static final Logger LOG = LoggerFactory.getLogger(X509TlsHandler.class);

    private final SslHandler ssl;
    private final boolean isClient;
    private final Path dir;
    private final String expectedHost;

    private boolean closeRequested;
    private boolean completed;
    private boolean handshakeOk;
    private boolean tls13;
    private boolean sawPlaintext;
    private boolean reportedRejection;
    private Throwable lastCause;
    private NbdTlsException lastTranslated;

    X509TlsHandler(SslHandler ssl, boolean isClient, Path dir, String expectedHost) {
        this.ssl = ssl;
        this.isClient = isClient;
        this.dir = dir;
        this.expectedHost = expectedHost;
    }

    /** The netty handler doing the work (e.g. to read the peer certificates from its engine's session). */
    SslHandler sslHandler() {
        return ssl;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        ctx.pipeline().addBefore(ctx.name(), null, ssl);
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
        if (evt instanceof SslHandshakeCompletionEvent e) {
            if (completed) {
                return;
            }
            completed = true;
            if (e.isSuccess()) {
                handshakeOk = true;
                SSLSession s = ssl.engine().getSession();
                tls13 = "TLSv1.3".equals(s.getProtocol());
                LOG.debug("{}: X.509 TLS handshake complete: {} {} peer {}", ctx.channel(), s.getProtocol(),
                    s.getCipherSuite(), peerName(s));
                ctx.fireUserEventTriggered(TlsHandshakeCompletion.succeeded(s.getProtocol(), s.getCipherSuite()));
            } else {
                ctx.fireUserEventTriggered(TlsHandshakeCompletion.failed(translate(e.cause())));
            }
            return;
        }
        super.userEventTriggered(ctx, evt);
    }

    private static String peerName(SSLSession s) {
        try {
            return s.getPeerPrincipal().getName();
        } catch (IOException e) {
            return "(no certificate)";
        }
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        sawPlaintext = true;
        ctx.fireChannelRead(msg);
    }

    /**
     * In TLS 1.3 the client finishes its handshake before the server has checked the client certificate; a
     * server that rejects it may just close the connection. Say so rather than leave a bare EOF.
     */
    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        if (rejectedAfterHandshake()) {
            ctx.fireExceptionCaught(rejection("closed the connection", null));
        }
        ctx.fireChannelInactive();
    }

    private boolean rejectedAfterHandshake() {
        return isClient && handshakeOk && tls13 && !sawPlaintext && !closeRequested && !reportedRejection;
    }

    private NbdTlsException rejection(String what, Throwable cause) {
        reportedRejection = true;
        Path cert = dir.resolve(X509Contexts.CLIENT_CERT);
        return new NbdTlsException("the server " + what + " right after the TLS handshake: it probably rejected "
            + (Files.exists(cert) ? "the client certificate " + cert + " (not issued by a CA it trusts?)"
            : "the connection because no client certificate was sent (put " + X509Contexts.CLIENT_CERT + " and "
            + X509Contexts.CLIENT_KEY + " into " + dir + ")"), cause);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        Throwable c = unwrap(cause);
        if (closeRequested && c instanceof IOException) {
            LOG.debug("{}: ignoring I/O error after close: {}", ctx.channel(), c.toString());
            return;
        }
        if (c instanceof SSLException) {
            reportedRejection = true;
            ctx.fireExceptionCaught(translate(c));
            return;
        }
        if (c instanceof IOException && rejectedAfterHandshake()) {
            ctx.fireExceptionCaught(rejection("reset the connection", c));
            return;
        }
        ctx.fireExceptionCaught(cause);
    }

    /*
     * write and flush are overridden (not inherited: ChannelDuplexHandler marks them @Skip) on purpose. A write
     * issued from outside the event loop picks its target context at call time; if this handler were skippable and
     * the SslHandler not yet inserted (handlerAdded still queued), the write would bypass TLS and go out in
     * plaintext. Being on the write path, this handler forwards it when it runs - after the SslHandler is in place.
     */
    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        ctx.write(msg, promise);
    }

    @Override
    public void flush(ChannelHandlerContext ctx) {
        ctx.flush();
    }

    @Override
    public void close(ChannelHandlerContext ctx, ChannelPromise promise) throws Exception {
        closeRequested = true;
        super.close(ctx, promise);
    }

    private static Throwable unwrap(Throwable t) {
        while (t instanceof DecoderException && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    /** The same failure is reported as event and as exception: translate it once. */
    private NbdTlsException translate(Throwable cause) {
        Throwable c = unwrap(cause);
        if (c instanceof NbdTlsException n) {
            return n;
        }
        if (c == lastCause && lastTranslated != null) {
            return lastTranslated;
        }
        lastCause = c;
        lastTranslated = describe(c);
        return lastTranslated;
    }

    NbdTlsException describe(Throwable c) {
        String msg = String.valueOf(c.getMessage()).replaceFirst("\\.$", "");
        String lower = msg.toLowerCase(Locale.ROOT);
        Path ca = dir.resolve(X509Contexts.CA_CERT);
        String self = isClient ? "client" : "server";
        String peer = isClient ? "server" : "client";
        if (has(c, CertificateExpiredException.class) || has(c, CertificateNotYetValidException.class)) {
            return new NbdTlsException(peer + " certificate is expired or not yet valid: " + msg, c);
        }
        if (has(c, CertPathBuilderException.class) || has(c, CertPathValidatorException.class)
            || lower.contains("pkix path")) {
            return new NbdTlsException(peer + " certificate not trusted by " + ca + ": " + msg, c);
        }
        if (lower.contains("no subject alternative") || lower.contains("no name matching")) {
            return new NbdTlsException("server certificate does not match host name '" + expectedHost + "': " + msg
                + "; use --tls-hostname to give the name the certificate was issued for", c);
        }
        if (lower.contains("empty client certificate chain") || lower.contains("empty certificate chain")
            || (!isClient && lower.contains("certificate_required"))) {
            return new NbdTlsException("the client sent no certificate, but " + ca + " makes this server require one "
                + "(the client needs " + X509Contexts.CLIENT_CERT + " and " + X509Contexts.CLIENT_KEY
                + " issued by that CA)", c);
        }
        if (lower.contains("received fatal alert")) {
            String alert = msg.substring(lower.indexOf("received fatal alert") + "received fatal alert".length())
                .replaceFirst("^[:\\s]+", "");
            if (isClient && isCertAlert(alert)) {
                Path cert = dir.resolve(X509Contexts.CLIENT_CERT);
                if (!Files.exists(cert)) {
                    return new NbdTlsException("the server rejected the connection (alert " + alert + "): it requires a "
                        + "client certificate and none was sent - put " + X509Contexts.CLIENT_CERT + " and "
                        + X509Contexts.CLIENT_KEY + " (issued by the server's CA) into " + dir, c);
                }
                return new NbdTlsException("the server rejected the client certificate " + cert + " (alert " + alert
                    + "): it is not issued by a CA the server trusts, or not valid for client authentication", c);
            }
            if (!isClient && isServerCertAlert(alert)) {
                return new NbdTlsException("the client rejected this server's certificate "
                    + dir.resolve(X509Contexts.SERVER_CERT) + " (alert " + alert + "): it is not issued by the "
                    + "client's CA, or does not name the host the client connected to", c);
            }
            if (!isClient && !handshakeOk) {
                return new NbdTlsException("TLS handshake rejected by the client (alert " + alert + "); is the client "
                    + "using TLS-PSK? this server uses X.509 certificates from " + dir, c);
            }
            return new NbdTlsException("TLS handshake rejected by the " + peer + " (alert " + alert + "): " + msg, c);
        }
        if (c instanceof ClosedChannelException || has(c, java.net.SocketException.class)
            || has(c, ClosedChannelException.class) || lower.contains("connection closed")
            || lower.contains("closed while") || lower.contains("failure when writing tls control frames")) {
            return new NbdTlsException("connection closed during the TLS handshake; the " + peer
                + " may not accept this " + self + "'s credentials (" + dir + ") or may expect TLS-PSK", c);
        }
        if (lower.contains("no appropriate protocol") || lower.contains("no cipher suites in common")) {
            return new NbdTlsException("no common TLS version or cipher suite with the " + peer + ": " + msg
                + " (is the " + peer + " using TLS-PSK? this " + self + " uses X.509 certificates from " + dir + ")", c);
        }
        if (!handshakeOk) {
            return new NbdTlsException("TLS handshake with the " + peer + " failed: " + msg, c);
        }
        return new NbdTlsException("TLS connection failed: " + msg, c);
    }

    private static boolean isCertAlert(String alert) {
        String a = alert.toLowerCase(Locale.ROOT);
        return a.contains("certificate") || a.contains("unknown_ca") || a.contains("access_denied")
            || a.contains("bad_certificate") || a.contains("decrypt_error") || a.contains("handshake_failure");
    }

    private static boolean isServerCertAlert(String alert) {
        String a = alert.toLowerCase(Locale.ROOT);
        return a.contains("certificate") || a.contains("unknown_ca");
    }

    private static boolean has(Throwable t, Class<? extends Throwable> type) {
        for (int i = 0; t != null && i < 16; i++, t = t.getCause()) {
            if (type.isInstance(t)) {
                return true;
            }
        }
        return false;
    }
}
