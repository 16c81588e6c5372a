package io.jbackup.testutil;

import io.jbackup.nbd.tls.PskKeyFile;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;

import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.openssl.jcajce.JcaPKCS8Generator;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * TLS credentials for tests, generated with BouncyCastle (no external tools), in the layouts qemu reads:
 * a PSK directory with {@code keys.psk}, and X.509 directories
 * {@code server/ (ca-cert.pem, server-cert.pem, server-key.pem)} and
 * {@code client/ (ca-cert.pem, client-cert.pem, client-key.pem)} issued by one fresh CA.
 * The server certificate has subjectAltName DNS:localhost, IP:127.0.0.1 and IP:::1. Certificates carry the
 * extensions qemu checks when loading (basicConstraints, keyUsage digitalSignature+keyEncipherment, extended
 * key usage serverAuth/clientAuth), so qemu-nbd 7.2 / GnuTLS accepts them.
 */
public final class TlsFixtures {
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final Provider BC = new BouncyCastleProvider();

    private TlsFixtures() {
    }

    /** A PSK directory (qemu {@code tls-creds-psk} dir) holding {@code keys.psk} with one entry. */
    public record PskCreds(Path dir, Path keysFile, String user, byte[] key) {
    }

    /** Key algorithm for X.509 fixtures. */
    public enum KeyType { EC_P256, RSA_2048 }

    /**
     * PEM encoding of private keys: {@code PKCS8} ("BEGIN PRIVATE KEY", what certtool writes) or
     * {@code TRADITIONAL} ("BEGIN RSA PRIVATE KEY" / "BEGIN EC PRIVATE KEY", what openssl genrsa writes).
     */
    public enum KeyFormat { PKCS8, TRADITIONAL }

    /** X.509 credentials: a server and a client directory sharing one CA. */
    public record X509Creds(Path serverDir, Path clientDir, Path caCert) {
    }

    /** {@code dir/keys.psk} with {@code user} and a random 32-byte key; creates {@code dir}. */
    public static PskCreds psk(Path dir, String user) {
        byte[] key = new byte[32];
        RANDOM.nextBytes(key);
        return psk(dir, user, key);
    }

    /** {@code dir/keys.psk} with {@code user:hex(key)}; creates {@code dir}. */
    public static PskCreds psk(Path dir, String user, byte[] key) {
        try {
            Files.createDirectories(dir);
            Path f = dir.resolve("keys.psk");
            PskKeyFile.write(f, user, key);
            return new PskCreds(dir, f, user, key.clone());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** EC P-256 credentials with PKCS#8 keys under {@code root/server} and {@code root/client}. */
    public static X509Creds x509(Path root) {
        return x509(root, KeyType.EC_P256, KeyFormat.PKCS8);
    }

    /** X.509 credentials under {@code root/server} and {@code root/client}. */
    public static X509Creds x509(Path root, KeyType type, KeyFormat format) {
        try {
            Path server = Files.createDirectories(root.resolve("server"));
            Path client = Files.createDirectories(root.resolve("client"));
            KeyPair caKeys = generate(type);
            X500Name caName = new X500Name("CN=jbackup test CA " + Long.toHexString(RANDOM.nextLong()));
            X509Certificate ca = issue(caName, caKeys, caName, caKeys.getPrivate(), type, Role.CA);

            KeyPair serverKeys = generate(type);
            X509Certificate serverCert = issue(new X500Name("CN=localhost"), serverKeys, caName,
                caKeys.getPrivate(), type, Role.SERVER);
            KeyPair clientKeys = generate(type);
            X509Certificate clientCert = issue(new X500Name("CN=jbackup test client"), clientKeys, caName,
                caKeys.getPrivate(), type, Role.CLIENT);

            for (Path d : new Path[] {server, client}) {
                writePem(d.resolve("ca-cert.pem"), ca);
            }
            writePem(server.resolve("server-cert.pem"), serverCert);
            writeKey(server.resolve("server-key.pem"), serverKeys.getPrivate(), format);
            writePem(client.resolve("client-cert.pem"), clientCert);
            writeKey(client.resolve("client-key.pem"), clientKeys.getPrivate(), format);
            return new X509Creds(server, client, server.resolve("ca-cert.pem"));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (GeneralSecurityException | OperatorCreationException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Copies the named files from {@code from} into {@code to} (created if needed); returns {@code to}. */
    public static Path copy(Path from, Path to, String... names) {
        try {
            Files.createDirectories(to);
            for (String n : names) {
                Files.copy(from.resolve(n), to.resolve(n), StandardCopyOption.REPLACE_EXISTING);
            }
            return to;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private enum Role { CA, SERVER, CLIENT }

    private static KeyPair generate(KeyType type) throws GeneralSecurityException {
        if (type == KeyType.EC_P256) {
            // BouncyCastle's encoding keeps the curve and public key inside ECPrivateKey; GnuTLS 3.7 needs them
            // ("ASN1 parser: Element was not found" for the JDK's minimal encoding)
            KeyPairGenerator g = KeyPairGenerator.getInstance("EC", BC);
            g.initialize(new ECGenParameterSpec("secp256r1"), RANDOM);
            return g.generateKeyPair();
        }
        KeyPairGenerator g = KeyPairGenerator.getInstance("RSA");
        g.initialize(2048, RANDOM);
        return g.generateKeyPair();
    }

    private static X509Certificate issue(X500Name subject, KeyPair subjectKeys, X500Name issuer, PrivateKey issuerKey,
                                         KeyType type, Role role)
        throws IOException, GeneralSecurityException, OperatorCreationException {
        Instant now = Instant.now();
        X509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(issuer, new BigInteger(64, RANDOM).add(BigInteger.ONE),
            Date.from(now.minus(Duration.ofHours(1))), Date.from(now.plus(Duration.ofDays(365))), subject,
            subjectKeys.getPublic());
        JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
        b.addExtension(Extension.subjectKeyIdentifier, false, ext.createSubjectKeyIdentifier(subjectKeys.getPublic()));
        switch (role) {
            case CA -> {
                b.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
                b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
            }
            case SERVER, CLIENT -> {
                b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
                b.addExtension(Extension.keyUsage, true,
                    new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyEncipherment));
                b.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(
                    role == Role.SERVER ? KeyPurposeId.id_kp_serverAuth : KeyPurposeId.id_kp_clientAuth));
                if (role == Role.SERVER) {
                    b.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(new GeneralName[] {
                        new GeneralName(GeneralName.dNSName, "localhost"),
                        new GeneralName(GeneralName.iPAddress, "127.0.0.1"),
                        new GeneralName(GeneralName.iPAddress, "::1"),
                    }));
                }
            }
        }
        String alg = type == KeyType.EC_P256 ? "SHA256withECDSA" : "SHA256withRSA";
        return new JcaX509CertificateConverter().getCertificate(b.build(new JcaContentSignerBuilder(alg).build(issuerKey)));
    }

    private static void writePem(Path file, Object obj) throws IOException {
        try (Writer w = Files.newBufferedWriter(file, StandardCharsets.US_ASCII); JcaPEMWriter pem = new JcaPEMWriter(w)) {
            pem.writeObject(obj);
        }
    }

    private static void writeKey(Path file, PrivateKey key, KeyFormat format) throws IOException {
        Files.deleteIfExists(file);
        Files.createFile(file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        try (Writer w = Files.newBufferedWriter(file, StandardCharsets.US_ASCII); JcaPEMWriter pem = new JcaPEMWriter(w)) {
            if (format == KeyFormat.PKCS8) {
                pem.writeObject(new JcaPKCS8Generator(key, null));
            } else {
                pem.writeObject(key);
            }
        }
    }
}
