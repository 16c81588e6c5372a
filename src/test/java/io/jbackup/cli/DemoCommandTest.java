package io.jbackup.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.TestJvm;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code jbackup demo}, with qemu-nbd and with the built-in server: both restore bit-exact and clean up. */
class DemoCommandTest {
    private static JsonNode demo(String... extra) {
        String[] args = new String[extra.length + 2];
        args[0] = "demo";
        args[1] = "--json";
        System.arraycopy(extra, 0, args, 2, extra.length);
        JsonNode j = Cli.run(args).ok().json();
        assertTrue(j.get("ok").asBoolean(), j.toString());
        assertFalse(Files.exists(Path.of(j.get("directory").asText())), "the demo cleans up: " + j);
        JsonNode b = j.get("backups");
        assertEquals("full", b.get(0).get("type").asText());
        assertEquals("incremental", b.get(1).get("type").asText());
        assertEquals(b.get(0).get("backupId").asText(), b.get(1).get("parentId").asText());
        assertTrue(b.get(1).get("bytesRead").asLong() <= 2L << 20, "the incremental reads only dirty data: " + b);
        assertTrue(b.get(0).get("bytesDedup").asLong() >= 4L << 20, "the duplicated 4 MiB are deduplicated: " + b);
        for (JsonNode r : j.get("restores")) {
            assertEquals(r.get("sha256Disk").asText(), r.get("sha256Restored").asText());
        }
        assertNotEquals(j.get("restores").get(0).get("sha256Disk").asText(),
            j.get("restores").get(1).get("sha256Disk").asText(), "the data changed between the backups");
        return j;
    }

    @Test
    void sigtermDuringTheDemoLeavesNoDirectoryAndNoQemuNbd() throws Exception {
        Proc.requireTool("qemu-nbd");
        java.util.List<String> cmd = TestJvm.java("-cp", System.getProperty("java.class.path"), "io.jbackup.cli.Main", "demo");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String dir = null;
        try (java.io.BufferedReader r = new java.io.BufferedReader(new java.io.InputStreamReader(p.getInputStream(),
            java.nio.charset.StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                if (line.startsWith("jbackup demo in ")) {
                    dir = line.substring("jbackup demo in ".length()).trim();
                }
                if (line.startsWith("Source:")) {
                    p.toHandle().destroy(); // SIGTERM while qemu-nbd serves and the full backup begins
                }
            }
        }
        assertTrue(p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS));
        assertTrue(dir != null, "the demo printed its directory");
        assertFalse(Files.exists(Path.of(dir)), "the demo's directory is removed: " + dir);
        String d = dir;
        assertFalse(ProcessHandle.allProcesses().anyMatch(h -> h.info().commandLine().orElse("").contains(d)),
            "no qemu-nbd serving from " + dir + " is left");
    }

    @Test
    void demoWithQemuNbdAndWithTheBuiltinServerGiveTheSameDisks() {
        Proc.requireTool("qemu-nbd");
        JsonNode q = demo();
        assertTrue(q.get("source").asText().contains("qemu-nbd"), q.toString());
        JsonNode b = demo("--builtin");
        assertTrue(b.get("source").asText().contains("built-in"), b.toString());
        for (int i = 0; i < 2; i++) {
            assertEquals(q.get("restores").get(i).get("sha256Disk").asText(),
                b.get("restores").get(i).get("sha256Disk").asText(), "same sample disk from both sources");
        }
        Cli.Result text = Cli.run("demo", "--builtin").ok();
        assertTrue(text.stdout().contains("1. full backup") && text.stdout().contains("2. incremental")
            && text.stdout().contains("Both backups restore bit-exact."), text.stdout());
    }
    /** The README's demo needs only a JDK: with no qemu tool on the PATH it falls back to the built-in server. */
    @Test
    void demoRunsWithNoQemuToolOnThePath(@org.junit.jupiter.api.io.TempDir Path emptyBin) throws Exception {
        java.util.List<String> cmd = TestJvm.java("-cp", System.getProperty("java.class.path"), "io.jbackup.cli.Main", "demo", "--json");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT);
        pb.environment().put("PATH", emptyBin.toString()); // no qemu-img, qemu-io, qemu-nbd, nbdkit, nothing
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        JsonNode j = new com.fasterxml.jackson.databind.ObjectMapper().readTree(out);
        assertTrue(j.get("ok").asBoolean(), out);
        assertTrue(j.get("source").asText().contains("built-in"), out);
        for (JsonNode r : j.get("restores")) {
            assertEquals(r.get("sha256Disk").asText(), r.get("sha256Restored").asText(), out);
        }
        assertFalse(Files.exists(Path.of(j.get("directory").asText())), "the demo cleans up: " + out);
    }
}
