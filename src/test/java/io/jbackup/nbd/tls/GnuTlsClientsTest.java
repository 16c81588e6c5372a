package io.jbackup.nbd.tls;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jbackup.testutil.Proc;
import io.jbackup.testutil.TlsFixtures;
import io.netty.util.internal.StringUtil;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Random;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Our server-side TLS handlers ({@link NbdTls#server}) against real GnuTLS clients: qemu-img (qemu's
 * tls-creds-psk / tls-creds-x509, endpoint=client) and nbdcopy (libnbd) copy an image from {@link MiniNbdServer};
 * the copy is compared by SHA-256.
 */
class GnuTlsClientsTest {
    private static Net net;

    @TempDir
    Path tmp;
    private byte[] image;
    private String imageSha;

    @BeforeAll
    static void startNet() {
        Proc.requireTool("qemu-img");
        Proc.requireTool("nbdcopy");
        net = new Net();
    }

    @AfterAll
    static void stopNet() {
        net.close();
    }

    @BeforeEach
    void makeImage() throws Exception {
        image = new byte[3 << 20];
        new Random(11).nextBytes(image);
        imageSha = HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(image));
    }

    private MiniNbdServer serve(Path sock, TlsConfig cfg) throws NbdTlsException {
        NbdTls.ServerTls tls = NbdTls.server(cfg);
        return new MiniNbdServer(net, sock, image, () -> tls.newHandler(io.netty.buffer.ByteBufAllocator.DEFAULT));
    }

    private void assertCopied(Path out, MiniNbdServer srv) {
        assertEquals(imageSha, Proc.sha256(out));
        assertFalse(srv.handshakes.isEmpty());
        srv.handshakes.forEach(h -> assertTrue(h.success(), () -> "handshake: " + h));
    }

    private void qemuImgConvert(String tlsObject, Path sock, Path out) {
        Proc.run("qemu-img", "convert", "--object", tlsObject, "--image-opts",
            "driver=nbd,server.type=unix,server.path=" + sock + ",tls-creds=tls0", "-O", "raw", out.toString());
    }

    @Test
    void qemuImgWithPsk() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(tmp.resolve("psk"), "alice");
        Path sock = tmp.resolve("s.sock");
        Path out = tmp.resolve("out.raw");
        try (MiniNbdServer srv = serve(sock, new TlsConfig(TlsMode.REQUIRE, null, creds.keysFile(), null, null, true))) {
            qemuImgConvert("tls-creds-psk,id=tls0,endpoint=client,dir=" + creds.dir() + ",username=alice", sock, out);
            assertCopied(out, srv);
            assertEquals("TLSv1.3", srv.handshakes.peek().protocol());
        }
    }

    @Test
    void qemuImgWithPskOverTls12() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(tmp.resolve("psk"), "qemu");
        PskKeyFile keys = PskKeyFile.load(creds.keysFile());
        Path sock = tmp.resolve("s.sock");
        Path out = tmp.resolve("out.raw");
        try (MiniNbdServer srv = new MiniNbdServer(net, sock, image,
            () -> BcTlsHandler.pskServer(keys, TlsVersions.TLS_1_2, 10_000))) {
            // no username: qemu's default identity "qemu"
            qemuImgConvert("tls-creds-psk,id=tls0,endpoint=client,dir=" + creds.dir(), sock, out);
            assertCopied(out, srv);
            assertEquals("TLSv1.2", srv.handshakes.peek().protocol());
        }
    }

    @Test
    void nbdcopyWithPsk() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(tmp.resolve("psk"), "alice");
        Path sock = tmp.resolve("s.sock");
        Path out = tmp.resolve("out.raw");
        try (MiniNbdServer srv = serve(sock, new TlsConfig(TlsMode.REQUIRE, null, creds.keysFile(), null, null, true))) {
            // libnbd takes the PSK username from the URI's user part
            Proc.run("nbdcopy", "nbds+unix://alice@/?socket=" + sock + "&tls-psk-file=" + creds.keysFile(),
                out.toString());
            assertCopied(out, srv);
        }
    }

    @Test
    void qemuImgWithWrongPskKeyIsRejectedOnBothSides() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(tmp.resolve("psk"), "alice");
        TlsFixtures.PskCreds wrong = TlsFixtures.psk(tmp.resolve("wrong"), "alice");
        Path sock = tmp.resolve("s.sock");
        try (MiniNbdServer srv = serve(sock, new TlsConfig(TlsMode.REQUIRE, null, creds.keysFile(), null, null, true))) {
            Proc.Result r = Proc.exec(Duration.ofSeconds(60), "qemu-img", "info", "--object",
                "tls-creds-psk,id=tls0,endpoint=client,dir=" + wrong.dir() + ",username=alice", "--image-opts",
                "driver=nbd,server.type=unix,server.path=" + sock + ",tls-creds=tls0");
            assertNotEquals(0, r.exitCode());
            TlsHandshakeCompletion h = awaitHandshake(srv);
            assertFalse(h.success());
            assertTrue(h.cause().getMessage().contains("identity 'alice'")
                && h.cause().getMessage().contains(creds.keysFile().toString()), h.cause().getMessage());
        }
    }

    @Test
    void qemuImgWithX509ClientCertificate() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp.resolve("x509"));
        Path sock = tmp.resolve("s.sock");
        Path out = tmp.resolve("out.raw");
        try (MiniNbdServer srv = serve(sock, new TlsConfig(TlsMode.REQUIRE, creds.serverDir(), null, null, null, true))) {
            // qemu needs a host name to check the certificate against on a unix socket
            Proc.run("qemu-img", "convert", "--object", "tls-creds-x509,id=tls0,endpoint=client,dir="
                + creds.clientDir(), "--image-opts", "driver=nbd,server.type=unix,server.path=" + sock
                + ",tls-creds=tls0,tls-hostname=localhost", "-O", "raw", out.toString());
            assertCopied(out, srv);
        }
    }

    @Test
    void nbdcopyWithX509ClientCertificate() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp.resolve("x509"), TlsFixtures.KeyType.RSA_2048,
            TlsFixtures.KeyFormat.TRADITIONAL);
        Path sock = tmp.resolve("s.sock");
        Path out = tmp.resolve("out.raw");
        try (MiniNbdServer srv = serve(sock, new TlsConfig(TlsMode.REQUIRE, creds.serverDir(), null, null, null, true))) {
            Proc.run("nbdcopy", "nbds+unix:///?socket=" + sock + "&tls-certificates=" + creds.clientDir(),
                out.toString());
            assertCopied(out, srv);
        }
    }

    @Test
    void qemuImgWithoutClientCertificateIsRejectedWithReason() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(tmp.resolve("x509"));
        Path caOnly = TlsFixtures.copy(creds.clientDir(), tmp.resolve("ca-only"), "ca-cert.pem");
        Path sock = tmp.resolve("s.sock");
        try (MiniNbdServer srv = serve(sock, new TlsConfig(TlsMode.REQUIRE, creds.serverDir(), null, null, null, true))) {
            Proc.Result r = Proc.exec(Duration.ofSeconds(60), "qemu-img", "info", "--object",
                "tls-creds-x509,id=tls0,endpoint=client,dir=" + caOnly, "--image-opts",
                "driver=nbd,server.type=unix,server.path=" + sock + ",tls-creds=tls0,tls-hostname=localhost");
            assertNotEquals(0, r.exitCode());
            TlsHandshakeCompletion h = awaitHandshake(srv);
            assertFalse(h.success());
            assertTrue(h.cause().getMessage().startsWith("the client sent no certificate"), h.cause().getMessage());
        }
    }

    private static TlsHandshakeCompletion awaitHandshake(MiniNbdServer srv) throws InterruptedException {
        for (int i = 0; i < 500 && srv.handshakes.isEmpty(); i++) {
            Thread.sleep(20);
        }
        TlsHandshakeCompletion h = srv.handshakes.peek();
        if (h == null) {
            throw new AssertionError("no handshake event; errors: " + srv.errors + StringUtil.EMPTY_STRING);
        }
        return h;
    }
}
