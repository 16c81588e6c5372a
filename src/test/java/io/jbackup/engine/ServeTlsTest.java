package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.nbd.server.ServerConfig;
import io.jbackup.nbd.tls.TlsConfig;
import io.jbackup.nbd.tls.TlsMode;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.TestJvm;
import io.jbackup.testutil.TlsFixtures;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code jbackup serve} with TLS required: TLS-PSK through the command line ({@code --tls-psk-file}, a child JVM)
 * and X.509 with client certificates, read by nbdinfo, nbdcopy and qemu-img; plaintext clients are refused.
 */
@Tag("reliability")
class ServeTlsTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path dir;
    static Path repo;
    static Path snap;
    static String id;

    @BeforeAll
    static void backup() {
        repo = dir.resolve("repo");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K").ok();
        Path img = QemuImages.qcow2(dir.resolve("disk.qcow2"), "4M");
        QemuImages.io(img, "qcow2", "write -P 0x5a 0 1M", "write -P 0xa5 3M 512k");
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A")) {
            id = Cli.run("full", "--repo", repo.toString(), "--disk", "vda", "--source", QemuImages.uriOf(s), "--json")
                .ok().json().get("disks").get(0).get("backupId").asText();
        }
        snap = QemuImages.toRaw(img, dir.resolve("snap.raw"));
    }

    @Test
    void pskFromTheCommandLineRequiresTls() throws Exception {
        TlsFixtures.PskCreds psk = TlsFixtures.psk(dir.resolve("psk"), "alice");
        Path sock = dir.resolve("psk.sock");
        Path log = dir.resolve("psk-serve.log");
        Process p = new ProcessBuilder(TestJvm.java("-cp", System.getProperty("java.class.path"), "io.jbackup.cli.Main",
            "serve", "--repo", repo.toString(), "--socket", sock.toString(), "--tls-psk-file", psk.keysFile().toString()))
            .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (!Files.exists(sock)) {
                assertTrue(p.isAlive() && System.nanoTime() < deadline, "serve did not start: " + Files.readString(log));
                Thread.sleep(20);
            }
            // libnbd takes the PSK identity from the URI's user part
            String uri = "nbds+unix://alice@/vda@latest?socket=" + sock + "&tls-psk-file=" + psk.keysFile();
            JsonNode info = JSON.readTree(Proc.run("nbdinfo", "--json", uri));
            assertTrue(info.get("TLS").asBoolean(), info.toString());
            Path out = dir.resolve("psk.raw");
            Proc.run("nbdcopy", uri, out.toString());
            assertEquals(Proc.sha256(snap), Proc.sha256(out));
            Proc.Result plain = Proc.exec(Duration.ofSeconds(30), "nbdinfo", "nbd+unix:///vda@latest?socket=" + sock);
            assertNotEquals(0, plain.exitCode(), plain.toString());
            assertTrue(Files.readString(log).contains("with TLS (require)"), Files.readString(log));
        } finally {
            p.destroy();
        }
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), Files.readString(log));
        assertFalse(Files.exists(sock));
    }

    @Test
    void x509WithNbdcopyAndQemuImg() throws Exception {
        // RSA: GnuTLS (libnbd) rejects the fixtures' EC PKCS#8 client key
        TlsFixtures.X509Creds x509 = TlsFixtures.x509(dir.resolve("x509"), TlsFixtures.KeyType.RSA_2048,
            TlsFixtures.KeyFormat.PKCS8);
        Path sock = dir.resolve("x509.sock");
        ServerConfig cfg = ServerConfig.builder().unixSocket(sock)
            .tls(new TlsConfig(TlsMode.REQUIRE, x509.serverDir(), null, null, null, true)).build();
        try (Repository r = Repository.open(repo, OpenOptions.defaults());
             BackupServer s = BackupServer.start(r, cfg, BackupServer.Options.readOnly(8 << 20, 4))) {
            String uri = "nbds+unix:///vda@" + id + "?socket=" + sock + "&tls-certificates=" + x509.clientDir()
                + "&tls-hostname=localhost";
            Path out = dir.resolve("x509.raw");
            Proc.run("nbdcopy", uri, out.toString());
            assertEquals(Proc.sha256(snap), Proc.sha256(out));
            JsonNode list = JSON.readTree(Proc.run("nbdinfo", "--json", "--list", uri));
            assertEquals(2, list.get("exports").size(), list.toString());

            String obj = "tls-creds-x509,id=tls0,endpoint=client,dir=" + x509.clientDir();
            Path conv = dir.resolve("x509-convert.raw");
            Proc.run("qemu-img", "convert", "--object", obj, "--image-opts",
                "driver=nbd,path=" + sock + ",export=vda@latest,tls-creds=tls0,tls-hostname=localhost", "-O", "raw",
                conv.toString());
            assertEquals(Proc.sha256(snap), Proc.sha256(conv));

            Proc.Result plain = Proc.exec(Duration.ofSeconds(30), "qemu-img", "info", "nbd+unix:///vda@latest?socket="
                + sock);
            assertNotEquals(0, plain.exitCode(), plain.toString());
            Path noCert = TlsFixtures.copy(x509.clientDir(), dir.resolve("nocert"), "ca-cert.pem");
            Proc.Result bad = Proc.exec(Duration.ofSeconds(30), "nbdinfo", "nbds+unix:///vda@latest?socket=" + sock
                + "&tls-certificates=" + noCert + "&tls-hostname=localhost");
            assertNotEquals(0, bad.exitCode(), "a client without certificate is refused: " + bad);
        }
    }
}
