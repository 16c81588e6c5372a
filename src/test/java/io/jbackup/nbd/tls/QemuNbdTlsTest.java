package io.jbackup.nbd.tls;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.TlsFixtures;
import io.jbackup.testutil.TlsFixtures.KeyFormat;
import io.jbackup.testutil.TlsFixtures.KeyType;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.ChannelHandler;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Our TLS client handlers against real qemu-nbd 7.2 (GnuTLS) on a unix socket: STARTTLS, NBD_OPT_GO and a 4 KiB
 * read compared with the image, for TLS-PSK (1.3 and 1.2) and X.509 (verify-peer on and off, EC and RSA keys in
 * PKCS#8 and traditional PEM), plus the failures a user can run into.
 */
class QemuNbdTlsTest {
    private static EventLoopGroup group;

    @TempDir
    Path tmp;
    private Path image;
    private byte[] imageBytes;

    @BeforeAll
    static void startGroup() {
        Proc.requireTool("qemu-nbd");
        group = new NioEventLoopGroup(1);
    }

    @AfterAll
    static void stopGroup() throws InterruptedException {
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
    }

    @BeforeEach
    void makeImage() throws Exception {
        imageBytes = new byte[1 << 20];
        new Random(7).nextBytes(imageBytes);
        image = Files.write(tmp.resolve("disk.raw"), imageBytes);
    }

    private Proc.Background qemuNbdPsk(Path pskDir) {
        return QemuImages.qemuNbd(tmp, image, "raw", "-r", "--object",
            "tls-creds-psk,id=tls0,endpoint=server,dir=" + pskDir, "--tls-creds", "tls0");
    }

    private Proc.Background qemuNbdX509(Path dir, boolean verifyPeer) {
        return QemuImages.qemuNbd(tmp, image, "raw", "-r", "--object",
            "tls-creds-x509,id=tls0,endpoint=server,dir=" + dir + ",verify-peer=" + (verifyPeer ? "on" : "off"),
            "--tls-creds", "tls0");
    }

    private static ChannelHandler client(TlsConfig cfg) throws NbdTlsException {
        return NbdTls.newClientHandler(cfg, ByteBufAllocator.DEFAULT, null, -1);
    }

    private static TlsConfig psk(TlsFixtures.PskCreds c, String user) {
        return new TlsConfig(TlsMode.REQUIRE, null, c.keysFile(), user, null, true);
    }

    private static TlsConfig x509(Path dir, boolean verify) {
        return new TlsConfig(TlsMode.REQUIRE, dir, null, null, null, verify);
    }

    /** Full session: TLS, GO, two reads compared with the image, DISC, close without errors. */
    private TlsHandshakeCompletion readThroughTls(Proc.Background server, ChannelHandler tls) {
        try (RawNbd nbd = RawNbd.connect(group, QemuImages.socketOf(server)).handshake()) {
            TlsHandshakeCompletion done = nbd.startTls(tls);
            assertTrue(done.success(), () -> "handshake failed: " + done.cause() + "\nqemu-nbd log:\n" + server.readLog());
            assertEquals(imageBytes.length, nbd.go());
            assertArrayEquals(Arrays.copyOfRange(imageBytes, 0, 4096), nbd.read(0, 4096));
            int off = imageBytes.length - 4096 * 3;
            assertArrayEquals(Arrays.copyOfRange(imageBytes, off, off + 4096), nbd.read(off, 4096));
            nbd.disconnect();
            nbd.ch.close().syncUninterruptibly();
            nbd.probe.awaitClosed();
            assertFalse(nbd.probe.error.isDone(), () -> "unexpected error: " + nbd.probe.error.getNow(null));
            return done;
        }
    }

    /** Runs STARTTLS with {@code tls} and returns the failure the handler reported. */
    private NbdTlsException failure(Proc.Background server, ChannelHandler tls) {
        try (RawNbd nbd = RawNbd.connect(group, QemuImages.socketOf(server)).handshake()) {
            TlsHandshakeCompletion done = nbd.startTls(tls);
            assertFalse(done.success(), "handshake should have failed");
            nbd.probe.awaitClosed();
            return assertInstanceOf(NbdTlsException.class, done.cause());
        }
    }

    /**
     * Runs STARTTLS with {@code tls}; if the handshake "succeeds" (TLS 1.3: the client is done before the server
     * checked its certificate) sends NBD_OPT_GO and returns the error that arrives instead of the reply.
     */
    private NbdTlsException failureAfterHandshake(Proc.Background server, ChannelHandler tls) {
        try (RawNbd nbd = RawNbd.connect(group, QemuImages.socketOf(server)).handshake()) {
            TlsHandshakeCompletion done = nbd.startTls(tls);
            if (!done.success()) {
                return assertInstanceOf(NbdTlsException.class, done.cause());
            }
            // not RawNbd.sendOption: the write may fail because the server already closed the connection
            nbd.ch.writeAndFlush(io.netty.buffer.Unpooled.buffer().writeLong(io.jbackup.nbd.protocol.NbdConstants.IHAVEOPT)
                .writeInt(io.jbackup.nbd.protocol.NbdOption.GO.code()).writeInt(6).writeZero(6));
            Throwable t = nbd.probe.awaitError();
            nbd.probe.awaitClosed();
            return assertInstanceOf(NbdTlsException.class, t);
        }
    }

    @Test
    void pskTls13() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(tmp.resolve("psk"), "alice");
        try (Proc.Background srv = qemuNbdPsk(creds.dir())) {
            TlsHandshakeCompletion done = readThroughTls(srv, client(psk(creds, "alice")));
            assertEquals("TLSv1.3", done.protocol());
            assertEquals("TLS_AES_128_GCM_SHA256", done.cipherSuite());
        }
    }

    @Test
    void pskTls12WithDefaultQemuUser() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(tmp.resolve("psk"), "qemu");
        try (Proc.Background srv = qemuNbdPsk(creds.dir())) {
            TlsHandshakeCompletion done = readThroughTls(srv, BcTlsHandler.pskClient("qemu", creds.key(),
                creds.keysFile(), TlsVersions.TLS_1_2, 10_000));
            assertEquals("TLSv1.2", done.protocol());
            assertEquals("TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256", done.cipherSuite());
        }
        // null user means qemu's default identity "qemu"
        try (Proc.Background srv = qemuNbdPsk(creds.dir())) {
            readThroughTls(srv, client(psk(creds, null)));
        }
    }

    @Test
    void pskWrongKeyOrUserGivesClearError() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(tmp.resolve("psk"), "alice");
        TlsFixtures.PskCreds wrongKey = TlsFixtures.psk(tmp.resolve("wrong"), "alice");
        TlsFixtures.PskCreds wrongUser = TlsFixtures.psk(tmp.resolve("bob"), "bob", creds.key());
        try (Proc.Background srv = qemuNbdPsk(creds.dir())) {
            NbdTlsException e = failure(srv, client(psk(wrongKey, "alice")));
            assertTrue(e.getMessage().startsWith("TLS-PSK handshake rejected by the server (")
                && e.getMessage().contains("the server does not accept identity 'alice' with this key")
                && e.getMessage().contains("check --tls-username and --tls-psk-file (" + wrongKey.keysFile() + ")"),
                e.getMessage());
            NbdTlsException e12 = failure(srv, BcTlsHandler.pskClient("alice", wrongKey.key(), wrongKey.keysFile(),
                TlsVersions.TLS_1_2, 10_000));
            assertTrue(e12.getMessage().contains("does not accept identity 'alice'"), e12.getMessage());
            NbdTlsException eu = failure(srv, client(psk(wrongUser, "bob")));
            assertTrue(eu.getMessage().contains("does not accept identity 'bob'"), eu.getMessage());
        }
    }

    @Test
    void x509VerifyPeerOnWithClientCertificate() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp.resolve("x509"));
        try (Proc.Background srv = qemuNbdX509(creds.serverDir(), true)) {
            TlsHandshakeCompletion done = readThroughTls(srv, client(x509(creds.clientDir(), true)));
            assertEquals("TLSv1.3", done.protocol());
        }
    }

    @Test
    void x509RsaTraditionalPemKeys() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp.resolve("x509"), KeyType.RSA_2048, KeyFormat.TRADITIONAL);
        assertTrue(Files.readString(creds.clientDir().resolve("client-key.pem")).startsWith("-----BEGIN RSA PRIVATE KEY"));
        try (Proc.Background srv = qemuNbdX509(creds.serverDir(), true)) {
            readThroughTls(srv, client(x509(creds.clientDir(), true)));
        }
    }

    @Test
    void x509EcTraditionalPemKeysOverIpHostname() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp.resolve("x509"), KeyType.EC_P256, KeyFormat.TRADITIONAL);
        try (Proc.Background srv = qemuNbdX509(creds.serverDir(), true)) {
            // the certificate has IP:127.0.0.1; verify against it as a TCP client of 127.0.0.1 would
            readThroughTls(srv, NbdTls.newClientHandler(x509(creds.clientDir(), true), ByteBufAllocator.DEFAULT,
                "127.0.0.1", 10809));
        }
    }

    @Test
    void x509VerifyPeerOffNeedsNoClientCertificate() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp.resolve("x509"));
        Path caOnly = TlsFixtures.copy(creds.clientDir(), tmp.resolve("ca-only"), "ca-cert.pem");
        try (Proc.Background srv = qemuNbdX509(creds.serverDir(), false)) {
            readThroughTls(srv, client(x509(caOnly, true)));
        }
    }

    @Test
    void x509UntrustedServerCertificate() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp.resolve("x509"));
        TlsFixtures.X509Creds other = TlsFixtures.x509(tmp.resolve("other"));
        try (Proc.Background srv = qemuNbdX509(creds.serverDir(), false)) {
            NbdTlsException e = failure(srv, client(x509(other.clientDir(), true)));
            assertTrue(e.getMessage().startsWith("server certificate not trusted by "
                + other.clientDir().resolve("ca-cert.pem") + ": "), e.getMessage());
        }
    }

    @Test
    void x509HostnameMismatch() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp.resolve("x509"));
        try (Proc.Background srv = qemuNbdX509(creds.serverDir(), true)) {
            TlsConfig cfg = new TlsConfig(TlsMode.REQUIRE, creds.clientDir(), null, null, "nbd.example.org", true);
            NbdTlsException e = failure(srv, client(cfg));
            assertTrue(e.getMessage().startsWith("server certificate does not match host name 'nbd.example.org'")
                && e.getMessage().contains("--tls-hostname"), e.getMessage());
        }
    }

    @Test
    void x509MissingClientCertificateWhenServerRequiresOne() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp.resolve("x509"));
        Path caOnly = TlsFixtures.copy(creds.clientDir(), tmp.resolve("ca-only"), "ca-cert.pem");
        try (Proc.Background srv = qemuNbdX509(creds.serverDir(), true)) {
            NbdTlsException e = failureAfterHandshake(srv, client(x509(caOnly, true)));
            assertTrue(e.getMessage().contains("no client certificate was sent")
                && e.getMessage().contains(caOnly.toString()), e.getMessage());
        }
    }

    @Test
    void x509ClientCertificateFromAnotherCa() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp.resolve("x509"));
        TlsFixtures.X509Creds other = TlsFixtures.x509(tmp.resolve("other"));
        Path mixed = TlsFixtures.copy(creds.clientDir(), tmp.resolve("mixed"), "ca-cert.pem");
        TlsFixtures.copy(other.clientDir(), mixed, "client-cert.pem", "client-key.pem");
        try (Proc.Background srv = qemuNbdX509(creds.serverDir(), true)) {
            NbdTlsException e = failureAfterHandshake(srv, client(x509(mixed, true)));
            assertTrue(e.getMessage().contains("the client certificate " + mixed.resolve("client-cert.pem")),
                e.getMessage());
        }
    }

    @Test
    void pskClientAgainstX509ServerSaysSo() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(tmp.resolve("psk"), "alice");
        TlsFixtures.X509Creds x = TlsFixtures.x509(tmp.resolve("x509"));
        try (Proc.Background srv = qemuNbdX509(x.serverDir(), false)) {
            NbdTlsException e = failure(srv, client(psk(creds, "alice")));
            assertTrue(e.getMessage().startsWith("TLS-PSK handshake failed: the server presented an X.509 certificate"),
                e.getMessage());
        }
    }

    @Test
    void x509ClientAgainstPskServerFailsCleanly() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(tmp.resolve("psk"), "alice");
        TlsFixtures.X509Creds x = TlsFixtures.x509(tmp.resolve("x509"));
        try (Proc.Background srv = qemuNbdPsk(creds.dir())) {
            NbdTlsException e = failure(srv, client(x509(x.clientDir(), true)));
            assertTrue(e.getMessage().startsWith("connection closed during the TLS handshake")
                && e.getMessage().contains("may expect TLS-PSK"), e.getMessage());
        }
    }
}
