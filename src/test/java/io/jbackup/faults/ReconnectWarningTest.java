package io.jbackup.faults;

import io.jbackup.testutil.Cli;
import io.jbackup.testutil.JBackupProcess;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A reconnect is one line on standard error, not a log line with a timestamp plus a {@code jbackup: ...} line:
 * the CLI (a child JVM, so that its logging is configured as a user's is) backs up through a proxy that cuts the
 * first connection; the line carries a timestamp only with {@code -v}.
 */
@Tag("reliability")
class ReconnectWarningTest {
    @TempDir
    Path dir;

    @Test
    void aReconnectIsOneLineWithATimestampOnlyAtVerbose() throws Exception {
        String r = dir.resolve("repo").toString();
        Cli.run("init", "--repo", r, "--chunk-size", "64K").ok();
        FaultImage img = new FaultImage(dir, 8 << 20, 6 << 20, new Random(7));
        for (boolean verbose : List.of(false, true)) {
            try (Proc.Background src = img.serve();
                 FaultProxy proxy = new FaultProxy(QemuImages.socketOf(src), List.of(FaultProxy.Fault.cut(96 << 10)),
                     FaultProxy.Fault.NONE)) {
                List<String> args = new java.util.ArrayList<>(List.of("full", "--repo", r, "--disk", "vda",
                    "--source", proxy.uri()));
                if (verbose) {
                    args.add("-v");
                }
                JBackupProcess p = JBackupProcess.start(dir, "warn-" + verbose, Map.of(), args.toArray(String[]::new));
                int code = p.await(120);
                assertEquals(0, code, p.stdout() + p.stderr());
                assertEquals(1, proxy.injected());
                List<String> lines = p.stderr().lines().filter(l -> l.contains("reconnecting in")).toList();
                assertEquals(1, lines.size(), "one line per reconnect:\n" + p.stderr());
                String line = lines.get(0);
                boolean stamped = line.matches("\\d\\d:\\d\\d:\\d\\d\\.\\d{3} .*");
                assertEquals(verbose, stamped, line);
                assertTrue(line.contains("jbackup: vda: connection to " + proxy.uri() + " lost"), line);
            }
        }
        // with --json: in the document's notes as a warning, and one line on stderr
        try (Proc.Background src = img.serve();
             FaultProxy proxy = new FaultProxy(QemuImages.socketOf(src), List.of(FaultProxy.Fault.cut(96 << 10)),
                 FaultProxy.Fault.NONE)) {
            JBackupProcess p = JBackupProcess.start(dir, "warn-json", Map.of(), "full", "--repo", r, "--disk", "vda",
                "--source", proxy.uri(), "--json");
            assertEquals(0, p.await(120), p.stdout() + p.stderr());
            com.fasterxml.jackson.databind.JsonNode notes = p.json().get("notes");
            assertEquals(1, notes.size(), p.stdout());
            assertEquals("warning", notes.get(0).get("level").asText(), p.stdout());
            assertTrue(notes.get(0).get("message").asText().startsWith("connection to " + proxy.uri() + " lost"),
                p.stdout());
            List<String> lines = p.stderr().lines().filter(l -> l.contains("reconnecting in")).toList();
            assertEquals(1, lines.size(), p.stderr());
            assertTrue(lines.get(0).startsWith("jbackup: warning: vda: connection to "), lines.get(0));
        }
    }
}
