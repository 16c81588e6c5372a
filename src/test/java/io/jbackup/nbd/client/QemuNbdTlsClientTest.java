package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.jbackup.nbd.tls.NbdTlsException;
import io.jbackup.nbd.tls.TlsConfig;
import io.jbackup.nbd.tls.TlsMode;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.TlsFixtures;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The client over TLS against qemu-nbd 7.2 (GnuTLS): X.509 and PSK, reads and block status through TLS;
 * {@code --tls=require} never falls back to plaintext; rejected keys and certificates give clear errors.
 */
class QemuNbdTlsClientTest {
    @TempDir
    static Path dir;
    static Path image;
    static byte[] expected;

    @BeforeAll
    static void image() throws Exception {
        image = QemuImages.qcow2(dir.resolve("tls.qcow2"), "4M");
        QemuImages.addBitmap(image, "b");
        QemuImages.io(image, "qcow2", "write -P 0x5a 1M 256k", "write -P 0xa5 3M 64k");
        expected = Files.readAllBytes(QemuImages.toRaw(image, dir.resolve("tls.raw")));
    }

    static Proc.Background psk(Path pskDir) {
        return QemuImages.qemuNbd(dir, image, "qcow2", "-r", "-B", "b", "--object",
            "tls-creds-psk,id=tls0,endpoint=server,dir=" + pskDir, "--tls-creds", "tls0");
    }

    static Proc.Background x509(Path serverDir, boolean verifyPeer) {
        return QemuImages.qemuNbd(dir, image, "qcow2", "-r", "-B", "b", "--object",
            "tls-creds-x509,id=tls0,endpoint=server,dir=" + serverDir + ",verify-peer=" + (verifyPeer ? "on" : "off"),
            "--tls-creds", "tls0");
    }

    static NbdUri nbds(Proc.Background s) {
        return NbdUri.unix(QemuImages.socketOf(s), "", true);
    }

    static ClientOptions opts(TlsConfig tls) {
        return ClientOptions.defaults().withTls(tls).withMetaContexts(List.of("qemu:dirty-bitmap:b"));
    }

    static void readAndMapThroughTls(NbdClient c) throws Exception {
        byte[] all = new byte[expected.length];
        c.read(0, all, 0, all.length).get(20, TimeUnit.SECONDS);
        assertArrayEquals(expected, all);
        List<Extent> dirty = Extents.coalesce(Extents.map(c, "qemu:dirty-bitmap:b", 0, all.length)).stream()
            .filter(e -> e.flags() == NbdConstants.STATE_DIRTY).toList();
        assertEquals(List.of(new Extent(1 << 20, 256 << 10, 1), new Extent(3 << 20, 64 << 10, 1)), dirty);
    }

    @Test
    void x509WithClientCertificate() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(dir.resolve("x509"));
        try (Proc.Background s = x509(creds.serverDir(), true);
             NbdClient c = NbdClient.connect(nbds(s), opts(new TlsConfig(TlsMode.REQUIRE, creds.clientDir(), null,
                 null, null, true)))) {
            readAndMapThroughTls(c);
        }
    }

    @Test
    void pskWithListingOverTls() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(dir.resolve("psk"), "alice");
        TlsConfig tls = new TlsConfig(TlsMode.REQUIRE, null, creds.keysFile(), "alice", null, true);
        try (Proc.Background s = psk(creds.dir())) {
            try (NbdClient c = NbdClient.connect(nbds(s), opts(tls))) {
                readAndMapThroughTls(c);
            }
            assertEquals(List.of("qemu:dirty-bitmap:b"), NbdClient.listMetaContexts(nbds(s),
                ClientOptions.defaults().withTls(tls), "qemu:dirty-bitmap:"));
            assertEquals(4 << 20, NbdClient.listExports(nbds(s), ClientOptions.defaults().withTls(tls)).get(0).size());
        }
    }

    @Test
    void wrongPskKeyIsAClearError() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(dir.resolve("psk-right"), "alice");
        TlsFixtures.PskCreds wrong = TlsFixtures.psk(dir.resolve("psk-wrong"), "alice");
        try (Proc.Background s = psk(creds.dir())) {
            NbdTlsException e = assertThrows(NbdTlsException.class, () -> NbdClient.connect(nbds(s),
                opts(new TlsConfig(TlsMode.REQUIRE, null, wrong.keysFile(), "alice", null, true))));
            assertTrue(e.getMessage().contains("does not accept identity 'alice' with this key"), e.getMessage());
        }
    }

    @Test
    void missingClientCertificateIsAClearError() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(dir.resolve("x509-nocert"));
        Path caOnly = TlsFixtures.copy(creds.clientDir(), dir.resolve("ca-only"), "ca-cert.pem");
        try (Proc.Background s = x509(creds.serverDir(), true)) {
            NbdTlsException e = assertThrows(NbdTlsException.class, () -> NbdClient.connect(nbds(s),
                opts(new TlsConfig(TlsMode.REQUIRE, caOnly, null, null, null, true))));
            assertTrue(e.getMessage().contains("certificate"), e.getMessage());
        }
    }

    @Test
    void untrustedServerCertificateIsAClearError() throws Exception {
        TlsFixtures.X509Creds creds = TlsFixtures.x509(dir.resolve("x509-a"));
        TlsFixtures.X509Creds other = TlsFixtures.x509(dir.resolve("x509-b"));
        try (Proc.Background s = x509(creds.serverDir(), false)) {
            NbdTlsException e = assertThrows(NbdTlsException.class, () -> NbdClient.connect(nbds(s),
                opts(new TlsConfig(TlsMode.REQUIRE, other.clientDir(), null, null, null, true))));
            assertTrue(e.getMessage().startsWith("server certificate not trusted by"), e.getMessage());
        }
    }

    @Test
    void requireNeverFallsBackToPlaintextPreferDoes() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(dir.resolve("psk-plain"), "alice");
        try (Proc.Background plain = QemuImages.qemuNbd(dir, image, "qcow2", "-r", "-B", "b")) {
            NbdUri uri = NbdUri.unix(QemuImages.socketOf(plain), "", false);
            NbdHandshakeException e = assertThrows(NbdHandshakeException.class, () -> NbdClient.connect(uri,
                opts(new TlsConfig(TlsMode.REQUIRE, null, creds.keysFile(), "alice", null, true))));
            assertEquals(NbdOptionReplyType.ERR_POLICY, e.replyType());
            assertTrue(e.getMessage().contains("will not fall back to plaintext"), e.getMessage());
            // nbds:// means require, whatever the mode says
            assertThrows(NbdHandshakeException.class, () -> NbdClient.connect(NbdUri.unix(uri.socket(), "", true),
                opts(new TlsConfig(TlsMode.PREFER, null, creds.keysFile(), "alice", null, true))));
            try (NbdClient c = NbdClient.connect(uri, opts(new TlsConfig(TlsMode.PREFER, null, creds.keysFile(),
                "alice", null, true)))) {
                readAndMapThroughTls(c); // plaintext after ERR_POLICY, as --tls=prefer allows
            }
        }
    }

    @Test
    void plaintextClientAgainstTlsServerIsToldToUseTls() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(dir.resolve("psk-reqd"), "alice");
        try (Proc.Background s = psk(creds.dir())) {
            NbdHandshakeException e = assertThrows(NbdHandshakeException.class,
                () -> NbdClient.connect(NbdUri.unix(QemuImages.socketOf(s), "", false), ClientOptions.defaults()));
            assertEquals(NbdOptionReplyType.ERR_TLS_REQD, e.replyType());
            assertTrue(e.getMessage().contains("use an nbds:// URI"), e.getMessage());
        }
    }

    @Test
    void missingPskFileFailsBeforeConnecting() {
        NbdTlsException e = assertThrows(NbdTlsException.class, () -> NbdClient.connect(
            NbdUri.unix(dir.resolve("never.sock"), "", true), opts(new TlsConfig(TlsMode.REQUIRE, null,
                dir.resolve("nosuch.psk"), "alice", null, true))));
        assertTrue(e.getMessage().contains("nosuch.psk"), e.getMessage());
    }
}
