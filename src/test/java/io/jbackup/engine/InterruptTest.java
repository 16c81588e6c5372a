package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.model.BackupInfo;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.store.RepositoryOptions;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.TestJvm;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** SIGTERM during a backup: exit code 7, no half backup in the repository, and the next run completes. */
@Tag("reliability")
class InterruptTest {
    @TempDir
    Path dir;

    /**
     * SIGTERM during a restore (to an NBD target that writes slowly): the restore stops at once with exit 7 and,
     * with --json, the one error object ("interrupted") on stdout. Before, it waited 60 s for a chunk read that was
     * never started, and exited without the JSON object.
     */
    @Test
    void sigtermStopsARestoreAtOnceWithTheJsonError() throws Exception {
        Path repo = dir.resolve("repo");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K").ok();
        Path raw = dir.resolve("src.raw");
        Proc.run("qemu-img", "create", "-q", "-f", "raw", raw.toString(), "8M");
        QemuImages.io(raw, "raw", "write -P 0x3c 0 8M");
        try (Proc.Background src = QemuImages.qemuNbd(dir, raw, "raw", "-r")) {
            Cli.run("full", "--repo", repo.toString(), "--disk", "vda", "--source", QemuImages.uriOf(src)).ok();
        }
        Path sock = dir.resolve("slow-target.sock");
        try (Proc.Background server = Proc.start(dir.resolve("nbdkit-target.log"), "nbdkit", "-f", "-U",
            sock.toString(), "--filter=delay", "memory", "8M", "wdelay=1").awaitPath(sock)) {
            Path out = dir.resolve("restore.json");
            Process p = new ProcessBuilder(TestJvm.java("-cp", System.getProperty("java.class.path"),
                "io.jbackup.cli.Main", "restore", "--repo", repo.toString(), "--disk", "vda", "--to",
                "nbd+unix:///?socket=" + sock, "--json"))
                .redirectError(dir.resolve("restore.err").toFile()).redirectOutput(out.toFile()).start();
            Thread.sleep(3000);
            assertTrue(p.isAlive(), "the restore is still running: " + Files.readString(dir.resolve("restore.err")));
            long t0 = System.nanoTime();
            p.destroy(); // SIGTERM
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the restore stopped");
            String err = Files.readString(dir.resolve("restore.err"));
            assertEquals(7, p.exitValue(), err);
            assertTrue(err.contains("stopping the restore") && !err.contains("half backup"), err);
            assertTrue(System.nanoTime() - t0 < 30_000_000_000L, "stopped without waiting out the 60 s: " + err);
            JsonNode j = new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.toFile());
            assertTrue(j != null && j.has("error"), "one JSON object on stdout: " + Files.readString(out) + err);
            assertEquals("interrupted", j.get("error").get("code").asText(), j.toString());
            assertEquals(7, j.get("exitCode").asInt(), j.toString());
        }
    }

    @Test
    void sigtermAbortsCleanlyAndTheNextRunCompletes() throws Exception {
        Path repo = dir.resolve("repo");
        Repository.init(repo, RepositoryOptions.defaults(), null).close();
        Path raw = dir.resolve("src.raw");
        Proc.run("qemu-img", "create", "-q", "-f", "raw", raw.toString(), "24M");
        QemuImages.io(raw, "raw", "write -P 0x3c 0 24M");
        Path sock = dir.resolve("slow.sock");
        try (Proc.Background server = Proc.start(dir.resolve("nbdkit.log"), "nbdkit", "-f", "-t", "1", "-U",
            sock.toString(), "--filter=delay", "file", raw.toString(), "delay-read=60ms").awaitPath(sock)) {
            Process p = new ProcessBuilder(TestJvm.java("-cp", System.getProperty("java.class.path"), "io.jbackup.cli.Main",
                "full", "--repo", repo.toString(), "--disk", "vda", "--source", "nbd+unix:///?socket=" + sock))
                .redirectErrorStream(true).redirectOutput(dir.resolve("child.log").toFile()).start();
            Thread.sleep(2500);
            assertTrue(p.isAlive(), "the backup is still running: " + Files.readString(dir.resolve("child.log")));
            p.destroy(); // SIGTERM
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the backup stopped");
            String log = Files.readString(dir.resolve("child.log"));
            assertEquals(7, p.exitValue(), log);
            assertTrue(log.contains("interrupted"), log);
            try (Repository r = Repository.open(repo, OpenOptions.defaults())) {
                List<BackupInfo> backups = r.listBackups();
                assertTrue(backups.stream().noneMatch(b -> "complete".equals(b.state())), backups.toString());
            }
            JsonNode d = Cli.run("full", "--repo", repo.toString(), "--disk", "vda", "--source",
                "nbd+unix:///?socket=" + sock, "--json").ok().json().get("disks").get(0);
            Path out = dir.resolve("restored.raw");
            Cli.run("restore", "--repo", repo.toString(), "--disk", "vda", "--backup", d.get("backupId").asText(),
                "--to", out.toString()).ok();
            assertEquals(Proc.sha256(raw), Proc.sha256(out));
        }
    }
}
