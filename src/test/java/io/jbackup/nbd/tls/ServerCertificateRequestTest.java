package io.jbackup.nbd.tls;

import io.jbackup.testutil.TlsFixtures;
import io.netty.buffer.ByteBufAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;

import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult.HandshakeStatus;
import javax.net.ssl.SSLException;
import javax.net.ssl.TrustManagerFactory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CertificateRequest of jbackup's X.509 server names no CAs ({@link X509Contexts.UnnamedIssuers}): a client
 * with one certificate then presents it, and the server verifies it against its CA. Checked on the handshake
 * itself, in memory, with a JDK client that records the CA names it is offered, for RSA and EC credentials and both
 * TLS versions the server speaks; a client certificate from another CA is still refused.
 */
class ServerCertificateRequestTest {
    @TempDir
    Path tmp;

    /** The client's key manager, recording the CA names of every CertificateRequest. */
    private static final class RecordingKeyManager extends X509Contexts.AlwaysPresentKeyManager {
        final List<Principal[]> offered = new ArrayList<>();

        RecordingKeyManager(PrivateKey key, X509Certificate[] chain) {
            super(key, chain);
        }

        @Override
        public String chooseEngineClientAlias(String[] keyType, Principal[] issuers, SSLEngine engine) {
            offered.add(issuers);
            return super.chooseEngineClientAlias(keyType, issuers, engine);
        }

        @Override
        public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
            offered.add(issuers);
            return super.chooseClientAlias(keyType, issuers, socket);
        }
    }

    @Test
    void theServerAsksForAClientCertificateWithoutNamingCas() throws Exception {
        for (TlsFixtures.KeyType type : new TlsFixtures.KeyType[] {TlsFixtures.KeyType.RSA_2048,
            TlsFixtures.KeyType.EC_P256}) {
            for (String protocol : X509Contexts.PROTOCOLS) {
                String what = type + " over " + protocol;
                TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp.resolve(type + "-" + protocol), type,
                    TlsFixtures.KeyFormat.PKCS8);
                SSLEngine server = X509Contexts.forServer(creds.serverDir(), true).newEngine(ByteBufAllocator.DEFAULT);

                RecordingKeyManager keys = keys(creds.clientDir());
                SSLEngine engine = client(keys, creds.caCert(), protocol);
                handshake(engine, server);
                assertEquals(protocol, engine.getSession().getProtocol(), what);
                assertEquals(1, keys.offered.size(), what + ": one CertificateRequest");
                Principal[] cas = keys.offered.get(0);
                assertTrue(cas == null || cas.length == 0, what + ": the server named CAs: " + (cas == null ? null
                    : java.util.Arrays.toString(cas)));
                X509Certificate presented = (X509Certificate) server.getSession().getPeerCertificates()[0];
                assertEquals("CN=jbackup test client", presented.getSubjectX500Principal().getName(), what);
            }
        }
    }

    @Test
    void aClientCertificateOfAnotherCaIsStillRefused() throws Exception {
        TlsFixtures.X509Creds ours = TlsFixtures.x509(tmp.resolve("ours"));
        TlsFixtures.X509Creds theirs = TlsFixtures.x509(tmp.resolve("theirs"));
        for (String protocol : X509Contexts.PROTOCOLS) {
            SSLEngine server = X509Contexts.forServer(ours.serverDir(), true).newEngine(ByteBufAllocator.DEFAULT);
            // trusts our server, presents a certificate our CA did not issue
            SSLEngine engine = client(keys(theirs.clientDir()), ours.caCert(), protocol);
            assertThrows(SSLException.class, () -> handshake(engine, server), protocol);
        }
    }

    private static RecordingKeyManager keys(Path clientDir) throws Exception {
        return new RecordingKeyManager(X509Contexts.readPrivateKey(clientDir.resolve(X509Contexts.CLIENT_KEY)),
            X509Contexts.readCertificates(clientDir.resolve(X509Contexts.CLIENT_CERT)));
    }

    /** A JDK client engine presenting {@code keys}'s certificate, trusting {@code caCert}, speaking {@code protocol}. */
    private static SSLEngine client(RecordingKeyManager keys, Path caCert, String protocol) throws Exception {
        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        trust.setCertificateEntry("ca", X509Contexts.readCertificates(caCert)[0]);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(new javax.net.ssl.KeyManager[] {keys}, tmf.getTrustManagers(), null);
        SSLEngine engine = ctx.createSSLEngine("localhost", 10809);
        engine.setUseClientMode(true);
        engine.setEnabledProtocols(new String[] {protocol});
        return engine;
    }

    /** Runs both engines' handshakes against each other in memory, to the end. */
    private static void handshake(SSLEngine client, SSLEngine server) throws Exception {
        int packet = Math.max(client.getSession().getPacketBufferSize(), server.getSession().getPacketBufferSize());
        ByteBuffer toServer = ByteBuffer.allocate(4 * packet);
        ByteBuffer toClient = ByteBuffer.allocate(4 * packet);
        client.beginHandshake();
        server.beginHandshake();
        for (int i = 0; i < 200; i++) {
            boolean progress = step(client, toServer, toClient) | step(server, toClient, toServer);
            if (client.getHandshakeStatus() == HandshakeStatus.NOT_HANDSHAKING
                && server.getHandshakeStatus() == HandshakeStatus.NOT_HANDSHAKING) {
                return;
            }
            if (!progress) {
                throw new SSLException("handshake stalled: client " + client.getHandshakeStatus() + ", server "
                    + server.getHandshakeStatus());
            }
        }
        throw new SSLException("handshake did not finish");
    }

    /** One step of {@code e}: wraps into {@code out} or unwraps from {@code in}; whether anything happened. */
    private static boolean step(SSLEngine e, ByteBuffer out, ByteBuffer in) throws SSLException {
        ByteBuffer app = ByteBuffer.allocate(e.getSession().getApplicationBufferSize());
        switch (e.getHandshakeStatus()) {
            case NEED_TASK -> {
                Runnable r;
                while ((r = e.getDelegatedTask()) != null) {
                    r.run();
                }
                return true;
            }
            case NEED_WRAP -> {
                e.wrap(ByteBuffer.allocate(0), out);
                return true;
            }
            case NEED_UNWRAP, NEED_UNWRAP_AGAIN -> {
                in.flip();
                int consumed = e.unwrap(in, app).bytesConsumed();
                in.compact();
                return consumed > 0;
            }
            default -> {
                return false;
            }
        }
    }
}
