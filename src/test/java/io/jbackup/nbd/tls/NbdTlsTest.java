package io.jbackup.nbd.tls;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jbackup.testutil.TlsFixtures;
import io.jbackup.testutil.TlsFixtures.KeyFormat;
import io.jbackup.testutil.TlsFixtures.KeyType;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.handler.ssl.SslHandler;

import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Supplier;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The {@link NbdTls} facade: config validation, and our client against our server for PSK and X.509. */
class NbdTlsTest {
    private static Net net;

    @TempDir
    Path tmp;

    @BeforeAll
    static void startNet() {
        net = new Net();
    }

    @AfterAll
    static void stopNet() {
        net.close();
    }

    private static TlsConfig x509(Path dir, boolean verify) {
        return new TlsConfig(TlsMode.REQUIRE, dir, null, null, null, verify);
    }

    private static TlsConfig psk(Path file, String user) {
        return new TlsConfig(TlsMode.REQUIRE, null, file, user, null, true);
    }

    private static Supplier<ChannelHandler> serverHandlers(TlsConfig cfg) throws NbdTlsException {
        NbdTls.ServerTls tls = NbdTls.server(cfg);
        return () -> tls.newHandler(ByteBufAllocator.DEFAULT);
    }

    /** Our client against our server: handshake on both sides, then a round trip through an echo. */
    private TlsHandshakeCompletion roundTrip(TlsConfig serverCfg, TlsConfig clientCfg, String host) throws Exception {
        try (Net.Server srv = net.server(Net.loopback(), serverHandlers(serverCfg), true)) {
            Probe probe = new Probe();
            int port = ((InetSocketAddress) srv.address()).getPort();
            Channel ch = net.connect(srv.address(), NbdTls.newClientHandler(clientCfg, ByteBufAllocator.DEFAULT, host,
                port), probe);
            // written before the handshake completes: queued by either kind of handler
            ch.writeAndFlush(Unpooled.copiedBuffer("ping".getBytes()));
            TlsHandshakeCompletion done = probe.awaitSuccess();
            assertEquals(done.protocol(), srv.probe().awaitSuccess().protocol());
            assertArrayEquals("ping".getBytes(), probe.read(4));
            assertEquals(1, probe.handshakeEvents());
            ch.close().syncUninterruptibly();
            srv.probe().awaitClosed();
            assertFalse(srv.probe().error.isDone(), () -> "server: " + srv.probe().error.getNow(null));
            assertFalse(probe.error.isDone(), () -> "client: " + probe.error.getNow(null));
            return done;
        }
    }

    @Test
    void pskThroughTheFacade() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(tmp, "alice");
        TlsHandshakeCompletion done = roundTrip(psk(creds.keysFile(), null), psk(creds.keysFile(), "alice"), null);
        assertEquals("TLSv1.3", done.protocol());
        assertInstanceOf(BcTlsHandler.class, NbdTls.newClientHandler(psk(creds.keysFile(), "alice"),
            ByteBufAllocator.DEFAULT, null, -1));
    }

    @Test
    void x509WithClientCertificates() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp);
        assertTrue(NbdTls.server(x509(creds.serverDir(), true)).requiresClientCertificate());
        TlsHandshakeCompletion done = roundTrip(x509(creds.serverDir(), true), x509(creds.clientDir(), true), null);
        assertEquals("TLSv1.3", done.protocol());
        assertEquals("TLS_AES_128_GCM_SHA256", done.cipherSuite());
    }

    @Test
    void x509RsaTraditionalKeysAndIpAddressHost() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp, KeyType.RSA_2048, KeyFormat.TRADITIONAL);
        roundTrip(x509(creds.serverDir(), true), x509(creds.clientDir(), true), "127.0.0.1");
    }

    @Test
    void x509ServerWithoutVerificationAcceptsClientsWithoutCertificates() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp);
        Path caOnly = TlsFixtures.copy(creds.clientDir(), tmp.resolve("ca-only"), "ca-cert.pem");
        assertFalse(NbdTls.server(x509(creds.serverDir(), false)).requiresClientCertificate());
        roundTrip(x509(creds.serverDir(), false), x509(caOnly, true), "localhost");
    }

    @Test
    void x509ClientWithoutVerificationAcceptsAnyServer() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp);
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        roundTrip(x509(creds.serverDir(), false), x509(empty, false), "wrong.example.org");
    }

    @Test
    void x509ServerSeesMissingClientCertificate() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp);
        Path caOnly = TlsFixtures.copy(creds.clientDir(), tmp.resolve("ca-only"), "ca-cert.pem");
        try (Net.Server srv = net.server(Net.loopback(), serverHandlers(x509(creds.serverDir(), true)), true)) {
            Probe probe = new Probe();
            net.connect(srv.address(), NbdTls.newClientHandler(x509(caOnly, true), ByteBufAllocator.DEFAULT, null, -1),
                probe);
            TlsHandshakeCompletion s = srv.probe().awaitHandshake();
            assertFalse(s.success());
            assertTrue(s.cause().getMessage().startsWith("the client sent no certificate, but "
                + creds.serverDir().resolve("ca-cert.pem") + " makes this server require one"), s.cause().getMessage());
            assertTrue(srv.probe().awaitError() == s.cause(), "same exception as event and exceptionCaught");
            // the client may complete its TLS 1.3 handshake first; either way it gets a clear error
            Throwable c = probe.handshake.isDone() && !probe.awaitHandshake().success()
                ? probe.awaitHandshake().cause() : probe.awaitError();
            assertTrue(c.getMessage().contains("client certificate") || c.getMessage().contains("client-cert.pem"),
                c.getMessage());
        }
    }

    @Test
    void x509ServerRejectsClientCertificateFromAnotherCa() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp.resolve("a"));
        TlsFixtures.X509Creds other = TlsFixtures.x509(tmp.resolve("b"));
        Path mixed = TlsFixtures.copy(creds.clientDir(), tmp.resolve("mixed"), "ca-cert.pem");
        TlsFixtures.copy(other.clientDir(), mixed, "client-cert.pem", "client-key.pem");
        try (Net.Server srv = net.server(Net.loopback(), serverHandlers(x509(creds.serverDir(), true)), true)) {
            net.connect(srv.address(), NbdTls.newClientHandler(x509(mixed, true), ByteBufAllocator.DEFAULT, null, -1),
                new Probe());
            TlsHandshakeCompletion s = srv.probe().awaitHandshake();
            assertTrue(s.cause().getMessage().startsWith("client certificate not trusted by "
                + creds.serverDir().resolve("ca-cert.pem")), s.cause().getMessage());
        }
    }

    @Test
    void x509ClientRejectsUntrustedOrMisnamedServer() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp.resolve("a"));
        TlsFixtures.X509Creds other = TlsFixtures.x509(tmp.resolve("b"));
        try (Net.Server srv = net.server(Net.loopback(), serverHandlers(x509(creds.serverDir(), false)), true)) {
            Probe probe = new Probe();
            net.connect(srv.address(), NbdTls.newClientHandler(x509(other.clientDir(), true), ByteBufAllocator.DEFAULT,
                null, -1), probe);
            TlsHandshakeCompletion c = probe.awaitHandshake();
            assertTrue(c.cause().getMessage().startsWith("server certificate not trusted by "
                + other.clientDir().resolve("ca-cert.pem")), c.cause().getMessage());
            assertTrue(probe.awaitError() == c.cause());
            TlsHandshakeCompletion s = srv.probe().awaitHandshake();
            assertTrue(s.cause().getMessage().startsWith("the client rejected this server's certificate "
                + creds.serverDir().resolve("server-cert.pem")), s.cause().getMessage());
        }
        try (Net.Server srv = net.server(Net.loopback(), serverHandlers(x509(creds.serverDir(), false)), true)) {
            Probe probe = new Probe();
            TlsConfig cfg = new TlsConfig(TlsMode.REQUIRE, creds.clientDir(), null, null, null, true);
            net.connect(srv.address(), NbdTls.newClientHandler(cfg, ByteBufAllocator.DEFAULT, "nbd.example.org", 10809),
                probe);
            TlsHandshakeCompletion c = probe.awaitHandshake();
            assertTrue(c.cause().getMessage().startsWith("server certificate does not match host name "
                + "'nbd.example.org'"), c.cause().getMessage());
        }
    }

    @Test
    void x509HandlerInsertsAnSslHandlerInFrontOfItself() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp);
        try (Net.Server srv = net.server(Net.loopback(), serverHandlers(x509(creds.serverDir(), true)), true)) {
            Probe probe = new Probe();
            Channel ch = net.connect(srv.address(), NbdTls.newClientHandler(x509(creds.clientDir(), true),
                ByteBufAllocator.DEFAULT, null, -1), probe);
            probe.awaitSuccess();
            assertInstanceOf(SslHandler.class, ch.pipeline().first());
            assertEquals(NbdTls.HANDLER_NAME, ch.pipeline().names().get(1));
            ch.close().syncUninterruptibly();
        }
    }

    @Test
    void pskClientAgainstX509ServerAndViceVersaFailWithHints() throws Exception {
        TlsFixtures.PskCreds psk = TlsFixtures.psk(tmp.resolve("psk"), "alice");
        TlsFixtures.X509Creds x = TlsFixtures.x509(tmp.resolve("x509"));
        try (Net.Server srv = net.server(Net.loopback(), serverHandlers(x509(x.serverDir(), true)), true)) {
            Probe probe = new Probe();
            net.connect(srv.address(), NbdTls.newClientHandler(psk(psk.keysFile(), "alice"), ByteBufAllocator.DEFAULT,
                null, -1), probe);
            TlsHandshakeCompletion c = probe.awaitHandshake();
            assertTrue(c.cause().getMessage().startsWith("TLS-PSK handshake failed: the server presented an X.509 "
                + "certificate"), c.cause().getMessage());
            TlsHandshakeCompletion s = srv.probe().awaitHandshake();
            assertTrue(s.cause().getMessage().contains("is the client using TLS-PSK?"), s.cause().getMessage());
        }
        try (Net.Server srv = net.server(Net.loopback(), serverHandlers(psk(psk.keysFile(), null)), true)) {
            Probe probe = new Probe();
            net.connect(srv.address(), NbdTls.newClientHandler(x509(x.clientDir(), true), ByteBufAllocator.DEFAULT,
                null, -1), probe);
            assertFalse(probe.awaitHandshake().success());
            TlsHandshakeCompletion s = srv.probe().awaitHandshake();
            assertTrue(s.cause().getMessage().contains("the client offered no pre-shared key (is it configured for "
                + "X.509 certificates?"), s.cause().getMessage());
        }
    }

    // ---------------------------------------------------------------- configuration errors

    @Test
    void offIsNotAcceptedByTheFacade() {
        assertThrows(IllegalArgumentException.class, () -> NbdTls.client(TlsConfig.OFF));
        assertThrows(IllegalArgumentException.class, () -> NbdTls.server(TlsConfig.OFF));
    }

    @Test
    void pskClientNeedsItsIdentityInTheFile() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(tmp, "alice");
        NbdTlsException e = assertThrows(NbdTlsException.class, () -> NbdTls.client(psk(creds.keysFile(), "bob")));
        assertEquals("PSK identity 'bob' is not in " + creds.keysFile() + " (it has: alice); use --tls-username to "
            + "pick one or add a line 'bob:HEXKEY'", e.getMessage());
        NbdTlsException d = assertThrows(NbdTlsException.class, () -> NbdTls.client(psk(creds.keysFile(), null)));
        assertTrue(d.getMessage().startsWith("PSK identity 'qemu' is not in"), d.getMessage());
        Path empty = Files.writeString(tmp.resolve("empty.psk"), "");
        assertTrue(assertThrows(NbdTlsException.class, () -> NbdTls.server(psk(empty, null))).getMessage()
            .contains("has no entries"));
        Path missing = tmp.resolve("missing.psk");
        assertTrue(assertThrows(NbdTlsException.class, () -> NbdTls.client(psk(missing, "a"))).getMessage()
            .startsWith("PSK key file " + missing + " does not exist"));
    }

    @Test
    void x509MissingFilesAreNamedWithTheLayout() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp);
        Path dir = Files.createDirectories(tmp.resolve("partial"));
        NbdTlsException noCa = assertThrows(NbdTlsException.class, () -> NbdTls.client(x509(dir, true)));
        assertEquals("X.509 credentials file " + dir.resolve("ca-cert.pem") + " is missing; a client credentials "
            + "directory holds ca-cert.pem (the CA that issued the server certificate) and optionally "
            + "client-cert.pem + client-key.pem (or use --tls-no-verify to skip verification)", noCa.getMessage());

        TlsFixtures.copy(creds.clientDir(), dir, "ca-cert.pem", "client-cert.pem");
        NbdTlsException noKey = assertThrows(NbdTlsException.class, () -> NbdTls.client(x509(dir, true)));
        assertTrue(noKey.getMessage().startsWith("X.509 credentials directory " + dir
            + " has client-cert.pem but not client-key.pem"), noKey.getMessage());

        NbdTlsException noServerCert = assertThrows(NbdTlsException.class, () -> NbdTls.server(x509(dir, true)));
        assertTrue(noServerCert.getMessage().startsWith("X.509 credentials file " + dir.resolve("server-cert.pem")
            + " is missing; a server credentials directory holds server-cert.pem, server-key.pem"),
            noServerCert.getMessage());

        Path nodir = tmp.resolve("nodir");
        assertTrue(assertThrows(NbdTlsException.class, () -> NbdTls.client(x509(nodir, true))).getMessage()
            .startsWith("X.509 credentials directory " + nodir + " does not exist"));
    }

    @Test
    void x509BadKeysAreRefusedWithTheFileName() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp);
        Path key = creds.clientDir().resolve("client-key.pem");
        Files.writeString(key, "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
            + "MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgxxxxxxxxxxxxAgIIADAMBggqhkiG9w0CCQUAMB0GCWCGSAFlAwQBKgQQ"
            + "\n-----END ENCRYPTED PRIVATE KEY-----\n");
        NbdTlsException e = assertThrows(NbdTlsException.class, () -> NbdTls.client(x509(creds.clientDir(), true)));
        assertTrue(e.getMessage().contains(key.toString()), e.getMessage());
        Files.writeString(key, "not a key\n");
        NbdTlsException e2 = assertThrows(NbdTlsException.class, () -> NbdTls.client(x509(creds.clientDir(), true)));
        assertTrue(e2.getMessage().startsWith("no PEM private key"), e2.getMessage());
        Files.writeString(creds.serverDir().resolve("server-cert.pem"), "garbage");
        NbdTlsException e3 = assertThrows(NbdTlsException.class, () -> NbdTls.server(x509(creds.serverDir(), true)));
        assertTrue(e3.getMessage().contains(creds.serverDir().resolve("server-cert.pem").toString()), e3.getMessage());
    }

    @Test
    void expectedHostPrefersConfigThenPeerThenLocalhost() {
        TlsConfig none = new TlsConfig(TlsMode.REQUIRE, tmp, null, null, null, true);
        TlsConfig named = new TlsConfig(TlsMode.REQUIRE, tmp, null, null, "nbd.example.org", true);
        assertEquals("localhost", NbdTls.expectedHost(none, null));
        assertEquals("host.example", NbdTls.expectedHost(none, "host.example"));
        assertEquals("::1", NbdTls.expectedHost(none, "[::1]"));
        assertEquals("nbd.example.org", NbdTls.expectedHost(named, "host.example"));
    }
}
