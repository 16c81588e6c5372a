package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.jbackup.testutil.Proc;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The client against Debian's nbd-server 3.24 on TCP: no structured replies (the simple-reply READ path), GO with
 * named exports, LIST. Run in the foreground ({@code -d}), nbd-server serves one connection and exits, so each
 * connection gets its own server.
 */
class NbdServerClientTest {
    static final int M = 1024 * 1024;

    @TempDir
    Path dir;
    Path image;
    byte[] initial;

    @BeforeEach
    void image() throws IOException {
        image = dir.resolve("disk.img");
        initial = new byte[4 * M];
        new Random(11).nextBytes(initial);
        Files.write(image, initial);
    }

    /** Starts {@code nbd-server -d} with exports {@code disk} (writable) and {@code ro} (read-only). */
    Proc.Background nbdServer(int port) throws IOException {
        Path conf = dir.resolve("nbd-server-" + port + ".conf");
        Files.writeString(conf, "[generic]\n    port = " + port + "\n    listenaddr = 127.0.0.1\n"
            + "    allowlist = true\n[disk]\n    exportname = " + image + "\n[ro]\n    exportname = " + image
            + "\n    readonly = true\n");
        Proc.Background b = Proc.start(dir.resolve("nbd-server-" + port + ".log"), "nbd-server", "-C", conf.toString(),
            "-d");
        awaitListening(b, port);
        return b;
    }

    /** Waits for a LISTEN socket on the port without connecting (a probe connection would use up the session). */
    static void awaitListening(Proc.Background b, int port) throws IOException {
        String hexPort = String.format(":%04X ", port);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < deadline) {
            for (String line : Files.readAllLines(Path.of("/proc/net/tcp"))) {
                String[] f = line.trim().split("\\s+");
                if (f.length > 3 && (f[1] + " ").contains(hexPort) && f[3].equals("0A")) {
                    return;
                }
            }
            if (!b.process().isAlive()) {
                throw new AssertionError("nbd-server exited: " + b.readLog());
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
        throw new AssertionError("nbd-server did not listen on " + port + ": " + b.readLog());
    }

    @Test
    void readsAndWritesWithSimpleReplies() throws Exception {
        int port = Proc.freePort();
        byte[] expected = initial.clone();
        byte[] data = new byte[M + 4096];
        new Random(12).nextBytes(data);
        try (Proc.Background s = nbdServer(port);
             NbdClient c = NbdClient.connect(NbdUri.tcp("127.0.0.1", port, "disk", false),
                 ClientOptions.defaults())) {
            assertFalse(c.structuredReplies(), "nbd-server 3.24 has no structured replies");
            assertEquals(4L * M, c.info().size());
            assertFalse(c.info().readOnly());
            byte[] all = new byte[4 * M];
            c.read(0, all, 0, all.length).get(20, TimeUnit.SECONDS);
            assertArrayEquals(initial, all);
            c.write(M + 512, data, 0, data.length, false).get(20, TimeUnit.SECONDS);
            System.arraycopy(data, 0, expected, M + 512, data.length);
            assertTrue(c.info().canWriteZeroes(), c.info().flagNames());
            c.writeZeroes(3 * M, 4096, false).get(20, TimeUnit.SECONDS);
            Arrays.fill(expected, 3 * M, 3 * M + 4096, (byte) 0);
            c.read(0, all, 0, all.length).get(20, TimeUnit.SECONDS);
            assertArrayEquals(expected, all);
        }
        byte[] onDisk = new byte[4 * M];
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "r")) {
            f.readFully(onDisk);
        }
        assertArrayEquals(expected, onDisk, "the image file holds the writes");
    }

    @Test
    void listsNamedExports() throws Exception {
        int port = Proc.freePort();
        try (Proc.Background s = nbdServer(port)) {
            List<ExportInfo> l = NbdClient.listExports(NbdUri.tcp("127.0.0.1", port, "", false),
                ClientOptions.defaults());
            assertEquals(List.of("disk", "ro"), l.stream().map(ExportInfo::name).toList());
            // nbd-server 3.24 answers NBD_OPT_INFO with size 0 (GO reports the real size); flags are right
            assertTrue(l.get(1).readOnly());
        }
    }

    @Test
    void unknownExportIsAClearError() throws Exception {
        int port = Proc.freePort();
        try (Proc.Background s = nbdServer(port)) {
            NbdHandshakeException e = assertThrows(NbdHandshakeException.class,
                () -> NbdClient.connect(NbdUri.tcp("127.0.0.1", port, "nosuch", false), ClientOptions.defaults()));
            assertEquals(NbdOptionReplyType.ERR_UNKNOWN, e.replyType());
            assertTrue(e.getMessage().contains("refused NBD_OPT_GO for export 'nosuch'"), e.getMessage());
            assertTrue(e.getMessage().contains("jbackup inspect --list"), e.getMessage());
        }
    }
}
