package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdError;
import io.jbackup.testutil.Proc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The client against nbdkit 1.32: memory and data plugins, error and blocksize-policy filters, old handshakes. */
class NbdkitClientTest {
    static final int K = 1024;
    static final int M = 1024 * 1024;

    @TempDir
    Path dir;

    /** {@code nbdkit -f -U SOCK ARGS...}; returns the server handle, its URI is {@link #uri}. */
    Proc.Background nbdkit(String... args) {
        Path sock = dir.resolve("nbdkit-" + System.nanoTime() + ".sock");
        List<String> cmd = new ArrayList<>(List.of("nbdkit", "-f", "-U", sock.toString()));
        cmd.addAll(Arrays.asList(args));
        return Proc.start(dir.resolve(sock.getFileName() + ".log"), cmd.toArray(String[]::new)).awaitPath(sock);
    }

    static NbdUri uri(Proc.Background b) {
        return NbdUri.unix(Path.of(b.cmd().get(3)), "", false);
    }

    @Test
    void memoryPluginWritesReadsExtentsAndMultiConn() throws Exception {
        byte[] expected = new byte[64 * M];
        byte[] data = new byte[8 * M];
        new Random(7).nextBytes(data);
        try (Proc.Background s = nbdkit("memory", "64M");
             NbdClient c = NbdClient.connect(uri(s), ClientOptions.defaults().withConnections(4)
                 .withMetaContexts(List.of(NbdConstants.CONTEXT_BASE_ALLOCATION)))) {
            assertEquals(64L * M, c.info().size());
            assertTrue(c.info().canMultiConn());
            assertEquals(4, c.connectionCount());
            c.write(M, data, 0, data.length, false).get(20, TimeUnit.SECONDS);
            System.arraycopy(data, 0, expected, M, data.length);
            c.writeZeroes(2 * M, 512 * K, false).get(20, TimeUnit.SECONDS);
            Arrays.fill(expected, 2 * M, 2 * M + 512 * K, (byte) 0);
            c.trim(4 * M, M).get(20, TimeUnit.SECONDS); // nbdkit memory: trimmed data reads as zeroes
            Arrays.fill(expected, 4 * M, 5 * M, (byte) 0);
            c.flush().get(20, TimeUnit.SECONDS);
            byte[] back = new byte[64 * M];
            c.read(0, back, 0, back.length).get(30, TimeUnit.SECONDS);
            assertArrayEquals(expected, back);
            List<Extent> map = Extents.coalesce(Extents.map(c, NbdConstants.CONTEXT_BASE_ALLOCATION, 0, 64L * M));
            assertEquals(new Extent(0, M, 3), map.get(0), "never written: hole,zero");
            assertEquals(NbdinfoMap.extents(uri(s).toString(), NbdConstants.CONTEXT_BASE_ALLOCATION), map);
        }
    }

    @Test
    void dataPluginReadsAndHoles() throws Exception {
        byte[] expected = new byte[2 * M];
        for (int i = 0; i < 4096; i++) {
            expected[i] = (byte) (i % 2 == 0 ? 0x55 : 0xaa);
        }
        expected[M] = 1;
        expected[M + 1] = 2;
        expected[M + 2] = 3;
        try (Proc.Background s = nbdkit("data", "( 0x55 0xaa )*2048 @1048576 1 2 3", "size=2M");
             NbdClient c = NbdClient.connect(uri(s), ClientOptions.defaults()
                 .withMetaContexts(List.of(NbdConstants.CONTEXT_BASE_ALLOCATION)))) {
            byte[] back = new byte[2 * M];
            c.read(0, back, 0, back.length).get(20, TimeUnit.SECONDS);
            assertArrayEquals(expected, back);
            List<Extent> map = Extents.coalesce(Extents.map(c, NbdConstants.CONTEXT_BASE_ALLOCATION, 0, 2L * M));
            assertEquals(NbdinfoMap.extents(uri(s).toString(), NbdConstants.CONTEXT_BASE_ALLOCATION), map);
            assertTrue(map.stream().anyMatch(e -> e.flags() == 3), "the data plugin is sparse: " + map);
        }
    }

    @Test
    void errorFilterFailsTheCommandWithTheServersError() throws Exception {
        try (Proc.Background s = nbdkit("--filter=error", "memory", "1M", "error-pread=EIO", "error-pread-rate=1");
             NbdClient c = NbdClient.connect(uri(s), ClientOptions.defaults())) {
            ExecutionException e = assertThrows(ExecutionException.class,
                () -> c.read(0, new byte[4096], 0, 4096).get(20, TimeUnit.SECONDS));
            NbdCommandException ce = assertInstanceOf(NbdCommandException.class, e.getCause());
            assertEquals(NbdError.EIO, ce.error());
            c.write(0, new byte[4096], 0, 4096, false).get(20, TimeUnit.SECONDS); // the connection still works
        }
    }

    @Test
    void blockSizeConstraintsAreObeyed() throws Exception {
        try (Proc.Background s = nbdkit("--filter=blocksize-policy", "memory", "1M", "blocksize-minimum=4096",
            "blocksize-preferred=65536", "blocksize-maximum=131072", "blocksize-error-policy=error");
             NbdClient c = NbdClient.connect(uri(s), ClientOptions.defaults())) {
            ExportInfo i = c.info();
            assertEquals(4096, i.minBlock());
            assertEquals(65536, i.preferredBlock());
            assertEquals(131072, i.maxBlock());
            assertEquals(131072, c.requestSize(), "requests are split at the server's maximum");
            byte[] data = new byte[M];
            new Random(3).nextBytes(data);
            c.write(0, data, 0, data.length, false).get(20, TimeUnit.SECONDS); // 8 requests of 128 KiB
            byte[] back = new byte[M];
            c.read(0, back, 0, back.length).get(20, TimeUnit.SECONDS);
            assertArrayEquals(data, back);
            byte[] odd = new byte[10];
            c.read(100_000, odd, 0, 10).get(20, TimeUnit.SECONDS); // widened to [98304, 102400) internally
            assertArrayEquals(Arrays.copyOfRange(data, 100_000, 100_010), odd);
            assertThrows(IllegalArgumentException.class, () -> c.write(100, data, 0, 4096, false));
        }
    }

    @Test
    void oldstyleNewstyleWithoutFixedFlagUsesExportName() throws Exception {
        try (Proc.Background s = nbdkit("--mask-handshake=0", "data", "1 2 3 4", "size=64k");
             NbdClient c = NbdClient.connect(uri(s), ClientOptions.defaults()
                 .withMetaContexts(List.of(NbdConstants.CONTEXT_BASE_ALLOCATION)))) {
            assertFalse(c.structuredReplies());
            assertTrue(c.metaContexts().isEmpty());
            assertEquals(64 * K, c.info().size());
            byte[] b = new byte[64 * K];
            c.read(0, b, 0, b.length).get(20, TimeUnit.SECONDS);
            assertArrayEquals(new byte[] {1, 2, 3, 4, 0}, Arrays.copyOf(b, 5));
        }
    }

    @Test
    void withoutStructuredRepliesReadsUseSimpleReplies() throws Exception {
        byte[] data = new byte[3 * M];
        new Random(5).nextBytes(data);
        try (Proc.Background s = nbdkit("--no-sr", "memory", "4M");
             NbdClient c = NbdClient.connect(uri(s), ClientOptions.defaults())) {
            assertFalse(c.structuredReplies());
            c.write(512 * K, data, 0, data.length, true).get(20, TimeUnit.SECONDS);
            byte[] back = new byte[4 * M];
            c.read(0, back, 0, back.length).get(20, TimeUnit.SECONDS);
            assertArrayEquals(data, Arrays.copyOfRange(back, 512 * K, 512 * K + data.length));
            assertArrayEquals(new byte[512 * K], Arrays.copyOf(back, 512 * K));
        }
    }

    @Test
    void listsExports() throws Exception {
        try (Proc.Background s = nbdkit("memory", "1M")) {
            List<ExportInfo> l = NbdClient.listExports(uri(s), ClientOptions.defaults());
            assertEquals(1, l.size());
            assertEquals(M, l.get(0).size());
        }
    }
}
