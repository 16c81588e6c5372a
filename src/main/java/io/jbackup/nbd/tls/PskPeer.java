package io.jbackup.nbd.tls;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Vector;

import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.AlertLevel;
import org.bouncycastle.tls.BasicTlsPSKExternal;
import org.bouncycastle.tls.BasicTlsPSKIdentity;
import org.bouncycastle.tls.CertificateRequest;
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

/**
 * The BouncyCastle end of one TLS-PSK connection of {@link BcTlsHandler}: the non-blocking {@link TlsClientProtocol}
 * or {@link TlsServerProtocol} with its {@link PSKTlsClient} (one identity and key) or {@link PSKTlsServer} (any
 * identity in a {@link PskKeyFile}), and what the handshake learned on the way - identities offered and selected, a
 * certificate where a key was expected, the fatal alert raised, the negotiated protocol and suite - as
 * {@link PskFailures.Facts} for failure messages and for the handler's accessors. No netty here.
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
 *       used is {@link #identity()} after the handshake. At most 8 offered identities are remembered.</li>
 * </ul>
 *
 * <p>Logs (alerts raised and received) go to the logger it is given, the handler's. Not thread-safe: used on the
 * handler's event loop; the identity, protocol and suite may be read from any thread.
 */
final class PskPeer {
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final int MAX_REMEMBERED_IDENTITIES = 8;

    private final Logger log;
    private final boolean client;
    private final TlsVersions versions;
    private final TlsProtocol protocol;
    private final TlsCrypto crypto = new BcTlsCrypto(RANDOM);

    // client side
    private final String clientIdentity;
    private final byte[] clientKey;
    private final Path keySource;
    // server side
    private final PskKeyFile serverKeys;
    private final List<String> offeredIdentities = new ArrayList<>(2);

    private boolean completed;
    private volatile String selectedIdentity;
    private volatile String protocolName;
    private volatile String suiteName;
    private short alertRaised = -1;
    private String alertRaisedMessage;
    private boolean serverSentCertificate;

    private PskPeer(Logger log, boolean client, TlsVersions versions, String clientIdentity, byte[] clientKey,
                    Path keySource, PskKeyFile serverKeys) {
        this.log = log;
        this.client = client;
        this.versions = Objects.requireNonNull(versions, "versions");
        this.clientIdentity = clientIdentity;
        this.clientKey = clientKey;
        this.keySource = keySource;
        this.serverKeys = serverKeys;
        this.protocol = client ? new TlsClientProtocol() : new TlsServerProtocol();
    }

    /** A client presenting {@code identity} with {@code key} (not copied); {@code keySource} is named in messages. */
    static PskPeer client(Logger log, TlsVersions versions, String identity, byte[] key, Path keySource) {
        return new PskPeer(log, true, versions, identity, key, keySource, null);
    }

    /** A server accepting any identity in {@code keys}. */
    static PskPeer server(Logger log, TlsVersions versions, PskKeyFile keys) {
        return new PskPeer(log, false, versions, null, null, keys.file(), keys);
    }

    /** The BouncyCastle protocol engine the handler feeds. */
    TlsProtocol protocol() {
        return protocol;
    }

    /** Starts the handshake: a client queues its ClientHello, a server waits for one. */
    void start() throws IOException {
        if (client) {
            ((TlsClientProtocol) protocol).connect(new Client());
        } else {
            ((TlsServerProtocol) protocol).accept(new Server());
        }
    }

    /** Whether BouncyCastle reported the handshake complete (protocol and suite are known from then on). */
    boolean completed() {
        return completed;
    }

    /** The PSK identity in use (client: the configured one; server: the client's, once known). */
    String identity() {
        return client ? clientIdentity : selectedIdentity;
    }

    String protocolName() {
        return protocolName;
    }

    String suiteName() {
        return suiteName;
    }

    /** What the handshake has learned, for {@link PskFailures}. */
    PskFailures.Facts facts(boolean handshakeDone) {
        return new PskFailures.Facts(client, handshakeDone, serverSentCertificate, clientIdentity, keySource,
            List.copyOf(offeredIdentities), selectedIdentity, alertRaised, alertRaisedMessage);
    }

    private void recordCompletion(TlsContext context) {
        ProtocolVersion v = context.getServerVersion();
        protocolName = ProtocolVersion.TLSv13.equals(v) ? "TLSv1.3"
            : ProtocolVersion.TLSv12.equals(v) ? "TLSv1.2" : String.valueOf(v);
        int suite = context.getSecurityParametersConnection().getCipherSuite();
        suiteName = PskFailures.suiteName(suite);
        completed = true;
    }

    private void recordAlertRaised(short level, short description, String message) {
        if (level == AlertLevel.fatal) {
            alertRaised = description;
            alertRaisedMessage = message;
            log.debug("TLS alert raised: {} {}", PskFailures.alertName(description), message);
        }
    }

    /** Server: the key for an identity the client offered, remembering the offer and the selection; else null. */
    private byte[] serverKey(byte[] identity) {
        String name = new String(identity, StandardCharsets.UTF_8);
        if (offeredIdentities.size() < MAX_REMEMBERED_IDENTITIES) {
            offeredIdentities.add(name);
        }
        var key = serverKeys.key(name);
        if (key.isPresent()) {
            selectedIdentity = name;
            return key.get();
        }
        return null;
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
            log.debug("TLS alert received from server: {} {}", level, PskFailures.alertName(description));
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
                byte[] key = serverKey(id);
                if (key != null) {
                    return new BasicTlsPSKExternal(id, getCrypto().createSecret(key), PRFAlgorithm.tls13_hkdf_sha256);
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
            log.debug("TLS alert received from client: {} {}", level, PskFailures.alertName(description));
        }
    }

    private final class KeyFileIdentityManager implements TlsPSKIdentityManager {
        @Override
        public byte[] getHint() {
            return null;
        }

        @Override
        public byte[] getPSK(byte[] identity) {
            return serverKey(identity);
        }
    }
}
