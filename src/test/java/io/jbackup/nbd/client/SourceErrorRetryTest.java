package io.jbackup.nbd.client;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.testutil.Cli;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The backup engine (through the CLI) against a scripted NBD server: a protocol violation recurs on every
 * reconnect, so it fails the disk at once (exit 4, one connection, no retry); a transport failure (the connection
 * closed mid-request) is retried and the backup completes.
 */
@Timeout(60)
@Tag("reliability")
class SourceErrorRetryTest {
    static final long SIZE = 256 << 10;
    static final int TFLAGS = NbdConstants.TFLAG_HAS_FLAGS | NbdConstants.TFLAG_READ_ONLY;

    @TempDir
    Path dir;
    String repo;

    @BeforeEach
    void init() {
        repo = dir.resolve("repo").toString();
        Cli.run("init", "--repo", repo, "--chunk-size", "64K").ok();
    }

    /** What the server does with the first request of the transmission phase. */
    interface Violation {
        void answer(FakeNbdServer.Conn c, FakeNbdServer.Req r) throws Exception;
    }

    static Stream<Arguments> violations() {
        return Stream.of(
            Arguments.of("simple reply where structured replies were negotiated", false,
                (Violation) (c, r) -> c.simple(0, r.cookie(), new byte[(int) r.length()]),
                "simple reply"),
            Arguments.of("bad reply magic", false, (Violation) (c, r) -> {
                c.out.writeInt(0x25609513);
                c.out.writeLong(0);
                c.out.flush();
            }, "bad reply magic"),
            Arguments.of("NONE chunk without the DONE flag", false,
                (Violation) (c, r) -> c.chunk(0, 0, r.cookie(), new byte[0]), "NONE chunk"),
            Arguments.of("wrong cookie", false,
                (Violation) (c, r) -> c.chunk(NbdConstants.REPLY_FLAG_DONE, 0, 0xbad, new byte[0]), "unknown cookie"),
            Arguments.of("zero-length extent", true, (Violation) (c, r) -> {
                ByteBuffer b = ByteBuffer.allocate(4 + 16).putInt(1).putInt(4096).putInt(0).putInt(0).putInt(0);
                c.chunk(NbdConstants.REPLY_FLAG_DONE, 5, r.cookie(), b.array());
            }, "has length 0"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("violations")
    void aProtocolViolationFailsTheDiskAtOnce(String name, boolean blockStatus, Violation v, String text)
        throws Exception {
        AtomicInteger connections = new AtomicInteger();
        Map<String, Integer> ctx = blockStatus ? Map.of(NbdConstants.CONTEXT_BASE_ALLOCATION, 1) : Map.of();
        Cli.Result res;
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            connections.incrementAndGet();
            c.handshake(SIZE, TFLAGS, true, ctx);
            v.answer(c, c.request());
            c.hang();
        })) {
            res = Cli.run("full", "--repo", repo, "--disk", "vda", "--source", s.uri().toString(), "--json");
        }
        JsonNode d = res.json().get("disks").get(0);
        assertEquals(4, res.exitCode(), name + ": source error\n" + res.stdout() + res.stderr());
        assertEquals(1, connections.get(), name + ": not retried: " + d);
        assertEquals(0, d.get("retries").asInt(), d.toString());
        assertTrue(d.get("reason").asText().contains(text), d.toString());
        assertEquals(0, Cli.run("list", "--repo", repo, "--json").json().size(), "nothing committed");
    }

    @Test
    void aConnectionClosedMidRequestIsRetried() throws Exception {
        AtomicInteger connections = new AtomicInteger();
        Cli.Result res;
        try (FakeNbdServer s = new FakeNbdServer(c -> {
            int n = connections.incrementAndGet();
            c.handshake(SIZE, TFLAGS, true, Map.of());
            if (n == 1) {
                c.request();
                c.socket.close(); // EOF with a request unanswered: a transport failure
                return;
            }
            serveReads(c);
        })) {
            res = Cli.run("full", "--repo", repo, "--disk", "vda", "--source", s.uri().toString(), "--json");
        }
        assertEquals(0, res.exitCode(), res.stdout() + res.stderr());
        JsonNode d = res.json().get("disks").get(0);
        assertEquals(2, connections.get(), d.toString());
        assertEquals(1, d.get("retries").asInt(), d.toString());
        assertEquals(SIZE, d.get("bytesRead").asLong(), d.toString());
    }

    /** Answers READs with the byte pattern of {@link BrokenServerTest#pattern} until the client disconnects. */
    static void serveReads(FakeNbdServer.Conn c) throws Exception {
        while (true) {
            FakeNbdServer.Req r = c.request();
            if (r.type() != 0) {
                return; // DISC
            }
            c.chunk(NbdConstants.REPLY_FLAG_DONE, 1, r.cookie(), FakeNbdServer.Conn.offsetData(r.offset(),
                BrokenServerTest.pattern(r.offset(), (int) r.length())));
        }
    }
}
