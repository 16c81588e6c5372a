package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The client against real qemu-nbd 7.2 serving a qcow2 overlay (with a backing file and a persistent dirty bitmap)
 * read-only: extents of all three meta contexts equal the writes made and nbdinfo's map; reads equal
 * {@code qemu-img convert -O raw}.
 */
class QemuNbdClientTest {
    static final String BITMAP = "b1";
    static final String DIRTY = NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX + BITMAP;
    static final long SIZE = 8 << 20;
    static final long K = 1024;
    static final long M = 1024 * 1024;

    @TempDir
    static Path dir;
    static Path top;
    static byte[] expected;
    static Proc.Background server;
    static NbdUri uri;

    /**
     * {@code dir/top.qcow2}: 8 MiB over {@code dir/base.qcow2}, with bitmap {@link #BITMAP} dirty at [512k, 768k),
     * [5M, 5M+64k), [6M, 6M+128k) (zeroes), [3M+64k, 3M+128k) (zeroes over backing data).
     */
    static Path overlayWithBitmap(Path dir) {
        Path base = QemuImages.qcow2(dir.resolve("base.qcow2"), "8M");
        QemuImages.io(base, "qcow2", "write -P 0x11 0 1M", "write -P 0x22 3M 512k");
        Path top = QemuImages.qcow2Overlay(dir.resolve("top.qcow2"), base);
        QemuImages.addBitmap(top, BITMAP);
        QemuImages.io(top, "qcow2", "write -P 0x33 512k 256k", "write -P 0x44 5M 64k", "write -z 6M 128k",
            "write -z 3200k 64k");
        return top;
    }

    @BeforeAll
    static void setUp() throws Exception {
        top = overlayWithBitmap(dir);
        expected = Files.readAllBytes(QemuImages.toRaw(top, dir.resolve("top.raw")));
        server = QemuImages.qemuNbd(dir, top, "qcow2", "-r", "-B", BITMAP, "-A", "-e", "4");
        uri = NbdUri.parse(QemuImages.uriOf(server));
    }

    @AfterAll
    static void tearDown() {
        if (server != null) {
            server.close();
        }
    }

    static ClientOptions opts(String... contexts) {
        return ClientOptions.defaults().withMetaContexts(List.of(contexts));
    }

    @Test
    void exportInfoAndNegotiatedContexts() throws Exception {
        try (NbdClient c = NbdClient.connect(uri, opts(NbdConstants.CONTEXT_BASE_ALLOCATION,
            NbdConstants.CONTEXT_ALLOCATION_DEPTH, DIRTY, "qemu:dirty-bitmap:nosuch"))) {
            ExportInfo i = c.info();
            assertEquals(SIZE, i.size());
            assertTrue(i.readOnly());
            assertTrue(i.canMultiConn(), "qemu-nbd -r -e 4 advertises CAN_MULTI_CONN: " + i.flagNames());
            assertEquals(1, i.minBlock());
            assertEquals(4096, i.preferredBlock());
            assertEquals(32 << 20, i.maxBlock());
            assertTrue(c.structuredReplies());
            assertEquals(List.of(NbdConstants.CONTEXT_BASE_ALLOCATION, NbdConstants.CONTEXT_ALLOCATION_DEPTH, DIRTY),
                List.copyOf(c.metaContexts().keySet()));
        }
    }

    @Test
    void listMetaContextsAndExports() throws Exception {
        assertEquals(List.of(NbdConstants.CONTEXT_BASE_ALLOCATION, NbdConstants.CONTEXT_ALLOCATION_DEPTH, DIRTY),
            NbdClient.listMetaContexts(uri, ClientOptions.defaults()));
        assertEquals(List.of(DIRTY), NbdClient.listMetaContexts(uri, ClientOptions.defaults(), "qemu:dirty-bitmap:"));
        List<ExportInfo> exports = NbdClient.listExports(uri, ClientOptions.defaults());
        assertEquals(1, exports.size());
        assertEquals("", exports.get(0).name());
        assertEquals(SIZE, exports.get(0).size());
    }

    @Test
    void dirtyBitmapExtentsEqualTheWritesAndNbdinfo() throws Exception {
        try (NbdClient c = NbdClient.connect(uri, opts(DIRTY))) {
            List<Extent> map = Extents.coalesce(Extents.map(c, DIRTY, 0, SIZE));
            List<Extent> dirty = map.stream().filter(e -> e.flags() == NbdConstants.STATE_DIRTY).toList();
            assertEquals(List.of(new Extent(512 * K, 256 * K, 1), new Extent(3 * M + 128 * K, 64 * K, 1),
                new Extent(5 * M, 64 * K, 1), new Extent(6 * M, 128 * K, 1)), dirty);
            assertEquals(NbdinfoMap.extents(uri.toString(), DIRTY), map);
        }
    }

    @Test
    void allocationDepthOverTheBackingChainMatchesNbdinfo() throws Exception {
        try (NbdClient c = NbdClient.connect(uri, opts(NbdConstants.CONTEXT_ALLOCATION_DEPTH))) {
            List<Extent> map = Extents.coalesce(Extents.map(c, NbdConstants.CONTEXT_ALLOCATION_DEPTH, 0, SIZE));
            assertTrue(map.contains(new Extent(0, 512 * K, 2)), "backing data at depth 2: " + map);
            assertTrue(map.contains(new Extent(512 * K, 256 * K, 1)), "overlay data at depth 1: " + map);
            assertTrue(map.contains(new Extent(768 * K, 256 * K, 2)), map.toString());
            assertEquals(NbdinfoMap.extents(uri.toString(), NbdConstants.CONTEXT_ALLOCATION_DEPTH), map);
        }
    }

    @Test
    void baseAllocationHolesMatchNbdinfo() throws Exception {
        try (NbdClient c = NbdClient.connect(uri, opts(NbdConstants.CONTEXT_BASE_ALLOCATION))) {
            List<Extent> map = Extents.coalesce(Extents.map(c, NbdConstants.CONTEXT_BASE_ALLOCATION, 0, SIZE));
            assertTrue(map.contains(new Extent(1 * M, 2 * M, NbdConstants.STATE_HOLE | NbdConstants.STATE_ZERO)),
                "never-written range is a hole: " + map);
            assertEquals(NbdinfoMap.extents(uri.toString(), NbdConstants.CONTEXT_BASE_ALLOCATION), map);
        }
    }

    @Test
    void blockStatusForSeveralContextsInOneRequestAndReqOne() throws Exception {
        try (NbdClient c = NbdClient.connect(uri, opts(NbdConstants.CONTEXT_BASE_ALLOCATION,
            NbdConstants.CONTEXT_ALLOCATION_DEPTH, DIRTY))) {
            Map<String, List<Extent>> all = c.blockStatus(0, SIZE, false).get(10, TimeUnit.SECONDS);
            assertEquals(3, all.size());
            for (List<Extent> l : all.values()) {
                assertEquals(0, l.get(0).offset());
            }
            Map<String, List<Extent>> one = c.blockStatus(512 * K, 4 * K, true).get(10, TimeUnit.SECONDS);
            assertEquals(Map.of(NbdConstants.CONTEXT_BASE_ALLOCATION, List.of(new Extent(512 * K, 4 * K, 0)),
                NbdConstants.CONTEXT_ALLOCATION_DEPTH, List.of(new Extent(512 * K, 4 * K, 1)),
                DIRTY, List.of(new Extent(512 * K, 4 * K, 1))), one);
            Map<String, List<Extent>> wide = c.blockStatus(0, SIZE, true).get(10, TimeUnit.SECONDS);
            assertEquals(List.of(new Extent(0, 512 * K, 0)), wide.get(DIRTY));
        }
    }

    @Test
    void readsEqualTheImageBytes() throws Exception {
        try (NbdClient c = NbdClient.connect(uri, ClientOptions.defaults())) {
            byte[] all = new byte[(int) SIZE];
            c.read(0, all, 0, all.length).get(30, TimeUnit.SECONDS);
            assertArrayEquals(expected, all);
            // unaligned, odd-sized, into the middle of a larger array
            byte[] part = new byte[200_000];
            c.read(1_048_000, part, 7, 150_001).get(10, TimeUnit.SECONDS);
            assertArrayEquals(java.util.Arrays.copyOfRange(expected, 1_048_000, 1_048_000 + 150_001),
                java.util.Arrays.copyOfRange(part, 7, 7 + 150_001));
        }
    }

    @Test
    void pipelinesAtLeast64RequestsOnOneConnection() throws Exception {
        try (NbdClient c = NbdClient.connect(uri, ClientOptions.defaults().withMaxRequestSize(4096))) {
            byte[] all = new byte[(int) SIZE];
            c.read(0, all, 0, all.length).get(60, TimeUnit.SECONDS);
            assertArrayEquals(expected, all);
            assertEquals(64, c.connectionsForTest().get(0).handler.peakInFlightForTest(),
                "2048 requests of 4 KiB submitted at once must fill the 64-request window");
        }
    }

    @Test
    void multiConnOpensFourConnectionsAndSpreadsRequests() throws Exception {
        try (NbdClient c = NbdClient.connect(uri, ClientOptions.defaults().withConnections(4))) {
            assertEquals(4, c.connectionCount());
            byte[] all = new byte[(int) SIZE];
            c.read(0, all, 0, all.length).get(30, TimeUnit.SECONDS);
            assertArrayEquals(expected, all);
            for (Connection conn : c.connectionsForTest()) {
                assertTrue(conn.handler.peakInFlightForTest() > 0, "every connection carried requests");
            }
        }
    }

    @Test
    void singleConnectionWithoutMultiConn(@TempDir Path d) throws Exception {
        try (Proc.Background s = QemuImages.qemuNbd(d, top, "qcow2", "-r");
             NbdClient c = NbdClient.connect(NbdUri.parse(QemuImages.uriOf(s)),
                 ClientOptions.defaults().withConnections(4))) {
            assertFalse(c.info().canMultiConn());
            assertEquals(1, c.connectionCount());
        }
    }
}
