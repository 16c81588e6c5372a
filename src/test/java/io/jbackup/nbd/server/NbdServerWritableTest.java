package io.jbackup.nbd.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jbackup.testutil.Proc;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Writes through the server with qemu-io: to a copy-on-write {@link OverlayExport} over a read-only raw file, and to
 * a writable {@link RawFileExport}; then reads back with qemu-io, nbdcopy and qemu-img compare.
 */
class NbdServerWritableTest {
    private static final int MIB = 1 << 20;
    private static final String[] WRITES = {"write -P 0x5a 4096 8192", "write -P 0x11 100 300", "write -z 1M 64k",
        "write -P 0x22 7M 1M", "write -P 0x33 5M 1000", "flush"};

    @TempDir
    Path dir;

    private Path makeBase() throws IOException {
        Path f = dir.resolve("base.raw");
        byte[] b = new byte[4 * MIB];
        new Random(3).nextBytes(b);
        try (RandomAccessFile r = new RandomAccessFile(f.toFile(), "rw")) {
            r.setLength(8L * MIB);
            r.write(b);
        }
        return f;
    }

    /** The base with {@link #WRITES} applied. */
    private static byte[] expected(Path base) throws IOException {
        byte[] e = Files.readAllBytes(base);
        Arrays.fill(e, 4096, 4096 + 8192, (byte) 0x5a);
        Arrays.fill(e, 100, 400, (byte) 0x11);
        Arrays.fill(e, MIB, MIB + 65536, (byte) 0);
        Arrays.fill(e, 7 * MIB, 8 * MIB, (byte) 0x22);
        Arrays.fill(e, 5 * MIB, 5 * MIB + 1000, (byte) 0x33);
        return e;
    }

    private static String[] qemuIo(String uri, boolean readOnly, String... cmds) {
        String[] c = new String[4 + 2 * cmds.length + (readOnly ? 1 : 0)];
        int i = 0;
        c[i++] = "qemu-io";
        if (readOnly) {
            c[i++] = "-r";
        }
        c[i++] = "-f";
        c[i++] = "raw";
        for (String cmd : cmds) {
            c[i++] = "-c";
            c[i++] = cmd;
        }
        c[i] = uri;
        return c;
    }

    @Test
    void qemuIoWritesGoToTheOverlayAndTheBaseStaysUntouched() throws IOException {
        Path baseFile = makeBase();
        String baseSha = Proc.sha256(baseFile);
        Path ovFile = dir.resolve("overlay.img");
        RawFileExport base = RawFileExport.open(baseFile, "disk", "test disk");
        OverlayExport overlay = OverlayExport.open(base, ovFile);
        Path sock = dir.resolve("s.sock");
        try (NbdServer server = NbdServer.start(ServerConfig.builder().unixSocket(sock).build(),
            new SimpleExportProvider().addShared(overlay))) {
            assertEquals(sock.toAbsolutePath(), server.socketPath());
            String uri = "nbd+unix:///disk?socket=" + sock;
            String out = Proc.run(qemuIo(uri, false, WRITES));
            assertFalse(out.contains("failed"), out);
            String check = Proc.run(qemuIo(uri, true, "read -P 0x5a 4096 8192", "read -P 0x11 100 300",
                "read -P 0 1M 64k", "read -P 0x22 7M 1M", "read -P 0x33 5M 1000", "read -P 0 6M 1M"));
            assertFalse(check.contains("verification failed"), check);

            Path expectedFile = dir.resolve("expected.raw");
            Files.write(expectedFile, expected(baseFile));
            Path copy = dir.resolve("copy.raw");
            Proc.run("nbdcopy", uri, copy.toString());
            assertEquals(Proc.sha256(expectedFile), Proc.sha256(copy));
            Proc.run("qemu-img", "compare", "-f", "raw", "-F", "raw", expectedFile.toString(), uri);
            String info = Proc.run("nbdinfo", uri);
            assertTrue(info.contains("(writable overlay)"), info);
            assertTrue(info.contains("can_multi_conn: true"), info);
        }
        assertEquals(baseSha, Proc.sha256(baseFile), "the base file must not change");
        long changed = overlay.changedBytes();
        assertTrue(changed >= MIB + 65536 && changed <= MIB + 65536 + 8 * 4096 + 8192, "changed bytes " + changed);
        overlay.close();
        long allocatedKib = Long.parseLong(Proc.run("du", "-k", ovFile.toString()).split("\\s+")[0]);
        assertTrue(allocatedKib < 2048, "the overlay file must stay sparse: " + allocatedKib + " KiB");

        // reopened from its map, served again: the same image
        OverlayExport again = OverlayExport.open(RawFileExport.open(baseFile, "disk", ""), ovFile);
        try (NbdServer server = NbdServer.start(ServerConfig.builder().unixSocket(sock).build(),
            new SimpleExportProvider().addShared(again))) {
            assertEquals(sock.toAbsolutePath(), server.socketPath());
            String check = Proc.run(qemuIo("nbd+unix:///disk?socket=" + sock, true, "read -P 0x5a 4096 8192",
                "read -P 0x22 7M 1M"));
            assertFalse(check.contains("verification failed"), check);
        }
        again.discard();
        assertFalse(Files.exists(ovFile));
    }

    @Test
    void qemuIoWritesToAWritableRawFile() throws IOException {
        Path file = makeBase();
        byte[] want = expected(file);
        Path sock = dir.resolve("w.sock");
        try (NbdServer server = NbdServer.start(ServerConfig.builder().unixSocket(sock).build(),
            new SimpleExportProvider().add("rw", "", () -> RawFileExport.open(file, "rw", "", false, true,
                IoPool.shared(), io.netty.buffer.PooledByteBufAllocator.DEFAULT)))) {
            assertEquals(sock.toAbsolutePath(), server.socketPath());
            String out = Proc.run(qemuIo("nbd+unix:///rw?socket=" + sock, false, WRITES));
            assertFalse(out.contains("failed"), out);
            Proc.run(qemuIo("nbd+unix:///rw?socket=" + sock, false, "write -P 0x44 2M 4k", "discard 3M 64k"));
        }
        Arrays.fill(want, 2 * MIB, 2 * MIB + 4096, (byte) 0x44);
        Path expectedFile = dir.resolve("expected.raw");
        Files.write(expectedFile, want);
        // TRIM is a no-op on a raw file, so [3M, 3M+64k) keeps its data
        assertEquals(Proc.sha256(expectedFile), Proc.sha256(file));
    }
}
