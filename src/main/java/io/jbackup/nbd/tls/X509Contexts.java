package io.jbackup.nbd.tls;

import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import io.netty.handler.ssl.util.InsecureTrustManagerFactory;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.net.Socket;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLException;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.net.ssl.X509ExtendedTrustManager;

import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.openssl.PEMEncryptedKeyPair;
import org.bouncycastle.openssl.PEMException;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.pkcs.PKCS8EncryptedPrivateKeyInfo;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Netty {@link SslContext}s (JDK provider, TLS 1.3 and 1.2) for X.509 from a qemu-style credentials directory,
 * the layout qemu's {@code tls-creds-x509} object reads from {@code dir=}:
 * <pre>
 *   ca-cert.pem       CA certificate(s) that issued the peer's certificate (PEM, one or more)
 *   server-cert.pem   server certificate chain (PEM)                         - server side
 *   server-key.pem    server private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC) - server side
 *   client-cert.pem   client certificate chain (PEM)                         - client side, optional
 *   client-key.pem    client private key (PEM)                               - client side, optional
 * </pre>
 * <ul>
 *   <li>Client: with {@code verifyPeer} the server's certificate must chain to {@code ca-cert.pem} and match the
 *       expected host name (RFC 2818 / "HTTPS" endpoint identification against the subjectAltName); without it
 *       any certificate is accepted (testing only). {@code client-cert.pem} + {@code client-key.pem} are sent when
 *       present - qemu servers default to {@code verify-peer=on} and then require them.</li>
 *   <li>Server: presents {@code server-cert.pem}; with {@code verifyPeer} and a {@code ca-cert.pem}, requires a
 *       client certificate issued by it (like qemu's {@code verify-peer=on}).</li>
 * </ul>
 * Keys are read with BouncyCastle's {@link PEMParser}, so certtool/openssl output in any unencrypted PEM key
 * format works; encrypted keys are refused with a message. Files larger than 1 MiB are refused.
 */
public final class X509Contexts {
    private static final Logger LOG = LoggerFactory.getLogger(X509Contexts.class);

    public static final String CA_CERT = "ca-cert.pem";
    public static final String SERVER_CERT = "server-cert.pem";
    public static final String SERVER_KEY = "server-key.pem";
    public static final String CLIENT_CERT = "client-cert.pem";
    public static final String CLIENT_KEY = "client-key.pem";

    static final String[] PROTOCOLS = {"TLSv1.3", "TLSv1.2"};
    private static final int MAX_PEM_BYTES = 1 << 20;

    private static final String CLIENT_LAYOUT = "a client credentials directory holds " + CA_CERT
        + " (the CA that issued the server certificate) and optionally " + CLIENT_CERT + " + " + CLIENT_KEY;
    private static final String SERVER_LAYOUT = "a server credentials directory holds " + SERVER_CERT + ", "
        + SERVER_KEY + " and, to require client certificates, " + CA_CERT;

    private X509Contexts() {
    }

    /**
     * Client context. Host name verification is enabled (with {@code verifyPeer}); the expected name is given per
     * connection to {@link SslContext#newHandler(io.netty.buffer.ByteBufAllocator, String, int)}.
     */
    public static SslContext forClient(Path dir, boolean verifyPeer) throws NbdTlsException {
        requireDirectory(dir, CLIENT_LAYOUT);
        SslContextBuilder b = SslContextBuilder.forClient().sslProvider(SslProvider.JDK).protocols(PROTOCOLS);
        if (verifyPeer) {
            Path ca = require(dir, CA_CERT, CLIENT_LAYOUT + " (or use --tls-no-verify to skip verification)");
            b.trustManager(readCertificates(ca)).endpointIdentificationAlgorithm("HTTPS");
        } else {
            LOG.warn("TLS peer verification is off: the server's certificate is not checked");
            b.trustManager(InsecureTrustManagerFactory.INSTANCE).endpointIdentificationAlgorithm(null);
        }
        Path cert = dir.resolve(CLIENT_CERT);
        Path key = dir.resolve(CLIENT_KEY);
        boolean haveCert = Files.exists(cert);
        boolean haveKey = Files.exists(key);
        if (haveCert != haveKey) {
            throw new NbdTlsException("X.509 credentials directory " + dir + " has " + (haveCert ? CLIENT_CERT : CLIENT_KEY)
                + " but not " + (haveCert ? CLIENT_KEY : CLIENT_CERT) + "; " + CLIENT_LAYOUT);
        }
        if (haveCert) {
            b.keyManager(new AlwaysPresentKeyManager(readPrivateKey(key), readCertificates(cert)));
        }
        return build(b, dir);
    }

    /** Server context (see the class comment for when client certificates are required). */
    public static SslContext forServer(Path dir, boolean verifyPeer) throws NbdTlsException {
        requireDirectory(dir, SERVER_LAYOUT);
        Path cert = require(dir, SERVER_CERT, SERVER_LAYOUT);
        Path key = require(dir, SERVER_KEY, SERVER_LAYOUT);
        SslContextBuilder b = SslContextBuilder.forServer(readPrivateKey(key), readCertificates(cert))
            .sslProvider(SslProvider.JDK).protocols(PROTOCOLS);
        Path ca = dir.resolve(CA_CERT);
        if (verifyPeer && Files.exists(ca)) {
            b.trustManager(new UnnamedIssuers(pkix(readCertificates(ca), ca))).clientAuth(ClientAuth.REQUIRE);
        } else {
            LOG.info("TLS server in {} does not verify client certificates ({})", dir,
                verifyPeer ? "no " + CA_CERT : "peer verification off");
            b.clientAuth(ClientAuth.NONE);
        }
        return build(b, dir);
    }

    /** The JDK's PKIX trust manager for {@code cas}, read from {@code file}. */
    private static X509ExtendedTrustManager pkix(X509Certificate[] cas, Path file) throws NbdTlsException {
        try {
            KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
            store.load(null, null);
            for (int i = 0; i < cas.length; i++) {
                store.setCertificateEntry("ca" + i, cas[i]);
            }
            TrustManagerFactory f = TrustManagerFactory.getInstance("PKIX");
            f.init(store);
            for (TrustManager t : f.getTrustManagers()) {
                if (t instanceof X509ExtendedTrustManager x) {
                    return x;
                }
            }
            throw new NbdTlsException("the JDK has no X.509 trust manager for " + file);
        } catch (IOException | GeneralSecurityException e) {
            throw new NbdTlsException("cannot use the CA certificates in " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * Server trust manager that verifies client certificates as the JDK's does but names no CAs: the server's
     * CertificateRequest then carries no CA list (TLS 1.3: no certificate_authorities extension; TLS 1.2: an empty
     * list). A GnuTLS client (qemu, nbdcopy, nbdinfo) given a list presents its certificate only if GnuTLS's own
     * matching of issuer and key type passes, which on Java 25 (whose TLS 1.3 CertificateRequest no longer lists
     * PKCS#1 signature schemes) failed for RSA and EC credentials alike: the client sent an empty chain and the
     * handshake ended with "Empty client certificate chain". Without a list a client with one certificate sends it.
     */
    static final class UnnamedIssuers extends X509ExtendedTrustManager {
        private final X509ExtendedTrustManager delegate;

        UnnamedIssuers(X509ExtendedTrustManager delegate) {
            this.delegate = delegate;
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
            delegate.checkClientTrusted(chain, authType, socket);
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
            delegate.checkClientTrusted(chain, authType, engine);
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            delegate.checkClientTrusted(chain, authType);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
            checkServerTrusted(chain, authType);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
            checkServerTrusted(chain, authType);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            throw new CertificateException("this trust manager checks the clients of a server, not servers");
        }

        @Override
        public X509Certificate[] getAcceptedIssuers() {
            return new X509Certificate[0];
        }
    }

    /**
     * Client key manager that offers its one certificate whatever CAs the server names in its CertificateRequest.
     * The JDK's default sends no certificate when the issuer is not among them, which leaves the server with an
     * empty chain and the user with a misleading "no client certificate"; sending it lets the server report that
     * it does not trust it (and GnuTLS, like qemu's own client, sends it too).
     */
    static class AlwaysPresentKeyManager extends X509ExtendedKeyManager {
        private static final String ALIAS = "client";
        private final PrivateKey key;
        private final X509Certificate[] chain;

        AlwaysPresentKeyManager(PrivateKey key, X509Certificate[] chain) {
            this.key = key;
            this.chain = chain.clone();
        }

        private String aliasFor(String[] keyTypes) {
            String alg = key.getAlgorithm();
            for (String t : keyTypes) {
                if (t.equals(alg) || (alg.equals("RSA") && t.equals("RSASSA-PSS"))) {
                    return ALIAS;
                }
            }
            return null;
        }

        @Override
        public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
            return aliasFor(keyType);
        }

        @Override
        public String chooseEngineClientAlias(String[] keyType, Principal[] issuers, SSLEngine engine) {
            return aliasFor(keyType);
        }

        @Override
        public String[] getClientAliases(String keyType, Principal[] issuers) {
            return aliasFor(new String[] {keyType}) == null ? null : new String[] {ALIAS};
        }

        @Override
        public String[] getServerAliases(String keyType, Principal[] issuers) {
            return null;
        }

        @Override
        public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
            return null;
        }

        @Override
        public X509Certificate[] getCertificateChain(String alias) {
            return ALIAS.equals(alias) ? chain.clone() : null;
        }

        @Override
        public PrivateKey getPrivateKey(String alias) {
            return ALIAS.equals(alias) ? key : null;
        }
    }

    /** Whether a server built by {@link #forServer} from this directory requires client certificates. */
    public static boolean serverRequiresClientCert(Path dir, boolean verifyPeer) {
        return verifyPeer && Files.exists(dir.resolve(CA_CERT));
    }

    private static SslContext build(SslContextBuilder b, Path dir) throws NbdTlsException {
        try {
            return b.build();
        } catch (SSLException | IllegalArgumentException e) {
            throw new NbdTlsException("cannot set up TLS from X.509 credentials in " + dir + ": " + e.getMessage(), e);
        }
    }

    private static void requireDirectory(Path dir, String layout) throws NbdTlsException {
        if (!Files.isDirectory(dir)) {
            throw new NbdTlsException("X.509 credentials directory " + dir + " does not exist or is not a directory; "
                + layout);
        }
    }

    private static Path require(Path dir, String name, String layout) throws NbdTlsException {
        Path p = dir.resolve(name);
        if (!Files.isRegularFile(p)) {
            throw new NbdTlsException("X.509 credentials file " + p + " is missing; " + layout);
        }
        return p;
    }

    /** Reads one or more PEM certificates. */
    public static X509Certificate[] readCertificates(Path file) throws NbdTlsException {
        byte[] pem = readBounded(file);
        try {
            Collection<? extends Certificate> certs = CertificateFactory.getInstance("X.509")
                .generateCertificates(new ByteArrayInputStream(pem));
            List<X509Certificate> out = new ArrayList<>();
            for (Certificate c : certs) {
                out.add((X509Certificate) c);
            }
            if (out.isEmpty()) {
                throw new NbdTlsException("no PEM certificate (-----BEGIN CERTIFICATE-----) in " + file);
            }
            return out.toArray(new X509Certificate[0]);
        } catch (CertificateException | ClassCastException e) {
            throw new NbdTlsException("cannot read PEM certificate(s) from " + file + ": " + e.getMessage(), e);
        }
    }

    /** Reads an unencrypted PEM private key: PKCS#8, PKCS#1 RSA or SEC1 EC ("BEGIN EC PRIVATE KEY"). */
    public static PrivateKey readPrivateKey(Path file) throws NbdTlsException {
        byte[] pem = readBounded(file);
        try (PEMParser parser = new PEMParser(new InputStreamReader(new ByteArrayInputStream(pem),
            StandardCharsets.US_ASCII))) {
            JcaPEMKeyConverter converter = new JcaPEMKeyConverter();
            for (Object o; (o = parser.readObject()) != null; ) {
                if (o instanceof PEMKeyPair kp) {
                    return converter.getPrivateKey(kp.getPrivateKeyInfo());
                }
                if (o instanceof PrivateKeyInfo info) {
                    return converter.getPrivateKey(info);
                }
                if (o instanceof PKCS8EncryptedPrivateKeyInfo || o instanceof PEMEncryptedKeyPair) {
                    throw new NbdTlsException("private key " + file + " is encrypted; qemu and jbackup need an "
                        + "unencrypted key (e.g. certtool --generate-privkey without a password)");
                }
                // skip "EC PARAMETERS" blocks and the like
            }
            throw new NbdTlsException("no PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA/EC PRIVATE "
                + "KEY-----) in " + file);
        } catch (PEMException e) {
            throw new NbdTlsException("cannot read PEM private key from " + file + ": " + e.getMessage(), e);
        } catch (NbdTlsException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            throw new NbdTlsException("cannot read PEM private key from " + file + ": " + e, e);
        }
    }

    private static byte[] readBounded(Path file) throws NbdTlsException {
        try (InputStream in = Files.newInputStream(file)) {
            byte[] b = in.readNBytes(MAX_PEM_BYTES + 1);
            if (b.length > MAX_PEM_BYTES) {
                throw new NbdTlsException(file + " is larger than " + MAX_PEM_BYTES + " bytes; not a PEM file?");
            }
            return b;
        } catch (NoSuchFileException e) {
            throw new NbdTlsException("X.509 credentials file " + file + " is missing", e);
        } catch (IOException e) {
            throw new NbdTlsException("cannot read " + file + ": " + e, e);
        }
    }
}
