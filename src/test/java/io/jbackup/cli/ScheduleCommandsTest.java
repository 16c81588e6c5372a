package io.jbackup.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.StorageDaemon;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdClient;
import io.jbackup.testutil.TestJvm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * run-due, daemon, schedule and log against a real qemu-nbd export with a dirty bitmap. Concurrency and signals
 * use separate JVMs, as cron and systemd would.
 */
class ScheduleCommandsTest {
    @TempDir
    Path dir;

    /** Runs jbackup in a new JVM; returns the process (output to files next to the test's files). */
    private Process jvm(String name, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(TestJvm.java(
            "-Xmx256m", "-cp", System.getProperty("java.class.path"), "io.jbackup.cli.Main"));
        cmd.addAll(List.of(args));
        return new ProcessBuilder(cmd).redirectOutput(dir.resolve(name + ".out").toFile())
            .redirectError(dir.resolve(name + ".err").toFile()).start();
    }

    private String err(String name) throws Exception {
        return Files.readString(dir.resolve(name + ".err"));
    }

    private Path jobFile(String name, String schedule, String source, String extra) throws Exception {
        Path f = dir.resolve(name + ".yaml");
        Files.writeString(f, String.join("\n",
            "repository: repo",
            "timezone: UTC",
            "jobs:",
            "  - name: web1",
            "    vm: web1",
            "    schedule: \"" + schedule + "\"",
            "    mode: auto",
            "    bitmap: jb",
            "    disks:",
            "      - {name: vda, source: \"" + source + "\"}",
            "    retention: {keepLast: 2}",
            extra, ""));
        return f;
    }

    private static JsonNode state(Path repo, String file) throws Exception {
        return new ObjectMapper().readTree(repo.resolve("schedule").resolve(file + ".json").toFile()).get("tasks");
    }

    @Test
    void runDueTwiceAtOnceBacksUpOnceThenIncrementalsRetentionAndLogs() throws Exception {
        Path repo = dir.resolve("repo");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K").ok();
        Path img = QemuImages.qcow2(dir.resolve("vda.qcow2"), "32M");
        QemuImages.io(img, "qcow2", "write -P 0x11 0 8M", "write -P 0x22 20M 4M");
        QemuImages.addBitmap(img, "jb");
        Path sock = dir.resolve("vda.sock");
        String uri = "nbd+unix:///?socket=" + sock;
        Path jobs = jobFile("nightly", "0 2 * * *", uri,
            "verify: {schedule: \"0 5 * * *\", sample: 100}\ngc: {schedule: \"0 6 * * 0\"}");

        try (Proc.Background s = Proc.start(dir.resolve("nbd1.log"), "qemu-nbd", "-t", "-e", "4", "-r", "-f", "qcow2",
            "-B", "jb", "-A", "-k", sock.toString(), img.toString()).awaitPath(sock)) {
            Process a = jvm("a", "run-due", "--config", jobs.toString(), "--now", "2026-11-24T02:30:00Z");
            Process b = jvm("b", "run-due", "--config", jobs.toString(), "--now", "2026-11-24T02:30:00Z");
            assertTrue(a.waitFor(120, TimeUnit.SECONDS) && b.waitFor(120, TimeUnit.SECONDS));
            assertEquals(0, a.exitValue(), err("a"));
            assertEquals(0, b.exitValue(), err("b"));
        }
        JsonNode list = Cli.run("list", "--repo", repo.toString(), "--json").ok().json();
        assertEquals(1, list.size(), "two runs at once made exactly one backup: " + list);
        assertEquals("full", list.get(0).get("type").asText());
        assertEquals("web1", list.get(0).get("labels").get("job").asText());
        JsonNode st = state(repo, "nightly");
        assertEquals("ok", st.get("job:web1").get("status").asText(), st.toString());
        assertEquals("ok", st.get("verify").get("status").asText(), st.toString());
        assertEquals("ok", st.get("gc").get("status").asText(), st.toString());
        // the other run skipped the job (busy disk, or already done) and said so in its log
        List<String> logs = new ArrayList<>();
        Cli.run("log", "--config", jobs.toString(), "--json").ok().json().forEach(r -> logs.add(r.get("id").asText()));
        assertTrue(logs.size() >= 1 && logs.size() <= 2, logs.toString());
        if (logs.size() == 2) {
            String all = Cli.run("log", "--config", jobs.toString(), "--run", logs.get(0)).ok().stdout()
                + Cli.run("log", "--config", jobs.toString(), "--run", logs.get(1)).ok().stdout();
            assertTrue(all.contains("job:web1: skipped"), all);
        }

        // nothing due a minute later: silent, no new log
        Cli.Result idle = Cli.run("run-due", "--config", jobs.toString(), "--now", "2026-11-24T02:31:00Z").ok();
        assertEquals("", idle.stdout() + idle.stderr());
        assertEquals(logs.size(), Cli.run("log", "--config", jobs.toString(), "--json").ok().json().size());

        // the next two nights: incrementals through the bitmap, and retention keeps the last two
        for (int day = 25; day <= 26; day++) {
            QemuImages.io(img, "qcow2", "write -P 0x" + day + " " + (day - 24) + "M 64k");
            try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-B", "jb", "-A")) {
                Path job2 = jobFile("nightly", "0 2 * * *", QemuImages.uriOf(s), "");
                JsonNode r = Cli.run("run-due", "--config", job2.toString(), "--now", "2026-11-" + day + "T02:30:00Z",
                    "--json").ok().json();
                assertEquals("ok", r.get("tasks").get(0).get("status").asText(), r.toString());
                assertEquals("incremental", r.get("tasks").get(0).get("disks").get(0).get("type").asText(),
                    r.toString());
            }
        }
        list = Cli.run("list", "--repo", repo.toString(), "--json").ok().json();
        assertEquals(2, list.size(), "keepLast 2: " + list);
        Path out = dir.resolve("restored.raw");
        Cli.run("restore", "--repo", repo.toString(), "--vm", "web1", "--disk", "vda", "--backup", "latest", "--to",
            out.toString()).ok();
        assertEquals(Proc.sha256(QemuImages.toRaw(img, dir.resolve("now.raw"))), Proc.sha256(out));

        // a failing source: exit code of the failure, one line for cron mail, the log tells the rest
        Path broken = jobFile("broken", "0 2 * * *", "nbd+unix:///?socket=" + dir.resolve("nobody.sock"), "");
        Cli.Result f = Cli.run("run-due", "--config", broken.toString(), "--now", "2026-11-27T02:30:00Z");
        assertEquals(ExitCodes.SOURCE, f.exitCode(), f.toString());
        assertEquals(1, f.stderr().lines().count(), f.stderr());
        assertTrue(f.stderr().contains("1 of 1 task failed: job:web1: web1/vda:")
            && f.stderr().contains("jbackup log --config " + broken + " --run "), f.stderr());
        String runId = f.stderr().replaceAll("(?s).* --run (\\S+)\\).*", "$1");
        // --json: the same exit code in the document, with the failure's code (another run: the next day)
        Cli.Result fj = Cli.run("run-due", "--config", broken.toString(), "--now", "2026-11-28T02:30:00Z", "--json");
        assertEquals(ExitCodes.SOURCE, fj.exitCode(), fj.toString());
        JsonNode doc = fj.json();
        assertEquals("error", doc.get("status").asText(), doc.toString());
        assertEquals(ExitCodes.SOURCE, doc.get("exitCode").asInt(), doc.toString());
        assertTrue(doc.get("error").get("code").asText().startsWith("source-"), doc.toString());
        assertEquals("failed", doc.get("tasks").get(0).get("status").asText(), doc.toString());
        Cli.Result lg = Cli.run("log", "--config", broken.toString(), "--run", runId).ok();
        assertTrue(lg.stdout().contains("FAILED") && lg.stdout().contains("finished: failed"), lg.stdout());
        Cli.Result ls = Cli.run("log", "--repo", repo.toString()).ok();
        assertTrue(ls.stdout().contains(runId) && ls.stdout().contains("failed"), ls.stdout());

        Cli.Result sched = Cli.run("schedule", "--config", jobs.toString(), "--now", "2026-11-27T03:00:00Z",
            "--count", "2").ok();
        assertTrue(sched.stdout().contains("job:web1  \"0 2 * * *\"")
            && sched.stdout().contains("next:      2026-11-28 02:00:00 +00:00 (Sat)")
            && sched.stdout().contains("next:      2026-11-29 02:00:00 +00:00 (Sun)")
            && sched.stdout().contains("retention: keep-last 2") && sched.stdout().contains("last run:  2026-11-26 02:30:00 +00:00 (Thu) (ok)"),
            sched.stdout());
        JsonNode sj = Cli.run("schedule", "--config", jobs.toString(), "--json", "--now", "2026-11-27T03:00:00Z").ok()
            .json();
        assertTrue(sj.get("tasks").get(0).get("due").asBoolean(), "the nightly job did not run on the 27th: " + sj);
    }

    /**
     * A job with an offline qcow2 image and an export served by someone else, as one set: jbackup serves the image
     * itself and rotates its bitmaps (as {@code auto --image --rotate-bitmap}), so the second night's incremental reads
     * exactly what was written since the first, and only the new bitmap stays on the image.
     */
    @Test
    void anOfflineImageJobServesTheImageAndRotatesItsBitmaps() throws Exception {
        Path repo = dir.resolve("repo");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K").ok();
        Path img = QemuImages.qcow2(Files.createDirectories(dir.resolve("images")).resolve("vda.qcow2"), "16M");
        QemuImages.io(img, "qcow2", "write -P 0x11 0 3M");
        Path other = QemuImages.qcow2(dir.resolve("vdb.qcow2"), "8M");
        QemuImages.io(other, "qcow2", "write -P 0x22 1M 1M");
        Path jobs = dir.resolve("offline.yaml");
        try (Proc.Background s = QemuImages.qemuNbd(dir, other, "qcow2", "-r", "-A")) {
            Files.writeString(jobs, String.join("\n",
                "repository: repo",
                "timezone: UTC",
                "jobs:",
                "  - name: fs1",
                "    vm: fs1",
                "    schedule: \"0 2 * * *\"",
                "    disks:",
                "      - {name: vda, image: images/vda.qcow2}",
                "      - {name: vdb, source: \"" + QemuImages.uriOf(s) + "\"}",
                "    retention: {keepLast: 2}", ""));
            JsonNode night1 = Cli.run("run-due", "--config", jobs.toString(), "--now", "2026-11-24T02:30:00Z",
                "--json").ok().json().get("tasks").get(0);
            assertEquals("ok", night1.get("status").asText(), night1.toString());
            assertEquals("vda", night1.get("disks").get(0).get("disk").asText(), "in the job file's order");
            assertEquals("full", night1.get("disks").get(0).get("type").asText(), night1.toString());
            assertEquals("full", night1.get("disks").get(1).get("type").asText(), night1.toString());
        }
        List<String> first = bitmapsOf(img);
        assertEquals(1, first.size(), first.toString());
        assertTrue(first.get(0).startsWith("jbackup-"), first.toString());

        QemuImages.io(img, "qcow2", "write -P 0x33 5M 64k", "write -P 0x44 9M 128k");
        try (Proc.Background s = QemuImages.qemuNbd(dir, other, "qcow2", "-r", "-A")) {
            Files.writeString(jobs, Files.readString(jobs).replaceAll("nbd\\+unix:[^\"]*", QemuImages.uriOf(s)));
            JsonNode night2 = Cli.run("run-due", "--config", jobs.toString(), "--now", "2026-11-25T02:30:00Z",
                "--json").ok().json().get("tasks").get(0);
            JsonNode vda = night2.get("disks").get(0);
            assertEquals("incremental", vda.get("type").asText(), night2.toString());
            assertEquals(192 << 10, vda.get("bytesRead").asLong(), "only what was written since night 1: " + vda);
            assertEquals("full", night2.get("disks").get(1).get("type").asText(),
                "vdb has no bitmap: auto makes a full: " + night2);
        }
        List<String> second = bitmapsOf(img);
        assertEquals(1, second.size(), "the old bitmap is removed after the commit: " + second);
        assertTrue(!second.equals(first), second + " after " + first);
        // schedule names the image it serves, not only the disk
        String sched = Cli.run("schedule", "--config", jobs.toString(), "--now", "2026-11-25T03:00:00Z").ok().stdout();
        assertTrue(sched.contains("disks:     fs1: [vda (image " + img.toAbsolutePath() + "), vdb], auto"), sched);
        JsonNode sj = Cli.run("schedule", "--config", jobs.toString(), "--now", "2026-11-25T03:00:00Z", "--json").ok()
            .json().get("tasks").get(0);
        assertEquals(img.toAbsolutePath().toString(), sj.get("images").get("vda").asText(), sj.toString());
        assertTrue(sj.get("images").get("vdb") == null && sj.get("disksText") == null, sj.toString());
        Path out = dir.resolve("vda-restored.raw");
        Cli.run("restore", "--repo", repo.toString(), "--vm", "fs1", "--disk", "vda", "--backup", "latest", "--to",
            out.toString()).ok();
        assertEquals(Proc.sha256(QemuImages.toRaw(img, dir.resolve("vda-now.raw"))), Proc.sha256(out));
        String runs = Cli.run("log", "--config", jobs.toString(), "--run", "latest").ok().stdout();
        assertTrue(runs.contains("job:fs1: fs1/vda: bitmap " + second.get(0) + " of " + img
            + " records the changes from now on; removed " + first.get(0)), runs);
    }

    private static List<String> bitmapsOf(Path img) throws Exception {
        List<String> out = new ArrayList<>();
        Cli.run("bitmap", "list", "--image", img.toString(), "--json").ok().json().get("bitmaps")
            .forEach(b -> out.add(b.get("name").asText()));
        return out;
    }

    @Test
    void aJobsTimeoutAndRetriesBoundASilentSource() throws Exception {
        Path repo = dir.resolve("repo");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K").ok();
        Path sock = dir.resolve("slow.sock");
        Path jobs = dir.resolve("slow.yaml");
        Files.writeString(jobs, String.join("\n",
            "repository: repo",
            "jobs:",
            "  - name: slow",
            "    schedule: \"0 2 * * *\"",
            "    mode: full",
            "    timeout: 2",
            "    retries: 0",
            "    disks: [{name: vda, source: \"nbd+unix:///?socket=" + sock + "\"}]",
            ""));
        // every read takes 60 s: the job's 2 s timeout (not the default 120 s) must end it, without a reconnect
        try (Proc.Background s = Proc.start(dir.resolve("nbdkit.log"), "nbdkit", "-f", "-U", sock.toString(),
            "--filter=delay", "pattern", "4M", "delay-read=60").awaitPath(sock)) {
            Process p = jvm("slow", "run-due", "--config", jobs.toString(), "--now", "2026-11-24T02:30:00Z", "--json");
            assertTrue(p.waitFor(100, TimeUnit.SECONDS), "run-due gave up on the silent source: " + err("slow"));
            assertEquals(ExitCodes.SOURCE, p.exitValue(), err("slow"));
            JsonNode r = new ObjectMapper().readTree(dir.resolve("slow.out").toFile());
            JsonNode task = r.get("tasks").get(0);
            assertEquals("failed", task.get("status").asText(), r.toString());
            assertTrue(task.toString().contains("within 2000 ms") && task.toString().contains(
                "after 0 reconnect attempts"), r.toString());
        }
        assertEquals(0, Cli.run("list", "--repo", repo.toString(), "--json").ok().json().size(), "nothing committed");
    }

    @Test
    void aLiveJobBacksUpARunningQemuThroughQmp() throws Exception {
        Path repo = dir.resolve("repo");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K").ok();
        Path img = QemuImages.qcow2(dir.resolve("vm.qcow2"), "16M");
        QemuImages.io(img, "qcow2", "write -P 0x11 0 3M", "write -P 0x22 8M 1M");
        try (StorageDaemon qsd = StorageDaemon.start(dir, img, true)) {
            Path jobs = dir.resolve("live.yaml");
            Files.writeString(jobs, String.join("\n",
                "repository: repo",
                "timezone: UTC",
                "jobs:",
                "  - name: vm1",
                "    vm: vm1",
                "    schedule: \"0 3 * * *\"",
                "    qmp: {socket: \"" + qsd.qmp() + "\", nbdServer: \"" + qsd.nbdServer() + "\", timeout: 20}",
                "    disks: [{name: vda, node: disk0}]",
                ""));
            JsonNode first = Cli.run("run-due", "--config", jobs.toString(), "--now", "2026-11-24T03:30:00Z", "--json")
                .ok().json();
            assertEquals("full", first.get("tasks").get(0).get("disks").get(0).get("type").asText(), first.toString());
            try (NbdClient g = NbdClient.connect(qsd.guestUri(), ClientOptions.defaults())) {
                byte[] b = new byte[65536];
                java.util.Arrays.fill(b, (byte) 0x77);
                g.write(5L << 20, b, 0, b.length, false).get(30, TimeUnit.SECONDS);
                g.flush().get(30, TimeUnit.SECONDS);
            }
            JsonNode second = Cli.run("run-due", "--config", jobs.toString(), "--now", "2026-11-25T03:30:00Z",
                "--json").ok().json();
            JsonNode d = second.get("tasks").get(0).get("disks").get(0);
            assertEquals("incremental", d.get("type").asText(), second.toString());
            assertTrue(d.get("bytesRead").asLong() <= 1L << 20, "only the guest's write is read: " + d);
            Path guest = dir.resolve("guest.raw");
            Proc.run("nbdcopy", qsd.guestUri().toString(), guest.toString());
            Path out = dir.resolve("live-restored.raw");
            Cli.run("restore", "--repo", repo.toString(), "--vm", "vm1", "--disk", "vda", "--backup", "latest", "--to",
                out.toString()).ok();
            assertEquals(Proc.sha256(guest), Proc.sha256(out));
        }
    }

    @Test
    void daemonRunsTheScheduleAndStopsCleanlyOnSigterm() throws Exception {
        Path repo = dir.resolve("repo");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K").ok();
        Path img = QemuImages.qcow2(dir.resolve("vda.qcow2"), "16M");
        QemuImages.io(img, "qcow2", "write -P 0x33 0 4M");
        QemuImages.addBitmap(img, "jb");
        Path sock = dir.resolve("vda.sock");
        try (Proc.Background s = Proc.start(dir.resolve("nbd.log"), "qemu-nbd", "-t", "-e", "4", "-r", "-f", "qcow2",
            "-B", "jb", "-A", "-k", sock.toString(), img.toString()).awaitPath(sock)) {
            Path jobs = jobFile("every2s", "*/2 * * * * *", "nbd+unix:///?socket=" + sock, "");
            Process d = jvm("daemon", "daemon", "--config", jobs.toString());
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
                int backups = 0;
                while (backups < 2 && System.nanoTime() < deadline && d.isAlive()) {
                    Thread.sleep(300);
                    backups = (int) Cli.run("log", "--repo", repo.toString(), "--json").json().size();
                }
                assertTrue(backups >= 2, "the daemon ran twice: " + err("daemon"));
            } finally {
                d.destroy(); // SIGTERM
                assertTrue(d.waitFor(90, TimeUnit.SECONDS), "daemon stops on SIGTERM");
            }
            assertEquals(0, d.exitValue(), err("daemon"));
            assertTrue(err("daemon").contains("jbackup daemon: stopped"), err("daemon"));
        }
        JsonNode list = Cli.run("list", "--repo", repo.toString(), "--json").ok().json();
        assertTrue(list.size() >= 1 && list.size() <= 2, "keepLast 2 applied: " + list);
        for (JsonNode b : list) {
            assertEquals("complete", b.get("state").asText(), "no half backup after SIGTERM: " + list);
        }
        assertFalse(Files.list(repo.resolve("tmp")).findAny().isPresent(), "nothing left in tmp/");
        Cli.run("verify", "--repo", repo.toString()).ok();
    }
}
