package io.jbackup.nbd.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdOptionReplyType;
import io.jbackup.nbd.protocol.NbdReplyChunkType;
import io.jbackup.testutil.Proc;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hostile clients while well-behaved ones are being served: the hostile connections are cut off (or held at a
 * bounded cost), and the other clients, real tools among them, keep getting correct bytes at the same time.
 * ({@link NbdServerRobustnessTest} covers each malformed input on its own.)
 */
@Tag("reliability")
@Timeout(120)
class HostileClientTest {
    private static final int MIB = 1 << 20;
    private static final int READ = 0;
    private static final int WRITE = 1;
    private static final int DISC = 2;

    @TempDir
    static Path dir;
    static NbdServer server;
    static Path sock;
    static byte[] data;
    static Path reference;

    @BeforeAll
    static void start() throws IOException {
        data = new byte[8 * MIB];
        new Random(42).nextBytes(data);
        Arrays.fill(data, 2 * MIB, 3 * MIB, (byte) 0);
        reference = dir.resolve("reference.raw");
        Files.write(reference, data);
        SimpleExportProvider provider = new SimpleExportProvider()
            .add("disk", "random bytes", () -> new MemoryExport("disk", "random bytes", data, true))
            .add("rw", "writable", () -> new MemoryExport("rw", "writable", new byte[MIB], false));
        sock = dir.resolve("nbd.sock");
        server = NbdServer.start(ServerConfig.builder().unixSocket(sock).handshakeTimeout(Duration.ofSeconds(3))
            .requestTimeout(Duration.ofSeconds(3)).maxConnections(64).maxPayload(2 * MIB).maxInFlightBytes(8L * MIB).build(), provider);
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
    }

    /** A raw client reads {@code len} bytes at {@code offset} with structured replies and compares them. */
    static void rawRead(long offset, int len) throws IOException {
        try (RawNbdClient c = new RawNbdClient(sock).handshake()) {
            c.go("disk", true);
            c.sendRequest(0, READ, 7, offset, len, null);
            byte[] out = new byte[len];
            RawNbdClient.Chunk ch;
            do {
                ch = c.readReply(len);
                assertEquals(7, ch.cookie());
                assertEquals(0, ch.error(), "error chunk");
                ByteBuffer p = ByteBuffer.wrap(ch.payload());
                if (ch.type() == NbdReplyChunkType.OFFSET_DATA.code()) {
                    int at = (int) (p.getLong() - offset);
                    p.get(out, at, p.remaining());
                } else if (ch.type() == NbdReplyChunkType.OFFSET_HOLE.code()) {
                    int at = (int) (p.getLong() - offset);
                    Arrays.fill(out, at, at + p.getInt(), (byte) 0);
                }
            } while (!ch.done());
            assertArrayEquals(Arrays.copyOfRange(data, (int) offset, (int) offset + len), out,
                "bytes at " + offset);
            c.sendRequest(0, DISC, 8, 0, 0, null);
        }
    }

    /** One round of every kind of hostile client; each must be cut off (or, if it may stay, be harmless). */
    static void hostileRound(int round) throws Exception {
        // garbage instead of client flags and options
        try (RawNbdClient c = new RawNbdClient(sock).timeout(5000)) {
            c.read(18);
            c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes());
            assertTrue(c.closedByServer(), "garbage handshake");
        }
        // an option announcing 4 GiB - 1 of data
        try (RawNbdClient c = new RawNbdClient(sock).handshake().timeout(5000)) {
            c.write(ByteBuffer.allocate(16).putLong(NbdConstants.IHAVEOPT).putInt(7).putInt(-1).flip());
            assertEquals(NbdOptionReplyType.ERR_TOO_BIG, c.readOptionReply().replyType());
        }
        // a request with a bad magic after a good handshake
        try (RawNbdClient c = new RawNbdClient(sock).handshake().timeout(5000)) {
            c.go("disk", true);
            c.write(ByteBuffer.allocate(28).putInt(0, 0x12345678));
            assertTrue(c.closedByServer(), "bad request magic");
        }
        // reads past the end and huge lengths get errors, the connection goes on
        try (RawNbdClient c = new RawNbdClient(sock).handshake().timeout(5000)) {
            c.go("disk", true);
            c.sendRequest(0, READ, 1, data.length - 512, 4096, null);
            assertEquals(22, c.readReply(0).error(), "read past the end: EINVAL");
            c.sendRequest(0, READ, 2, 0, 0xffffffffL, null);
            assertTrue(c.readReply(0).error() != 0, "read of 4 GiB - 1");
            c.sendRequest(0, READ, 3, 1L << 62, 4096, null);
            assertEquals(22, c.readReply(0).error(), "read at 2^62: EINVAL");
        }
        // a WRITE header announcing more than the limit: refused, payload skipped
        try (RawNbdClient c = new RawNbdClient(sock).handshake().timeout(5000)) {
            c.go("rw", true);
            c.sendRequest(0, WRITE, 1, 0, 4 * MIB, null);
            assertTrue(c.readReply(0).error() != 0, "write over the payload limit");
        }
    }

    /**
     * While rounds of hostile clients run, qemu-img and nbdcopy copy the export and raw clients read it: every copy
     * is bit-exact. Meanwhile a slowloris, a half-sent request and a client that never reads hold their
     * connections without stopping anyone else; the first two are cut off by the handshake and request timeouts, and
     * an idle connection outlives both.
     */
    @Test
    void wellBehavedClientsGetCorrectDataWhileHostileOnesAreCutOff() throws Exception {
        Proc.requireTool("nbdcopy");
        Proc.requireTool("qemu-img");
        String uri = "nbd+unix:///disk?socket=" + sock;
        String want = Proc.sha256(reference);
        AtomicBoolean stop = new AtomicBoolean();
        ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        AtomicInteger hostileRounds = new AtomicInteger();
        AtomicInteger rawReads = new AtomicInteger();
        List<Thread> threads = new ArrayList<>();
        threads.add(new Thread(() -> {
            try {
                while (!stop.get()) {
                    hostileRound(hostileRounds.incrementAndGet());
                }
            } catch (Throwable t) {
                errors.add(t);
            }
        }, "hostile"));
        threads.add(new Thread(() -> {
            try {
                Random r = new Random(7);
                while (!stop.get()) {
                    rawRead((long) r.nextInt(data.length / 4096 - 64) * 4096, 64 * 4096);
                    rawReads.incrementAndGet();
                }
            } catch (Throwable t) {
                errors.add(t);
            }
        }, "raw-reader"));

        // connections that stay: a slowloris handshake, half a request, a client that never reads its replies
        try (RawNbdClient slowloris = new RawNbdClient(sock);
             RawNbdClient half = new RawNbdClient(sock).handshake();
             RawNbdClient idle = new RawNbdClient(sock).handshake();
             RawNbdClient deaf = new RawNbdClient(sock).handshake().timeout(300)) {
            idle.go("disk", true);
            slowloris.read(18);
            slowloris.write(new byte[] {0, 0});
            half.go("rw", true);
            half.write(ByteBuffer.allocate(28 + MIB).putInt(NbdConstants.REQUEST_MAGIC).putShort((short) 0)
                .putShort((short) WRITE).putLong(1).putLong(0).putInt(2 * MIB).position(28 + MIB).flip()); // 1 of 2 MiB
            deaf.go("disk", false);
            try {
                for (int i = 0; i < 200; i++) {
                    deaf.sendRequest(0, READ, i, 0, MIB, null);
                }
            } catch (IOException blocked) {
                // the server stopped reading this client: expected
            }

            threads.forEach(Thread::start);
            for (int i = 0; i < 3; i++) {
                Path out = dir.resolve("nbdcopy-" + i + ".raw");
                Proc.run("nbdcopy", uri, out.toString());
                assertEquals(want, Proc.sha256(out), "nbdcopy copy " + i);
                Files.delete(out);
                Path conv = dir.resolve("qemu-img-" + i + ".raw");
                Proc.run("qemu-img", "convert", "-f", "raw", "-O", "raw", uri, conv.toString());
                assertEquals(want, Proc.sha256(conv), "qemu-img copy " + i);
                Files.delete(conv);
            }
            waitUntil(() -> (hostileRounds.get() > 1 && rawReads.get() > 0) || !errors.isEmpty(),
                "hostile rounds and raw reads");
            assertTrue(slowloris.closedByServer(), "the slowloris is closed by the handshake timeout (3 s)");
            assertTrue(half.closedByServer(), "half a WRITE, then nothing: closed by the request timeout (3 s)");
            // a connection with no request under way may idle far longer than the request timeout
            idle.sendRequest(0, READ, 9, 4096, 4096, null);
            RawNbdClient.Chunk ch = idle.readReply(4096);
            assertEquals(9, ch.cookie());
            assertEquals(0, ch.error(), "the idle connection still serves");
        } finally {
            stop.set(true);
            for (Thread t : threads) {
                t.join(30_000);
            }
        }
        if (!errors.isEmpty()) {
            AssertionError e = new AssertionError("a client thread failed: " + errors.peek(), errors.peek());
            errors.forEach(e::addSuppressed);
            throw e;
        }
        assertTrue(hostileRounds.get() >= 1 && rawReads.get() >= 1, hostileRounds + " hostile rounds, " + rawReads
            + " raw reads");
        rawRead(0, 4096);
    }

    /**
     * A client that pipelines options without reading the replies must not make the server queue replies without
     * bound: once its replies back up, the server stops reading from it (as in transmission), so what the server
     * holds stays near netty's write-buffer high-water mark (64 KiB) instead of growing with every option.
     */
    @Test
    void optionFloodWithoutReadingRepliesIsThrottled() throws Exception {
        ByteBuffer list = ByteBuffer.allocate(16 * 1000);
        for (int i = 0; i < 1000; i++) {
            list.putLong(NbdConstants.IHAVEOPT).putInt(3).putInt(0); // NBD_OPT_LIST, about 60 bytes of reply each
        }
        long peak = 0;
        try (RawNbdClient c = new RawNbdClient(sock).handshake().timeout(500)) {
            try {
                for (int i = 0; i < 200; i++) { // 200k options, ~12 MiB of replies
                    c.write(list.flip());
                    peak = Math.max(peak, server.pendingWriteBytesForTest());
                }
            } catch (IOException writeBlocked) {
                // the server stopped reading
            }
            for (int i = 0; i < 20; i++) {
                peak = Math.max(peak, server.pendingWriteBytesForTest());
                Thread.sleep(25);
            }
            rawRead(MIB, 65536);
        }
        assertTrue(peak < MIB, "the server queued " + peak + " bytes of replies for a client that reads none");
    }

    private static void waitUntil(java.util.function.BooleanSupplier cond, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(10);
        }
    }
}
