package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.NbdError;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** WRITE, WRITE_ZEROES, TRIM, FLUSH and CACHE against a writable qemu-nbd export, checked with qemu-img/qemu-io. */
class QemuNbdWriteTest {
    static final int M = 1 << 20;
    static final int K = 1 << 10;

    @TempDir
    Path dir;

    @Test
    void writeCommandsChangeTheImageAsExpected() throws Exception {
        Path img = QemuImages.qcow2(dir.resolve("w.qcow2"), "4M");
        QemuImages.io(img, "qcow2", "write -P 0x77 0 4M");
        byte[] expected = new byte[4 * M];
        Arrays.fill(expected, (byte) 0x77);
        byte[] data = new byte[1536 * K];
        new Random(42).nextBytes(data);
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "--discard=unmap", "-e", "2");
             NbdClient c = NbdClient.connect(NbdUri.parse(QemuImages.uriOf(s)),
                 ClientOptions.defaults().withConnections(2))) {
            ExportInfo i = c.info();
            assertFalse(i.readOnly());
            assertTrue(i.canTrim() && i.canWriteZeroes() && i.canFlush() && i.canCache() && i.canFua(), i.flagNames());
            assertEquals(2, c.connectionCount(), "writable qemu-nbd -e 2 advertises CAN_MULTI_CONN");
            // 1.5 MiB from offset 64 KiB: three 512 KiB requests spread over both connections
            c.write(64 * K, data, 0, data.length, false).get(10, TimeUnit.SECONDS);
            System.arraycopy(data, 0, expected, 64 * K, data.length);
            c.write(2 * M, data, 0, 4096, true).get(10, TimeUnit.SECONDS);
            System.arraycopy(data, 0, expected, 2 * M, 4096);
            c.writeZeroes(2 * M + 64 * K, 256 * K, false).get(10, TimeUnit.SECONDS);
            Arrays.fill(expected, 2 * M + 64 * K, 2 * M + 320 * K, (byte) 0);
            c.writeZeroes(3 * M, 64 * K, true).get(10, TimeUnit.SECONDS);
            Arrays.fill(expected, 3 * M, 3 * M + 64 * K, (byte) 0);
            c.trim(3 * M + 512 * K, 512 * K).get(10, TimeUnit.SECONDS);
            Arrays.fill(expected, 3 * M + 512 * K, 4 * M, (byte) 0); // qcow2 without backing: discarded reads as 0
            c.cache(0, 1 * M).get(10, TimeUnit.SECONDS);
            c.flush().get(10, TimeUnit.SECONDS);
            byte[] back = new byte[4 * M];
            c.read(0, back, 0, back.length).get(10, TimeUnit.SECONDS);
            assertArrayEquals(expected, back, "read back through NBD");
        }
        assertArrayEquals(expected, Files.readAllBytes(QemuImages.toRaw(img, dir.resolve("w.raw"))),
            "qemu-img convert of the written image");
        String io = Proc.run("qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0 3584k 512k", "-c",
            "read -P 0x77 3136k 64k", img.toString());
        assertFalse(io.contains("failed"), io);
        String map = Proc.run("qemu-img", "map", "--output=json", img.toString());
        // TRIM deallocated the clusters (zero, no host offset); WRITE_ZEROES with NO_HOLE kept its allocation
        assertTrue(map.contains("\"start\": 3670016, \"length\": 524288, \"depth\": 0, \"present\": true, "
            + "\"zero\": true, \"data\": false}"), "TRIM unmapped the clusters: " + map);
        assertTrue(map.contains("\"start\": 3145728, \"length\": 65536, \"depth\": 0, \"present\": true, "
            + "\"zero\": true, \"data\": false, \"offset\""), "NO_HOLE kept the cluster allocated: " + map);
    }

    /** A write from a direct buffer (how a restore sends chunks): split into requests, sent, and released. */
    @Test
    void byteBufWriteSendsTheReadableBytesAndReleasesTheBuffer() throws Exception {
        Path img = QemuImages.qcow2(dir.resolve("b.qcow2"), "4M");
        byte[] data = new byte[1536 * K];
        new Random(7).nextBytes(data);
        byte[] expected = new byte[4 * M];
        System.arraycopy(data, 0, expected, M, data.length);
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2");
             NbdClient c = NbdClient.connect(NbdUri.parse(QemuImages.uriOf(s)), ClientOptions.defaults())) {
            ByteBuf buf = PooledByteBufAllocator.DEFAULT.directBuffer(data.length + 100);
            buf.writeZero(100).writeBytes(data).skipBytes(100); // readable bytes start past the reader index 0
            c.write(M, buf, false).get(10, TimeUnit.SECONDS); // three 512 KiB requests
            assertEquals(0, buf.refCnt(), "the client released the buffer it took over");
            ByteBuf outside = PooledByteBufAllocator.DEFAULT.directBuffer(4096).writeZero(4096);
            assertThrows(IllegalArgumentException.class, () -> c.write(4 * M, outside, false));
            assertEquals(0, outside.refCnt(), "a refused write releases its buffer too");
            c.flush().get(10, TimeUnit.SECONDS);
        }
        assertArrayEquals(expected, Files.readAllBytes(QemuImages.toRaw(img, dir.resolve("b.raw"))),
            "qemu-img convert of the written image");
    }

    @Test
    void serverErrorsFailOnlyThatCommand() throws Exception {
        Path img = QemuImages.qcow2(dir.resolve("ro.qcow2"), "1M");
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r");
             NbdClient c = NbdClient.connect(NbdUri.parse(QemuImages.uriOf(s)), ClientOptions.defaults())) {
            assertTrue(c.info().readOnly());
            ExecutionException e = assertThrows(ExecutionException.class,
                () -> c.write(0, new byte[4096], 0, 4096, false).get(10, TimeUnit.SECONDS));
            NbdCommandException ce = assertInstanceOf(NbdCommandException.class, e.getCause());
            assertTrue(ce.error().equals(NbdError.EPERM) || ce.error().equals(NbdError.EINVAL), ce.getMessage());
            assertTrue(ce.getMessage().contains("WRITE of 4096 bytes at offset 0"), ce.getMessage());
            assertThrows(IllegalStateException.class, () -> c.trim(0, 4096));
            byte[] b = new byte[4096];
            c.read(0, b, 0, b.length).get(10, TimeUnit.SECONDS); // the connection is still usable
            assertArrayEquals(new byte[4096], b);
        }
    }
}
