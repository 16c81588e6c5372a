package io.jbackup.cli;

import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.TestJvm;
import io.jbackup.testutil.TlsFixtures;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code jbackup serve} exposes backups only to whom it should: it listens on loopback unless told otherwise, and
 * an X.509 server with a CA in {@code --tls-creds} accepts only clients whose certificate that CA issued (checked with
 * real clients: qemu-img with {@code tls-creds-x509,endpoint=client}, nbdinfo).
 */
@Tag("reliability")
class ServeSecurityTest {
    @TempDir
    Path dir;

    @Test
    void defaultAndHostlessListenAddressesAreLoopback() {
        assertTrue(ServeCommand.parseListen(ServeCommand.DEFAULT_LISTEN).getAddress().isLoopbackAddress());
        InetSocketAddress hostless = ServeCommand.parseListen(":10810");
        assertTrue(hostless.getAddress().isLoopbackAddress(), hostless.toString());
        assertEquals(10810, hostless.getPort());
        assertTrue(ServeCommand.parseListen("0.0.0.0:10810").getAddress().isAnyLocalAddress(), "named explicitly");
        String help = Cli.run("serve", "--help").stdout();
        assertTrue(help.contains("default: 127.0.0.1:10809"), help);
        assertTrue(help.contains("turns on client certificate verification"), help);
    }

    /**
     * One child JVM runs {@code jbackup serve --listen :PORT --tls-creds DIR}: the port is open on loopback and
     * closed on the host's other address; a client with a certificate of the server's CA reads the backup
     * bit-exact; clients without a certificate, or with one from another CA, are refused.
     */
    @Test
    void x509ServeVerifiesClientCertificatesAndListensOnLoopbackOnly() throws Exception {
        Path repo = dir.resolve("repo");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K").ok();
        Path img = QemuImages.qcow2(dir.resolve("disk.qcow2"), "2M");
        QemuImages.io(img, "qcow2", "write -P 0x3c 0 1M");
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A")) {
            Cli.run("full", "--repo", repo.toString(), "--disk", "vda", "--source", QemuImages.uriOf(s)).ok();
        }
        Path snap = QemuImages.toRaw(img, dir.resolve("snap.raw"));
        // RSA keys: GnuTLS (qemu, libnbd) reads them in PKCS#8
        TlsFixtures.X509Creds ours = TlsFixtures.x509(dir.resolve("ours"), TlsFixtures.KeyType.RSA_2048,
            TlsFixtures.KeyFormat.PKCS8);
        TlsFixtures.X509Creds theirs = TlsFixtures.x509(dir.resolve("theirs"), TlsFixtures.KeyType.RSA_2048,
            TlsFixtures.KeyFormat.PKCS8);
        // trusts our server, presents a certificate of another CA
        Path foreign = TlsFixtures.copy(theirs.clientDir(), dir.resolve("foreign"), "client-cert.pem",
            "client-key.pem");
        Files.copy(ours.clientDir().resolve("ca-cert.pem"), foreign.resolve("ca-cert.pem"));
        Path noCert = TlsFixtures.copy(ours.clientDir(), dir.resolve("nocert"), "ca-cert.pem");

        int port = Proc.freePort();
        Path log = dir.resolve("serve.log");
        Process p = new ProcessBuilder(TestJvm.java("-cp", System.getProperty("java.class.path"), "io.jbackup.cli.Main",
            "serve", "--repo", repo.toString(), "--listen", ":" + port, "--tls-creds", ours.serverDir().toString()))
            .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (!Files.readString(log).contains("Ctrl-C to stop")) {
                assertTrue(p.isAlive() && System.nanoTime() < deadline, "serve did not start: " + Files.readString(log));
                Thread.sleep(20);
            }
            assertTrue(Files.readString(log).contains("on nbd://127.0.0.1:" + port + "/EXPORT with TLS (require)"),
                Files.readString(log));
            for (InetAddress a : otherAddresses()) {
                assertThrows(IOException.class, () -> {
                    try (Socket sock = new Socket()) {
                        sock.connect(new InetSocketAddress(a, port), 2000);
                    }
                }, "serve must not listen on " + a);
            }

            String opts = "driver=nbd,host=127.0.0.1,port=" + port + ",export=vda@latest,tls-creds=tls0,"
                + "tls-hostname=localhost";
            Path out = dir.resolve("copy.raw");
            Proc.run("qemu-img", "convert", "--object", "tls-creds-x509,id=tls0,endpoint=client,dir="
                + ours.clientDir(), "--image-opts", opts, "-O", "raw", out.toString());
            assertEquals(Proc.sha256(snap), Proc.sha256(out), "a client with our CA's certificate");

            Proc.Result foreignQemu = Proc.exec(Duration.ofSeconds(30), "qemu-img", "info", "--object",
                "tls-creds-x509,id=tls0,endpoint=client,dir=" + foreign, "--image-opts", opts);
            assertNotEquals(0, foreignQemu.exitCode(), "a certificate of another CA: " + foreignQemu);
            String uri = "nbds://127.0.0.1:" + port + "/vda@latest?tls-hostname=localhost&tls-certificates=";
            Proc.Result foreignNbdinfo = Proc.exec(Duration.ofSeconds(30), "nbdinfo", uri + foreign);
            assertNotEquals(0, foreignNbdinfo.exitCode(), "a certificate of another CA: " + foreignNbdinfo);
            Proc.Result none = Proc.exec(Duration.ofSeconds(30), "nbdinfo", uri + noCert);
            assertNotEquals(0, none.exitCode(), "no client certificate: " + none);
            Proc.Result plain = Proc.exec(Duration.ofSeconds(30), "nbdinfo", "nbd://127.0.0.1:" + port + "/vda@latest");
            assertNotEquals(0, plain.exitCode(), "plaintext: " + plain);
            // after all the refusals the server still serves
            Proc.run("qemu-img", "info", "--object", "tls-creds-x509,id=tls0,endpoint=client,dir=" + ours.clientDir(),
                "--image-opts", opts);
        } finally {
            p.destroy();
            assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        }
        assertEquals(0, p.exitValue(), Files.readString(log));
    }

    /** The host's non-loopback addresses (IPv4 and IPv6), where a loopback-only server must not answer. */
    private static List<InetAddress> otherAddresses() throws IOException {
        List<InetAddress> out = new java.util.ArrayList<>();
        for (NetworkInterface ni : Collections.list(NetworkInterface.getNetworkInterfaces())) {
            if (ni.isUp() && !ni.isLoopback()) {
                for (InetAddress a : Collections.list(ni.getInetAddresses())) {
                    if (!a.isLinkLocalAddress()) {
                        out.add(a);
                    }
                }
            }
        }
        return out;
    }
}
