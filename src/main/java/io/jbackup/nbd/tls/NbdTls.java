package io.jbackup.nbd.tls;

import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.ChannelHandler;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslHandler;

import java.util.Objects;

/**
 * The one entry point the NBD client and server use for TLS: turns a {@link TlsConfig} into netty handlers that
 * speak TLS-PSK ({@link BcTlsHandler}, BouncyCastle) or X.509 (netty {@link SslHandler}, JDK provider, see
 * {@link X509Contexts}). Both kinds report the end of the handshake with the same user event,
 * {@link TlsHandshakeCompletion}, and failures as {@link NbdTlsException}. This package knows nothing about NBD
 * negotiation; the sequences below are the contract with the code that does.
 *
 * <h2>Client (after {@code NBD_OPT_STARTTLS})</h2>
 * <pre>{@code
 * NbdTls.ClientTls tls = NbdTls.client(cfg);            // once, up front: loads and checks the files
 * ...plaintext: greeting, client flags, send NBD_OPT_STARTTLS...
 * // in channelRead (event loop), having decoded the NBD_REP_ACK for STARTTLS
 * //   and with no bytes left over in the decoder's cumulation:
 * ctx.pipeline().addFirst(NbdTls.HANDLER_NAME, tls.newHandler(ctx.alloc(), host, port)); // host: null for unix sockets
 * // the ClientHello goes out immediately. Writes made from now on are plaintext NBD messages: they are
 * // queued until the handshake completes, so NBD_OPT_GO may be written right away or on the event:
 * public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
 *     if (evt instanceof TlsHandshakeCompletion c) {
 *         if (c.success()) { ...continue negotiation (NBD_OPT_GO)... }
 *         else { fail(c.cause()); }          // NbdTlsException; the channel is being closed
 *     } else ctx.fireUserEventTriggered(evt);
 * }
 * }</pre>
 *
 * <h2>Server (on receiving {@code NBD_OPT_STARTTLS})</h2>
 * <pre>{@code
 * NbdTls.ServerTls tls = NbdTls.server(cfg);            // once, at server start
 * // in channelRead (event loop), for NBD_OPT_STARTTLS with no data:
 * ctx.writeAndFlush(ackReply);                          // plaintext NBD_REP_ACK ...
 * ctx.pipeline().addFirst(NbdTls.HANDLER_NAME, tls.newHandler(ctx.alloc()));   // ... then TLS, same call
 * // wait for TlsHandshakeCompletion as above, then read the options that follow (now decrypted).
 * }</pre>
 * Adding the handler right after {@code writeAndFlush} in the same event-loop call is safe: the ACK has already
 * passed every outbound handler in front of the caller and sits in the channel's outbound buffer, which the TLS
 * handler never touches (it must not pass through a handler that defers writes, e.g. a
 * {@code FlushConsolidationHandler}, placed in front of the NBD handler). Adding it in the write's listener works
 * too. Either way the handler does not use netty's {@code startTls} mode: every write made after it was added is
 * encrypted.
 *
 * <h2>Pipeline shape</h2>
 * The PSK handler is a single {@link BcTlsHandler}. The X.509 handler, once added, inserts netty's
 * {@link SslHandler} in front of itself (under a generated name) and stays behind it to translate events and
 * exceptions; so do not assume {@code pipeline.first()} is the handler you added, and do not remove either.
 * Writes issued from any thread after {@code addFirst} returned are encrypted (or queued until the handshake
 * completes), never sent in plaintext.
 *
 * <h2>Errors</h2>
 * Loading ({@link #client}, {@link #server}) throws {@link NbdTlsException} for missing or malformed files and a
 * missing PSK identity, naming the file and the expected layout. During the connection, failures are delivered
 * to the handlers behind the TLS handler as a failed {@link TlsHandshakeCompletion} (during the handshake, once)
 * and as {@code exceptionCaught(NbdTlsException)}, and the channel is closed. If the connection just closes
 * during the handshake only the failed event is delivered. I/O errors after {@code close()} are dropped.
 * <p>With X.509 over TLS 1.3 the client's handshake completes before the server has checked the client
 * certificate. A server that rejects it (qemu-nbd with {@code verify-peer=on}) then sends an alert or just closes
 * the connection: the client gets a successful {@link TlsHandshakeCompletion} followed by
 * {@code exceptionCaught(NbdTlsException)} naming the client certificate (delivered before
 * {@code channelInactive}) instead of the reply to its first option.
 */
public final class NbdTls {
    /** Suggested pipeline name for the TLS handler. */
    public static final String HANDLER_NAME = "tls";
    /** PSK identity used when {@link TlsConfig#pskUser()} is null, as in qemu. */
    public static final String DEFAULT_PSK_USER = "qemu";
    /** Host name verified for X.509 when neither {@link TlsConfig#hostname()} nor a peer host is known. */
    public static final String DEFAULT_HOSTNAME = "localhost";
    /** Handshake timeout of the handlers created here. */
    public static final long HANDSHAKE_TIMEOUT_MILLIS = BcTlsHandler.DEFAULT_HANDSHAKE_TIMEOUT_MILLIS;

    private NbdTls() {
    }

    /** Loads the client credentials and returns a new handler; see {@link ClientTls#newHandler}. */
    public static ChannelHandler newClientHandler(TlsConfig cfg, ByteBufAllocator alloc, String peerHost, int peerPort)
        throws NbdTlsException {
        return client(cfg).newHandler(alloc, peerHost, peerPort);
    }

    /** Loads the server credentials and returns a new handler; see {@link ServerTls#newHandler}. */
    public static ChannelHandler newServerHandler(TlsConfig cfg, ByteBufAllocator alloc) throws NbdTlsException {
        return server(cfg).newHandler(alloc);
    }

    /**
     * Loads and validates client credentials: the PSK file and the identity in it, or the X.509 directory
     * ({@code ca-cert.pem} unless verification is off; {@code client-cert.pem}/{@code client-key.pem} as a pair).
     *
     * @throws IllegalArgumentException if TLS is off in {@code cfg}
     */
    public static ClientTls client(TlsConfig cfg) throws NbdTlsException {
        requireEnabled(cfg);
        if (cfg.isPsk()) {
            PskKeyFile keys = PskKeyFile.load(cfg.pskFile());
            String user = cfg.pskUser() == null ? DEFAULT_PSK_USER : cfg.pskUser();
            byte[] key = keys.key(user).orElseThrow(() -> new NbdTlsException("PSK identity '"
                + PskFailures.printable(user) + "' is not in " + cfg.pskFile() + (keys.identities().isEmpty()
                ? " (the file has no entries)" : " (it has: " + String.join(", ", keys.identities()) + ")")
                + "; use --tls-username to pick one or add a line '" + user + ":HEXKEY'"));
            return new ClientTls(cfg, null, user, key);
        }
        return new ClientTls(cfg, X509Contexts.forClient(cfg.x509Dir(), cfg.verifyPeer()), null, null);
    }

    /**
     * Loads and validates server credentials: the PSK file (any identity in it is accepted), or the X.509
     * directory ({@code server-cert.pem}, {@code server-key.pem}, and {@code ca-cert.pem} to require client
     * certificates when {@link TlsConfig#verifyPeer()}).
     *
     * @throws IllegalArgumentException if TLS is off in {@code cfg}
     */
    public static ServerTls server(TlsConfig cfg) throws NbdTlsException {
        requireEnabled(cfg);
        if (cfg.isPsk()) {
            PskKeyFile keys = PskKeyFile.load(cfg.pskFile());
            if (keys.identities().isEmpty()) {
                throw new NbdTlsException("PSK key file " + cfg.pskFile() + " has no entries; add lines "
                    + "username:hexkey (psktool -u NAME -p " + cfg.pskFile() + ")");
            }
            return new ServerTls(cfg, keys, null);
        }
        return new ServerTls(cfg, null, X509Contexts.forServer(cfg.x509Dir(), cfg.verifyPeer()));
    }

    private static void requireEnabled(TlsConfig cfg) {
        Objects.requireNonNull(cfg, "cfg");
        if (!cfg.enabled()) {
            throw new IllegalArgumentException("TLS is off in this configuration; do not send or accept STARTTLS");
        }
    }

    /** The host name an X.509 client verifies: the configured one, else the peer host, else localhost. */
    static String expectedHost(TlsConfig cfg, String peerHost) {
        String h = cfg.hostname();
        if (h == null || h.isBlank()) {
            h = peerHost;
        }
        if (h == null || h.isBlank()) {
            return DEFAULT_HOSTNAME;
        }
        if (h.startsWith("[") && h.endsWith("]")) {
            h = h.substring(1, h.length() - 1); // IPv6 literal from a URI
        }
        return h;
    }

    /** Loaded client credentials; makes one handler per connection. Thread-safe. */
    public static final class ClientTls {
        private final TlsConfig cfg;
        private final SslContext x509;
        private final String pskUser;
        private final byte[] pskKey;

        private ClientTls(TlsConfig cfg, SslContext x509, String pskUser, byte[] pskKey) {
            this.cfg = cfg;
            this.x509 = x509;
            this.pskUser = pskUser;
            this.pskKey = pskKey;
        }

        /**
         * A new client TLS handler for one connection; add it with {@code pipeline.addFirst} once the server
         * acknowledged STARTTLS.
         *
         * @param peerHost the host from the URI, or null for a unix socket; the X.509 certificate is checked
         *                 against {@link TlsConfig#hostname()} if set, else this, else {@code localhost}
         * @param peerPort the TCP port, or -1 for a unix socket (only used for TLS session caching)
         */
        public ChannelHandler newHandler(ByteBufAllocator alloc, String peerHost, int peerPort) {
            if (x509 == null) {
                return BcTlsHandler.pskClient(pskUser, pskKey, cfg.pskFile(), TlsVersions.TLS_1_3_AND_1_2,
                    HANDSHAKE_TIMEOUT_MILLIS);
            }
            String host = expectedHost(cfg, peerHost);
            SslHandler ssl = x509.newHandler(alloc, host, Math.max(peerPort, 0));
            ssl.setHandshakeTimeoutMillis(HANDSHAKE_TIMEOUT_MILLIS);
            return new X509TlsHandler(ssl, true, cfg.x509Dir(), host);
        }

        /** "TLS-PSK identity 'x' from FILE" or "X.509 from DIR", for logs. */
        public String description() {
            return x509 == null ? "TLS-PSK identity '" + pskUser + "' from " + cfg.pskFile()
                : "X.509 from " + cfg.x509Dir() + (cfg.verifyPeer() ? "" : " (peer not verified)");
        }

        @Override
        public String toString() {
            return "ClientTls[" + description() + "]";
        }
    }

    /** Loaded server credentials; makes one handler per connection. Thread-safe. */
    public static final class ServerTls {
        private final TlsConfig cfg;
        private final PskKeyFile keys;
        private final SslContext x509;

        private ServerTls(TlsConfig cfg, PskKeyFile keys, SslContext x509) {
            this.cfg = cfg;
            this.keys = keys;
            this.x509 = x509;
        }

        /** A new server TLS handler for one connection; add it right after writing the STARTTLS ACK. */
        public ChannelHandler newHandler(ByteBufAllocator alloc) {
            if (x509 == null) {
                return BcTlsHandler.pskServer(keys, TlsVersions.TLS_1_3_AND_1_2, HANDSHAKE_TIMEOUT_MILLIS);
            }
            SslHandler ssl = x509.newHandler(alloc);
            ssl.setHandshakeTimeoutMillis(HANDSHAKE_TIMEOUT_MILLIS);
            return new X509TlsHandler(ssl, false, cfg.x509Dir(), null);
        }

        /** Whether connections must present a client certificate (X.509 with verification and a CA). */
        public boolean requiresClientCertificate() {
            return x509 != null && X509Contexts.serverRequiresClientCert(cfg.x509Dir(), cfg.verifyPeer());
        }

        /** "TLS-PSK, N identities from FILE" or "X.509 from DIR", for logs. */
        public String description() {
            return x509 == null ? "TLS-PSK, " + keys.identities().size() + " identities from " + cfg.pskFile()
                : "X.509 from " + cfg.x509Dir() + (requiresClientCertificate() ? ", client certificates required" : "");
        }

        @Override
        public String toString() {
            return "ServerTls[" + description() + "]";
        }
    }
}
