package io.jbackup.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code jbackup inspect} against qemu-nbd; {@code --map} output is compared byte for byte with nbdinfo's. */
class InspectCommandTest {
    @TempDir
    static Path dir;
    static Proc.Background server;
    static String uri;

    @BeforeAll
    static void setUp() {
        Path base = QemuImages.qcow2(dir.resolve("base.qcow2"), "32M");
        QemuImages.io(base, "qcow2", "write -P 0x11 0 3M", "write -P 0x22 8M 1M", "write -P 0x23 20M 64k");
        Path top = QemuImages.qcow2Overlay(dir.resolve("top.qcow2"), base);
        QemuImages.addBitmap(top, "bm");
        QemuImages.io(top, "qcow2", "write -P 0x33 1M 512k", "discard 8M 128k", "write -z 12M 1M",
            "write -P 0x44 31M 1M");
        server = QemuImages.qemuNbd(dir, top, "qcow2", "-r", "-B", "bm", "-A");
        uri = QemuImages.uriOf(server);
    }

    @AfterAll
    static void tearDown() {
        if (server != null) {
            server.close();
        }
    }

    record Run(int code, String out, String err) {
    }

    static synchronized Run run(String... args) {
        PrintStream oldOut = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        StringWriter err = new StringWriter();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            CommandLine cl = JBackup.commandLine();
            cl.setErr(new PrintWriter(err, true));
            int code = cl.execute(args);
            return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString());
        } finally {
            System.setOut(oldOut);
        }
    }

    @Test
    void mapOutputIsIdenticalToNbdinfo() {
        for (String ctx : new String[] {"base:allocation", "qemu:allocation-depth", "qemu:dirty-bitmap:bm"}) {
            Run r = run("inspect", "--map", ctx, uri);
            assertEquals(0, r.code(), r.err());
            String nbdinfo = Proc.run("nbdinfo", "--map=" + ctx, uri);
            assertEquals(nbdinfo, r.out(), "jbackup inspect --map " + ctx + " vs nbdinfo --map=" + ctx);
            assertTrue(r.out().lines().count() >= 3, r.out());
        }
    }

    @Test
    void severalMapsHaveHeaders() {
        Run r = run("inspect", "--map", "base:allocation", "--map", "qemu:dirty-bitmap:bm", uri);
        assertEquals(0, r.code(), r.err());
        String expected = "map of base:allocation:\n" + Proc.run("nbdinfo", "--map=base:allocation", uri)
            + "\nmap of qemu:dirty-bitmap:bm:\n" + Proc.run("nbdinfo", "--map=qemu:dirty-bitmap:bm", uri);
        assertEquals(expected, r.out());
    }

    @Test
    void infoShowsSizeFlagsBlockSizesAndContexts() {
        Run r = run("inspect", uri);
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("size:           33554432 (32 MiB)"), r.out());
        assertTrue(r.out().contains("flags:          0x048f HAS_FLAGS|READ_ONLY|SEND_FLUSH|SEND_FUA|SEND_DF|SEND_CACHE"),
            r.out());
        assertTrue(r.out().contains("block sizes:    minimum 1, preferred 4096, maximum 33554432"), r.out());
        assertTrue(r.out().contains("meta contexts:\n  base:allocation\n  qemu:allocation-depth\n"
            + "  qemu:dirty-bitmap:bm\n"), r.out());
    }

    @Test
    void jsonIsMachineReadable() throws Exception {
        Run r = run("inspect", "--json", "--map", "qemu:dirty-bitmap:bm", uri);
        assertEquals(0, r.code(), r.err());
        JsonNode j = JsonMixin.mapper().readTree(r.out());
        JsonNode extents = j.get("maps").get("qemu:dirty-bitmap:bm");
        StringBuilder asNbdinfo = new StringBuilder();
        for (JsonNode e : extents) {
            asNbdinfo.append(String.format("%10d  %10d  %3d  %s%n", e.get("offset").asLong(), e.get("length").asLong(),
                e.get("type").asLong(), e.get("description").asText()));
        }
        assertEquals(Proc.run("nbdinfo", "--map=qemu:dirty-bitmap:bm", uri), asNbdinfo.toString());
        Run info = run("inspect", "--json", uri);
        JsonNode i = JsonMixin.mapper().readTree(info.out());
        assertEquals(33554432L, i.get("size").asLong());
        assertEquals("qemu:dirty-bitmap:bm", i.get("metaContexts").get(2).asText());
        assertTrue(i.get("flags").toString().contains("READ_ONLY"), i.toString());
    }

    @Test
    void listsExports() throws Exception {
        Run r = run("inspect", "--list", uri);
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("export \"\"\n  size:        33554432 (32 MiB)\n"), r.out());
        JsonNode j = JsonMixin.mapper().readTree(run("inspect", "--list", "--json", uri).out());
        assertEquals(33554432L, j.get(0).get("size").asLong());
    }

    @Test
    void errorsHaveClearMessagesAndExitCodes() {
        Run r = run("inspect", "--map", "qemu:dirty-bitmap:nosuch", uri);
        assertEquals(ExitCodes.USAGE, r.code());
        assertTrue(r.err().contains("does not offer meta context 'qemu:dirty-bitmap:nosuch'"), r.err());
        assertTrue(r.err().contains("qemu:dirty-bitmap:bm"), r.err());
        Run gone = run("inspect", "nbd+unix:///?socket=" + dir.resolve("nothing.sock"));
        assertEquals(ExitCodes.SOURCE, gone.code(), gone.err());
        assertTrue(gone.err().contains("no such file (is the NBD server running?)"), gone.err());
        Run bad = run("inspect", "http://x/");
        assertEquals(ExitCodes.USAGE, bad.code());
        assertTrue(bad.err().contains("unsupported scheme 'http'"), bad.err());
        Run noTls = run("inspect", "nbds+unix:///?socket=" + dir.resolve("x.sock"));
        assertEquals(ExitCodes.USAGE, noTls.code());
        assertTrue(noTls.err().contains("needs credentials: --tls-creds DIR"), noTls.err());
    }

    @Test
    void mapOverTlsPskMatchesNbdinfo() {
        io.jbackup.testutil.TlsFixtures.PskCreds creds = io.jbackup.testutil.TlsFixtures.psk(dir.resolve("psk"),
            "alice");
        Path top = dir.resolve("top.qcow2");
        try (Proc.Background s = QemuImages.qemuNbd(dir, top, "qcow2", "-r", "-B", "bm", "--object",
            "tls-creds-psk,id=tls0,endpoint=server,dir=" + creds.dir(), "--tls-creds", "tls0")) {
            String sock = QemuImages.socketOf(s).toString();
            Run r = run("inspect", "--tls-psk-file", creds.keysFile().toString(), "--tls-username", "alice",
                "--map", "qemu:dirty-bitmap:bm", "nbds+unix:///?socket=" + sock);
            assertEquals(0, r.code(), r.err());
            // libnbd 1.14 takes the PSK identity from the URI's user part
            String nbdinfo = Proc.run("nbdinfo", "--map=qemu:dirty-bitmap:bm", "nbds+unix://alice@/?socket=" + sock
                + "&tls-psk-file=" + creds.keysFile());
            assertEquals(nbdinfo, r.out());
            Run info = run("inspect", "--tls-psk-file", creds.keysFile().toString(), "--tls-username", "alice",
                "nbds+unix:///?socket=" + sock);
            assertTrue(info.out().contains("protocol:       structured replies, TLS"), info.out());
        }
    }

    @Test
    void demoRunsAndCleansUp() {
        Run r = run("inspect", "--demo");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("map of qemu:dirty-bitmap:demo:\n         0     1048576    0  clean\n"
            + "   1048576     1048576    1  dirty\n"), r.out());
        assertTrue(r.out().contains("   1048576     1048576    1  local\n"), r.out());
        assertTrue(r.out().contains("         0     1048576    2  backing depth 2\n"), r.out());
        assertTrue(r.out().contains("hole,zero"), r.out());
        String dirLine = r.out().lines().filter(l -> l.startsWith("uri:")).findFirst().orElseThrow();
        Path sock = Path.of(dirLine.substring(dirLine.indexOf("socket=") + 7));
        assertTrue(!java.nio.file.Files.exists(sock.getParent()), "demo directory removed: " + sock.getParent());
    }
}
