package io.jbackup.nbd.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.testutil.Proc;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Serves test exports with {@link NbdServer} and reads them with the real clients: nbdinfo, nbdcopy, qemu-img,
 * qemu-io, qemu-nbd --list and python3-libnbd. Data is compared by SHA-256 or byte patterns.
 */
class NbdServerInteropTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long SPARSE_SIZE = 24L << 20;
    private static final int MIB = 1 << 20;

    @TempDir
    static Path dir;
    static NbdServer server;
    static Path sock;
    static SparseTestExport sparse;
    static Path sparseRef;
    static Path rawFile;
    static byte[] mem;

    @BeforeAll
    static void start() throws IOException {
        List<Extent> zeros = List.of(new Extent(2 * MIB, 4 * MIB, 0), new Extent(8 * MIB + 4096, 60 * 1024, 0),
            new Extent(20 * MIB, 4 * MIB, 0));
        ExtentSource dirty = (off, len) -> CompletableFuture.completedFuture(
            off < MIB ? List.of(new Extent(off, MIB - off, NbdConstants.STATE_DIRTY), new Extent(MIB, SPARSE_SIZE - MIB, 0))
                : List.of(new Extent(off, SPARSE_SIZE - off, 0)));
        sparse = new SparseTestExport("sparse", SPARSE_SIZE, zeros, Map.of("qemu:dirty-bitmap:test", dirty));
        sparseRef = dir.resolve("sparse.ref");
        sparse.writeReference(sparseRef);

        mem = new byte[4 * MIB];
        Arrays.fill(mem, 0, 65536, (byte) 0xab);
        Arrays.fill(mem, MIB, MIB + 65536, (byte) 0xcd);

        rawFile = dir.resolve("disk.raw");
        Random rnd = new Random(42);
        try (RandomAccessFile f = new RandomAccessFile(rawFile.toFile(), "rw")) {
            f.setLength(16L * MIB);
            byte[] b = new byte[MIB];
            for (long at : new long[] {0, MIB, 5L * MIB, 15L * MIB}) {
                rnd.nextBytes(b);
                f.seek(at);
                f.write(b);
            }
        }

        SimpleExportProvider provider = new SimpleExportProvider()
            .add("sparse", sparse.description(), () -> sparse)
            .add("mem", "memory export", () -> new MemoryExport("mem", "memory export", mem, true))
            .add("raw", "raw file export", () -> RawFileExport.open(rawFile, "raw", "raw file export"));
        sock = dir.resolve("nbd.sock");
        server = NbdServer.start(ServerConfig.builder().unixSocket(sock).build(), provider);
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
    }

    private static String uri(String export) {
        return "nbd+unix:///" + export + "?socket=" + sock;
    }

    @Test
    void nbdinfoListsExportsWithDescriptions() throws IOException {
        JsonNode j = JSON.readTree(Proc.run("nbdinfo", "--list", "--json", uri("")));
        assertEquals("newstyle-fixed", j.get("protocol").asText());
        assertTrue(j.get("structured").asBoolean());
        List<String> names = new ArrayList<>();
        for (JsonNode e : j.get("exports")) {
            String name = e.get("export-name").asText();
            names.add(name);
            switch (name) {
                case "sparse" -> {
                    assertEquals(sparse.description(), e.get("description").asText());
                    assertEquals(SPARSE_SIZE, e.get("export-size").asLong());
                    assertTrue(e.get("is_read_only").asBoolean());
                    assertTrue(e.get("can_multi_conn").asBoolean());
                    assertEquals(List.of("base:allocation", "qemu:dirty-bitmap:test"), texts(e.get("contexts")));
                    assertEquals(1, e.get("block_size_minimum").asInt());
                    assertEquals(4096, e.get("block_size_preferred").asInt());
                    assertEquals(32 << 20, e.get("block_size_maximum").asInt());
                }
                case "mem" -> {
                    assertEquals("memory export", e.get("description").asText());
                    assertEquals(4L * MIB, e.get("export-size").asLong());
                }
                case "raw" -> {
                    assertEquals("raw file export", e.get("description").asText());
                    assertEquals(16L * MIB, e.get("export-size").asLong());
                }
                default -> throw new AssertionError("unexpected export " + name);
            }
        }
        assertEquals(List.of("sparse", "mem", "raw"), names);
    }

    @Test
    void nbdinfoMapShowsZeroRangesAsHoleZero() throws IOException {
        JsonNode map = JSON.readTree(Proc.run("nbdinfo", "--map", "--json", uri("sparse")));
        List<Extent> got = new ArrayList<>();
        for (JsonNode e : map) {
            got.add(new Extent(e.get("offset").asLong(), e.get("length").asLong(), e.get("type").asInt()));
        }
        assertEquals(sparse.map(), got);
        assertEquals(3, got.stream().filter(e -> e.flags() == 3).count());

        JsonNode dirty = JSON.readTree(Proc.run("nbdinfo", "--map=qemu:dirty-bitmap:test", "--json", uri("sparse")));
        assertEquals(2, dirty.size());
        assertEquals(MIB, dirty.get(0).get("length").asLong());
        assertEquals(1, dirty.get(0).get("type").asInt());
        assertEquals(0, dirty.get(1).get("type").asInt());
    }

    @Test
    void nbdinfoMapOfRawFileFindsItsHoles() throws IOException {
        JsonNode map = JSON.readTree(Proc.run("nbdinfo", "--map", "--json", uri("raw")));
        List<Extent> got = new ArrayList<>();
        for (JsonNode e : map) {
            got.add(new Extent(e.get("offset").asLong(), e.get("length").asLong(), e.get("type").asInt()));
        }
        assertEquals(List.of(new Extent(0, 2L * MIB, 0), new Extent(2L * MIB, 3L * MIB, 3), new Extent(5L * MIB, MIB, 0),
            new Extent(6L * MIB, 9L * MIB, 3), new Extent(15L * MIB, MIB, 0)), got);
    }

    @Test
    void nbdcopyToFileMatchesSource() {
        Path out = dir.resolve("nbdcopy.out");
        Proc.run("nbdcopy", uri("sparse"), out.toString());
        assertEquals(Proc.sha256(sparseRef), Proc.sha256(out));
        Path out2 = dir.resolve("nbdcopy-raw.out");
        Proc.run("nbdcopy", "--connections=2", "--request-size=65536", uri("raw"), out2.toString());
        assertEquals(Proc.sha256(rawFile), Proc.sha256(out2));
    }

    @Test
    void qemuImgConvertAndCompare() {
        Path out = dir.resolve("convert.raw");
        Proc.run("qemu-img", "convert", "-f", "raw", "-O", "raw", uri("sparse"), out.toString());
        Proc.run("qemu-img", "compare", "-f", "raw", "-F", "raw", sparseRef.toString(), out.toString());
        assertEquals(Proc.sha256(sparseRef), Proc.sha256(out));
        Proc.run("qemu-img", "compare", "-f", "raw", "-F", "raw", rawFile.toString(), uri("raw"));
    }

    @Test
    void qemuIoReadsPatterns() {
        String out = Proc.run("qemu-io", "-r", "-f", "raw",
            "-c", "read -P 0xab 0 64k", "-c", "read -P 0 64k 960k", "-c", "read -P 0xcd 1M 64k",
            "-c", "read -P 0 1088k 2944k", "-c", "read -P 0xab 4095 1", uri("mem"));
        assertFalse(out.contains("verification failed"), out);
        assertEquals(5, out.split("read ").length - 1, out);
        Proc.Result bad = Proc.exec(Duration.ofSeconds(30), "qemu-io", "-r", "-f", "raw", "-c", "read -P 0xcd 0 4k", uri("mem"));
        assertTrue(bad.stdout().contains("verification failed"), "a wrong pattern must be detected: " + bad);
    }

    @Test
    void qemuNbdListShowsExports() {
        String out = Proc.run("qemu-nbd", "--list", "-k", sock.toString());
        assertTrue(out.contains("exports available: 3"), out);
        assertTrue(out.contains("export: 'sparse'"), out);
        assertTrue(out.contains("description: memory export"), out);
        assertTrue(out.contains("size:  " + SPARSE_SIZE), out);
        assertTrue(out.contains("qemu:dirty-bitmap:test"), out);
    }

    @Test
    void libnbdKeeps64ReadsInFlight() throws IOException {
        Path script = dir.resolve("aio.py");
        Files.writeString(script, String.join("\n",
            "import nbd, sys",
            "h = nbd.NBD()",
            "h.connect_uri(sys.argv[1])",
            "size = h.get_size()",
            "ref = open(sys.argv[2], 'rb').read()",
            "assert len(ref) == size",
            "bufs = []",
            "peak = 0",
            "for i in range(64):",
            "    off = (i * 373 * 1024) % (size - 65536)",
            "    b = nbd.Buffer(65536)",
            "    h.aio_pread(b, off)",
            "    bufs.append((off, b))",
            "    peak = max(peak, h.aio_in_flight())",
            "while h.aio_in_flight() > 0:",
            "    h.poll(-1)",
            "bad = [off for off, b in bufs if b.to_bytearray() != ref[off:off + 65536]]",
            "print('peak', peak, 'bad', len(bad))",
            "assert peak == 64, peak",
            "assert not bad, bad",
            "h.shutdown()",
            ""));
        String out = Proc.run("/usr/bin/python3", script.toString(), uri("sparse"), sparseRef.toString());
        assertTrue(out.contains("peak 64 bad 0"), out);
    }

    @Test
    void tcpListenerWithNbdinfoAndNbdcopy() throws IOException {
        SimpleExportProvider p = new SimpleExportProvider().add("sparse", "tcp", () -> sparse);
        try (NbdServer tcp = NbdServer.start(ServerConfig.builder().tcp("127.0.0.1", 0).build(), p)) {
            int port = ((java.net.InetSocketAddress) tcp.tcpAddress()).getPort();
            String uri = "nbd://127.0.0.1:" + port + "/sparse";
            JsonNode j = JSON.readTree(Proc.run("nbdinfo", "--json", uri));
            assertEquals(SPARSE_SIZE, j.get("exports").get(0).get("export-size").asLong());
            Path out = dir.resolve("tcp.out");
            Proc.run("nbdcopy", uri, out.toString());
            assertEquals(Proc.sha256(sparseRef), Proc.sha256(out));
        }
    }

    private static List<String> texts(JsonNode arr) {
        List<String> l = new ArrayList<>();
        arr.forEach(n -> l.add(n.asText()));
        return l;
    }
}
