package io.jbackup.faults;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.JBackupProcess;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Fault: cron starts the same job twice at once, and gc runs during the backup. Three "nights": each starts two
 * {@code jbackup run-due} JVMs with the same job file and time (the second with {@code --wait-lock} on the last
 * night), and a {@code jbackup gc} while the backup reads a throttled qemu-nbd ({@code -r -B b -A}). Each night
 * makes exactly one backup (full, then incrementals through the bitmap); the other run reports that the job is busy
 * or already done; gc deletes nothing in use; every backup restores bit-exact (SHA-256 of {@code qemu-img convert
 * -O raw} of that night's image) and verify passes.
 */
@Tag("reliability")
class ConcurrentRunsFaultTest {
    static final long SEED = Long.getLong("jbackup.faults.seed", 0x5EED_0004L);

    @TempDir
    Path dir;

    @Test
    void twoCronRunsAtOnceAndGcDuringTheBackup() throws Exception {
        System.out.printf("ConcurrentRunsFaultTest: seed %d (replay with -Djbackup.faults.seed=%d)%n", SEED, SEED);
        Random rnd = new Random(SEED);
        Path repo = dir.resolve("repo");
        String r = repo.toString();
        Cli.run("init", "--repo", r, "--chunk-size", "64K", "--pack-size", "1M").ok();
        FaultImage img = new FaultImage(dir, 8 << 20, 6 << 20, rnd);
        Map<String, String> shaOf = new LinkedHashMap<>();
        int skipped = 0;
        for (int night = 0; night < 3; night++) {
            if (night > 0) {
                System.out.println("  night " + night + ": image changed: " + img.mutate());
                // yesterday's backup goes: gc now has garbage to collect while tonight's backup runs
                Cli.run("prune", "--repo", r, "--keep-last", "1").ok();
            }
            String sha = Proc.sha256(img.snapshot(dir.resolve("night" + night + ".raw")));
            int before = Cli.run("list", "--repo", r, "--json").ok().json().size();
            String now = "2026-11-" + (24 + night) + "T02:30:00Z";
            try (Proc.Background src = img.serveThrottled(5_000_000)) {
                Path jobs = dir.resolve("jobs.yaml");
                Files.writeString(jobs, String.join("\n",
                    "repository: " + r,
                    "timezone: UTC",
                    "jobs:",
                    "  - name: web1",
                    "    vm: web1",
                    "    schedule: \"0 2 * * *\"",
                    "    mode: auto",
                    "    bitmap: " + FaultImage.BITMAP,
                    "    disks:",
                    "      - {name: vda, source: \"" + QemuImages.uriOf(src) + "\"}", ""));
                boolean queue = night == 2;
                JBackupProcess a = JBackupProcess.start(dir, "a" + night, Map.of(), "run-due", "--config",
                    jobs.toString(), "--now", now, "--json");
                List<String> bArgs = new ArrayList<>(List.of("run-due", "--config", jobs.toString(), "--now", now,
                    "--json"));
                if (queue) {
                    bArgs.addAll(List.of("--wait-lock", "120"));
                }
                JBackupProcess b = JBackupProcess.start(dir, "b" + night, Map.of(), bArgs.toArray(String[]::new));
                // gc while the backup runs (once its incomplete row exists)
                long deadline = System.nanoTime() + 60_000_000_000L;
                while (Cli.run("list", "--repo", r, "--json").ok().json().size() <= before
                    && System.nanoTime() < deadline && (a.process.isAlive() || b.process.isAlive())) {
                    Thread.sleep(30);
                }
                JsonNode gc = Cli.run("gc", "--repo", r, "--json").ok().json();
                int codeA = a.await(120);
                int codeB = b.await(180);
                assertEquals(0, codeA, a.stdout() + a.stderr());
                assertEquals(0, codeB, b.stdout() + b.stderr());
                JsonNode ta = a.json().get("tasks").get(0);
                JsonNode tb = b.json().get("tasks").get(0);
                System.out.printf("  night %d: run a: %s (%s); run b%s: %s (%s); gc during the backup: waited for "
                        + "%d writer(s), reclaimed %d bytes%n", night, ta.get("status").asText(),
                    ta.get("message").asText(), queue ? " (--wait-lock)" : "", tb.get("status").asText(),
                    tb.get("message").asText(), gc.get("writersWaited").asInt(), gc.get("bytesReclaimed").asLong());
                JsonNode ran = "ok".equals(ta.get("status").asText()) ? ta : tb;
                JsonNode other = ran == ta ? tb : ta;
                assertEquals("ok", ran.get("status").asText(), ran.toString());
                assertEquals("skipped", other.get("status").asText(), "exactly one run backs up: " + other);
                String msg = other.get("message").asText();
                // the run that waited for the lock (--wait-lock) finds the job done; one that does not wait is told
                // the disk is busy, or (if it looked after the backup) that the job already ran
                assertTrue(queue && other == tb ? msg.contains("already run")
                    : msg.contains("is busy") || msg.contains("already run"), msg);
                skipped++;
                String id = ran.get("disks").get(0).get("backupId").asText();
                assertEquals(night == 0 ? "full" : "incremental", ran.get("disks").get(0).get("type").asText());
                shaOf.put(id, sha);
            }
            JsonNode list = Cli.run("list", "--repo", r, "--json").ok().json();
            assertEquals(Math.min(night + 1, 2), list.size(), "one backup per night (pruned to the last): " + list);
            for (JsonNode bk : list) {
                assertEquals("complete", bk.get("state").asText(), bk.toString());
                String id = bk.get("id").asText();
                assertEquals(shaOf.get(id), restoreSha(r, id), "backup " + id + " restores bit-exact");
            }
        }
        Cli.run("verify", "--repo", r).ok();
        try (Stream<Path> s = Files.walk(repo.resolve("tmp"))) {
            assertEquals(0, s.filter(Files::isRegularFile).count(), "tmp/ is empty");
        }
        System.out.println("ConcurrentRunsFaultTest: seed " + SEED + ", 3 nights x 2 concurrent run-due + gc: "
            + shaOf.size() + " backups, " + skipped + " duplicate runs skipped, backups lost 0");
    }

    /**
     * An incremental copies its parent's index when it starts; deleting the parent meanwhile ({@code forget}, as a
     * prune could) and running gc before the incremental commits must not take away the chunks it still refers to.
     */
    @Test
    void forgettingTheParentAndGcDuringAnIncrementalLoseNothing() throws Exception {
        Random rnd = new Random(SEED + 1);
        System.out.printf("ConcurrentRunsFaultTest (forget parent): seed %d%n", SEED + 1);
        Path repo = dir.resolve("repo2");
        String r = repo.toString();
        Cli.run("init", "--repo", r, "--chunk-size", "64K", "--pack-size", "1M").ok();
        FaultImage img = new FaultImage(dir, 8 << 20, 6 << 20, rnd);
        String parent;
        try (Proc.Background src = img.serve()) {
            parent = Cli.run("full", "--repo", r, "--disk", "vda", "--source", QemuImages.uriOf(src), "--json").ok()
                .json().get("disks").get(0).get("backupId").asText();
        }
        System.out.println("  changed: " + img.mutate());
        String sha = Proc.sha256(img.snapshot(dir.resolve("after.raw")));
        try (Proc.Background src = img.serveThrottled(2_000_000)) {
            JBackupProcess inc = JBackupProcess.start(dir, "inc", Map.of(), "incremental", "--repo", r, "--disk",
                "vda", "--bitmap", FaultImage.BITMAP, "--source", QemuImages.uriOf(src), "--json");
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (Cli.run("list", "--repo", r, "--json").ok().json().size() < 2 && inc.process.isAlive()
                && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertTrue(inc.process.isAlive(), "the incremental is still running: " + inc.stderr());
            Cli.run("forget", "--repo", r, parent).ok();
            JsonNode gc = Cli.run("gc", "--repo", r, "--json").ok().json();
            System.out.println("  forgot the parent, then gc during the incremental: " + gc);
            assertEquals(0, inc.await(120), inc.stdout() + inc.stderr());
            JsonNode d = inc.json().get("disks").get(0);
            assertEquals("incremental", d.get("type").asText(), d.toString());
            assertEquals(parent, d.get("parentId").asText(), d.toString());
            assertEquals(sha, restoreSha(r, null, d.get("backupId").asText()), "the incremental restores bit-exact");
        }
        // gc again with nothing running: still nothing the incremental needs goes
        Cli.run("gc", "--repo", r).ok();
        Cli.run("verify", "--repo", r).ok();
        JsonNode list = Cli.run("list", "--repo", r, "--json").ok().json();
        assertEquals(1, list.size(), list.toString());
        assertEquals(sha, restoreSha(r, null, list.get(0).get("id").asText()));
    }

    private String restoreSha(String r, String id) throws Exception {
        return restoreSha(r, "web1", id);
    }

    private String restoreSha(String r, String vm, String id) throws Exception {
        Path out = dir.resolve("restore-" + id + ".raw");
        List<String> args = new ArrayList<>(List.of("restore", "--repo", r, "--disk", "vda", "--backup", id, "--to",
            out.toString()));
        if (vm != null) {
            args.addAll(List.of("--vm", vm));
        }
        Cli.run(args.toArray(String[]::new)).ok();
        String sha = Proc.sha256(out);
        Files.delete(out);
        return sha;
    }
}
