package io.jbackup.nbd.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.jbackup.nbd.tls.TlsConfig;
import io.jbackup.nbd.tls.TlsMode;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.TlsFixtures;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * TLS with real clients: TLS-PSK and X.509 (client certificates required) with nbdinfo, nbdcopy, qemu-img and
 * qemu-io; {@code --tls=require} refuses plaintext; optional TLS serves both kinds of clients.
 */
@Tag("reliability")
class NbdServerTlsTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int MIB = 1 << 20;

    @TempDir
    static Path dir;
    static SparseTestExport sparse;
    static Path sparseRef;
    static byte[] mem;
    static TlsFixtures.PskCreds psk;
    static TlsFixtures.X509Creds x509;
    static Path rawFile;

    @BeforeAll
    static void setUp() throws IOException {
        sparse = new SparseTestExport("sparse", 8L * MIB, List.of(new Extent(2L * MIB, 3L * MIB, 0)), Map.of());
        sparseRef = dir.resolve("sparse.ref");
        sparse.writeReference(sparseRef);
        mem = new byte[MIB];
        Arrays.fill(mem, 0, 65536, (byte) 0xab);
        rawFile = dir.resolve("disk.raw");
        byte[] raw = new byte[4 * MIB];
        new java.util.Random(9).nextBytes(raw);
        Arrays.fill(raw, MIB, 2 * MIB, (byte) 0);
        java.nio.file.Files.write(rawFile, raw);
        psk = TlsFixtures.psk(dir.resolve("psk"), "alice");
        // RSA: GnuTLS (libnbd) rejects the fixtures' EC PKCS#8 client key ("ASN1 parser: Element was not found")
        x509 = TlsFixtures.x509(dir.resolve("x509"), TlsFixtures.KeyType.RSA_2048, TlsFixtures.KeyFormat.PKCS8);
    }

    private static NbdServer start(Path sock, TlsConfig tls) throws IOException {
        SimpleExportProvider p = new SimpleExportProvider().add("sparse", "sparse", () -> sparse)
            .add("mem", "memory", () -> new MemoryExport("mem", "memory", mem, true))
            .add("split", "reads in several data segments", () -> new SplitReads(new MemoryExport("split", "", mem, true)))
            .add("raw", "memory-mapped raw file", () -> RawFileExport.open(rawFile, "raw", ""));
        return NbdServer.start(ServerConfig.builder().unixSocket(sock).tls(tls).handshakeTimeout(Duration.ofSeconds(20))
            .build(), p);
    }

    private static TlsConfig pskConfig(TlsMode mode) {
        return new TlsConfig(mode, null, psk.keysFile(), null, null, true);
    }

    @Test
    void pskWithLibnbdAndQemuClients() throws IOException {
        Path sock = dir.resolve("psk.sock");
        try (NbdServer s = start(sock, pskConfig(TlsMode.REQUIRE))) {
            assertEquals(sock.toAbsolutePath(), s.socketPath());
            // libnbd 1.14 takes the PSK identity from the URI's user part
            String uri = "nbds+unix://alice@/sparse?socket=" + sock + "&tls-psk-file=" + psk.keysFile();
            JsonNode info = JSON.readTree(Proc.run("nbdinfo", "--json", uri));
            assertTrue(info.get("TLS").asBoolean(), info.toString());
            Path out = dir.resolve("psk-copy.raw");
            Proc.run("nbdcopy", uri, out.toString());
            assertEquals(Proc.sha256(sparseRef), Proc.sha256(out));
            Path rawOut = dir.resolve("psk-raw.raw");
            Proc.run("nbdcopy", uri.replace("/sparse?", "/raw?"), rawOut.toString());
            assertEquals(Proc.sha256(rawFile), Proc.sha256(rawOut), "mapped buffers through TLS-PSK");

            String obj = "tls-creds-psk,id=tls0,endpoint=client,dir=" + psk.dir() + ",username=alice";
            Path conv = dir.resolve("psk-convert.raw");
            Proc.run("qemu-img", "convert", "--object", obj, "--image-opts",
                "driver=nbd,path=" + sock + ",export=sparse,tls-creds=tls0", "-O", "raw", conv.toString());
            assertEquals(Proc.sha256(sparseRef), Proc.sha256(conv));
            String io = Proc.run("qemu-io", "-r", "--object", obj, "--image-opts",
                "driver=nbd,path=" + sock + ",export=mem,tls-creds=tls0", "-c", "read -P 0xab 0 64k", "-c", "read -P 0 64k 64k");
            assertFalse(io.contains("verification failed"), io);

            // a wrong key only fails that client
            TlsFixtures.PskCreds wrong = TlsFixtures.psk(dir.resolve("wrong"), "alice");
            Proc.Result bad = Proc.exec(Duration.ofSeconds(30), "nbdinfo",
                "nbds+unix://alice@/sparse?socket=" + sock + "&tls-psk-file=" + wrong.keysFile());
            assertNotEquals(0, bad.exitCode(), bad.toString());
            assertTrue(JSON.readTree(Proc.run("nbdinfo", "--json", uri)).get("TLS").asBoolean());
        }
    }

    /** Answers every read with data segments of at most 4 KiB and a zero segment where the data is zero. */
    static final class SplitReads extends ForwardingExport {
        SplitReads(NbdExport delegate) {
            super(delegate);
        }

        @Override
        public java.util.concurrent.CompletableFuture<ReadResult> read(long offset, int length) {
            return delegate.read(offset, length).thenApply(r -> {
                ReadResult.Builder b = ReadResult.builder();
                for (ReadResult.Segment seg : r.segments()) {
                    if (seg instanceof ReadResult.Data d) {
                        io.netty.buffer.ByteBuf buf = d.buf();
                        while (buf.isReadable()) {
                            int n = Math.min(4096, buf.readableBytes());
                            io.netty.buffer.ByteBuf piece = buf.readRetainedSlice(n);
                            boolean zero = true;
                            for (int i = 0; i < n && zero; i++) {
                                zero = piece.getByte(piece.readerIndex() + i) == 0;
                            }
                            if (zero) {
                                piece.release();
                                b.addZeroes(n);
                            } else {
                                b.addData(piece);
                            }
                        }
                        buf.release();
                    } else {
                        b.addZeroes(seg.length());
                    }
                }
                return b.build();
            });
        }
    }

    @Test
    void repliesOfManySegmentsThroughTlsPsk() throws IOException {
        // regression: the PSK handler consumes a buffer inside write(); chunk offsets must not depend on it
        Path sock = dir.resolve("split.sock");
        Path ref = dir.resolve("mem.ref");
        java.nio.file.Files.write(ref, mem);
        try (NbdServer s = start(sock, pskConfig(TlsMode.REQUIRE))) {
            assertEquals(sock.toAbsolutePath(), s.socketPath());
            String uri = "nbds+unix://alice@/split?socket=" + sock + "&tls-psk-file=" + psk.keysFile();
            Path out = dir.resolve("split.raw");
            Proc.run("nbdcopy", "--request-size=262144", uri, out.toString());
            assertEquals(Proc.sha256(ref), Proc.sha256(out));
        }
    }

    @Test
    void requireModeRefusesPlaintext() throws IOException {
        Path sock = dir.resolve("req.sock");
        try (NbdServer s = start(sock, pskConfig(TlsMode.REQUIRE))) {
            assertEquals(sock.toAbsolutePath(), s.socketPath());
            try (RawNbdClient c = new RawNbdClient(sock).handshake()) {
                for (int opt : new int[] {7, 6, 3, 8, 9, 0x4242}) {
                    c.sendOption(opt, opt == 7 || opt == 6 ? RawNbdClient.goData("mem") : new byte[0]);
                    RawNbdClient.OptReply r = c.readOptionReply();
                    assertEquals(NbdOptionReplyType.ERR_TLS_REQD, r.replyType(), "option " + opt);
                }
                c.sendOption(1, "mem".getBytes());
                assertTrue(c.closedByServer(), "EXPORT_NAME before TLS must close the connection");
            }
            Proc.Result plain = Proc.exec(Duration.ofSeconds(30), "nbdinfo", "nbd+unix:///mem?socket=" + sock);
            assertNotEquals(0, plain.exitCode(), plain.toString());
            Proc.Result qemu = Proc.exec(Duration.ofSeconds(30), "qemu-img", "info", "nbd+unix:///mem?socket=" + sock);
            assertNotEquals(0, qemu.exitCode(), qemu.toString());
        }
    }

    @Test
    void optionalTlsServesPlainAndTlsClients() throws IOException {
        Path sock = dir.resolve("opt.sock");
        try (NbdServer s = start(sock, pskConfig(TlsMode.PREFER))) {
            assertEquals(sock.toAbsolutePath(), s.socketPath());
            JsonNode plain = JSON.readTree(Proc.run("nbdinfo", "--json", "nbd+unix:///mem?socket=" + sock));
            assertFalse(plain.get("TLS").asBoolean());
            JsonNode tls = JSON.readTree(Proc.run("nbdinfo", "--json", "nbds+unix://alice@/mem?socket=" + sock
                + "&tls-psk-file=" + psk.keysFile()));
            assertTrue(tls.get("TLS").asBoolean());
        }
    }

    @Test
    void x509WithClientCertificates() throws IOException {
        Path sock = dir.resolve("x509.sock");
        TlsConfig cfg = new TlsConfig(TlsMode.REQUIRE, x509.serverDir(), null, null, null, true);
        try (NbdServer s = start(sock, cfg)) {
            assertEquals(sock.toAbsolutePath(), s.socketPath());
            String uri = "nbds+unix:///sparse?socket=" + sock + "&tls-certificates=" + x509.clientDir()
                + "&tls-hostname=localhost";
            Path out = dir.resolve("x509-copy.raw");
            Proc.run("nbdcopy", uri, out.toString());
            assertEquals(Proc.sha256(sparseRef), Proc.sha256(out));
            Path rawOut = dir.resolve("x509-raw.raw");
            Proc.run("nbdcopy", uri.replace("/sparse?", "/raw?"), rawOut.toString());
            assertEquals(Proc.sha256(rawFile), Proc.sha256(rawOut), "mapped buffers through X.509 TLS");

            String obj = "tls-creds-x509,id=tls0,endpoint=client,dir=" + x509.clientDir();
            Path conv = dir.resolve("x509-convert.raw");
            Proc.run("qemu-img", "convert", "--object", obj, "--image-opts",
                "driver=nbd,path=" + sock + ",export=sparse,tls-creds=tls0,tls-hostname=localhost", "-O", "raw",
                conv.toString());
            assertEquals(Proc.sha256(sparseRef), Proc.sha256(conv));

            // without a client certificate the handshake fails
            Path noCert = TlsFixtures.copy(x509.clientDir(), dir.resolve("nocert"), "ca-cert.pem");
            Proc.Result bad = Proc.exec(Duration.ofSeconds(30), "nbdinfo", "nbds+unix:///sparse?socket=" + sock
                + "&tls-certificates=" + noCert + "&tls-hostname=localhost");
            assertNotEquals(0, bad.exitCode(), bad.toString());
            assertTrue(JSON.readTree(Proc.run("nbdinfo", "--json", uri)).get("TLS").asBoolean());
        }
    }
}
