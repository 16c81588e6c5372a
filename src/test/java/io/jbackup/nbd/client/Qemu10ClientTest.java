package io.jbackup.nbd.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdHeaderMode;
import io.jbackup.nbd.tls.TlsConfig;
import io.jbackup.nbd.tls.TlsMode;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.Qemu10;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.TlsFixtures;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The client against real qemu-nbd 10.0 (extended headers, {@code BLOCK_STATUS_PAYLOAD}) and 7.2 (neither) serving
 * the same qcow2 overlay with a backing file and a dirty bitmap: the client negotiates extended headers with 10 and
 * compact structured replies with 7.2 (and with 10 when told not to ask), reads are bit-exact with
 * {@code qemu-img convert}, and the extents of all three contexts are the same whichever way they were asked.
 * A block-status payload makes qemu-nbd 10 compute only the context asked (its {@code nbd_co_send_extents} trace);
 * after STARTTLS the extended headers are negotiated again. Skipped, with the reason, where QEMU 10 is absent.
 */
class Qemu10ClientTest {
    static final String BITMAP = QemuNbdClientTest.BITMAP;
    static final String DIRTY = NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX + BITMAP;
    static final List<String> CONTEXTS = List.of(NbdConstants.CONTEXT_BASE_ALLOCATION,
        NbdConstants.CONTEXT_ALLOCATION_DEPTH, DIRTY);
    static final long SIZE = 8 << 20;

    @TempDir
    static Path dir;
    static Path top;
    static byte[] expected;
    static Proc.Background qemu10;
    static Proc.Background qemu72;

    @BeforeAll
    static void setUp() throws Exception {
        Qemu10.assume();
        top = QemuNbdClientTest.overlayWithBitmap(dir);
        expected = Files.readAllBytes(QemuImages.toRaw(top, dir.resolve("top.raw")));
        qemu10 = Qemu10.qemuNbd(dir, top, "qcow2", "-r", "-B", BITMAP, "-A", "-e", "4");
        qemu72 = QemuImages.qemuNbd(dir, top, "qcow2", "-r", "-B", BITMAP, "-A", "-e", "4");
    }

    @AfterAll
    static void tearDown() {
        for (Proc.Background s : new Proc.Background[] {qemu10, qemu72}) {
            if (s != null) {
                s.close();
            }
        }
    }

    static NbdUri uri(Proc.Background s) {
        return NbdUri.parse(QemuImages.uriOf(s));
    }

    static ClientOptions opts() {
        return ClientOptions.defaults().withMetaContexts(CONTEXTS).withConnections(2);
    }

    /** Reads the whole export and maps every context. */
    static Map<String, List<Extent>> readAndMap(NbdClient c) throws Exception {
        byte[] all = new byte[(int) SIZE];
        c.read(0, all, 0, all.length).get(30, TimeUnit.SECONDS);
        assertArrayEquals(expected, all);
        Map<String, List<Extent>> maps = new LinkedHashMap<>();
        for (String ctx : CONTEXTS) {
            maps.put(ctx, Extents.coalesce(Extents.map(c, ctx, 0, SIZE)));
        }
        return maps;
    }

    @Test
    void extendedHeadersWith10StructuredRepliesWith72AndTheSameExtents() throws Exception {
        Map<String, List<Extent>> extended;
        try (NbdClient c = NbdClient.connect(uri(qemu10), opts())) {
            assertEquals(NbdHeaderMode.EXTENDED, c.headerMode());
            assertTrue(c.info().canBlockStatusPayload(), c.info().flagNames());
            assertEquals(2, c.connectionCount(), "extended headers on every connection");
            assertEquals(CONTEXTS, List.copyOf(c.metaContexts().keySet()));
            assertEquals(SIZE, c.maxStatusLength(), "one 64-bit request may cover the export");
            extended = readAndMap(c);
        }
        try (NbdClient c = NbdClient.connect(uri(qemu72), opts())) {
            assertEquals(NbdHeaderMode.COMPACT, c.headerMode(), "qemu-nbd 7.2 answers ERR_UNSUP");
            assertTrue(c.structuredReplies());
            assertEquals(extended, readAndMap(c));
        }
        try (NbdClient c = NbdClient.connect(uri(qemu10), opts().withExtendedHeaders(false))) {
            assertEquals(NbdHeaderMode.COMPACT, c.headerMode());
            assertTrue(c.structuredReplies());
            assertEquals(extended, readAndMap(c));
        }
        // the dirty bitmap as written: [512k, 768k), [3200k, 3264k), [5M, 5M+64k), [6M, 6M+128k)
        List<Extent> dirty = extended.get(DIRTY).stream().filter(e -> e.flags() == NbdConstants.STATE_DIRTY).toList();
        assertEquals(List.of(new Extent(512 << 10, 256 << 10, 1), new Extent(3200 << 10, 64 << 10, 1),
            new Extent(5 << 20, 64 << 10, 1), new Extent(6 << 20, 128 << 10, 1)), dirty);
    }

    @Test
    void blockStatusPayloadAsksOnlyTheContextNeeded() throws Exception {
        Path log;
        try (Proc.Background traced = Qemu10.qemuNbd(dir, top, "qcow2", "-r", "-B", BITMAP, "-A", "--trace",
            "nbd_co_send_extents")) {
            log = dir.resolve(QemuImages.socketOf(traced).getFileName() + ".log");
            try (NbdClient c = NbdClient.connect(uri(traced), ClientOptions.defaults().withMetaContexts(CONTEXTS))) {
                int id = c.metaContexts().get(DIRTY);
                long before = traceLines(log);
                Map<String, List<Extent>> one = c.blockStatus(0, SIZE, false, List.of(DIRTY)).get(30,
                    TimeUnit.SECONDS);
                assertEquals(List.of(DIRTY), List.copyOf(one.keySet()));
                assertEquals(0, one.get(DIRTY).get(0).offset());
                List<String> sent = newTraceLines(log, before, 1);
                assertEquals(1, sent.size(), "one chunk, for the context asked: " + sent);
                assertTrue(sent.get(0).contains("context = " + id), sent.toString());
                before = traceLines(log);
                Map<String, List<Extent>> all = c.blockStatus(0, SIZE, false).get(30, TimeUnit.SECONDS);
                assertEquals(CONTEXTS.size(), all.size());
                assertEquals(3, newTraceLines(log, before, 3).size(), "without a payload every context is computed");
                assertEquals(one.get(DIRTY), all.get(DIRTY));
            }
        }
    }

    static long traceLines(Path log) throws Exception {
        return Files.readAllLines(log).stream().filter(l -> l.contains("nbd_co_send_extents")).count();
    }

    /** The trace lines after the first {@code skip}, waiting up to 5 s for {@code want} of them. */
    static List<String> newTraceLines(Path log, long skip, int want) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        List<String> out;
        do {
            out = Files.readAllLines(log).stream().filter(l -> l.contains("nbd_co_send_extents")).skip(skip)
                .toList();
            if (out.size() >= want) {
                Thread.sleep(100); // and no more than that
                return Files.readAllLines(log).stream().filter(l -> l.contains("nbd_co_send_extents")).skip(skip)
                    .toList();
            }
            Thread.sleep(20);
        } while (System.nanoTime() < deadline);
        return out;
    }

    @Test
    void extendedHeadersAreNegotiatedAgainAfterStartTls() throws Exception {
        TlsFixtures.PskCreds creds = TlsFixtures.psk(dir.resolve("psk"), "alice");
        TlsConfig tls = new TlsConfig(TlsMode.REQUIRE, null, creds.keysFile(), "alice", null, true);
        try (Proc.Background s = Qemu10.qemuNbd(dir, top, "qcow2", "-r", "-B", BITMAP, "--object",
            "tls-creds-psk,id=tls0,endpoint=server,dir=" + creds.dir(), "--tls-creds", "tls0");
             NbdClient c = NbdClient.connect(NbdUri.unix(QemuImages.socketOf(s), "", true),
                 ClientOptions.defaults().withTls(tls).withMetaContexts(List.of(DIRTY)))) {
            assertEquals(NbdHeaderMode.EXTENDED, c.headerMode());
            byte[] all = new byte[(int) SIZE];
            c.read(0, all, 0, all.length).get(30, TimeUnit.SECONDS);
            assertArrayEquals(expected, all);
            assertEquals(4, Extents.map(c, DIRTY, 0, SIZE).stream()
                .filter(e -> e.flags() == NbdConstants.STATE_DIRTY).count());
        }
    }
}
