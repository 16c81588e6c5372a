package io.jbackup.faults;

import io.jbackup.store.DiskLock;
import io.jbackup.store.FileMutex;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.JBackupProcess;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.InetAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Two jbackup processes reaching for the same thing: a unix socket another {@code serve} listens on, a disk that
 * another run is backing up into the same repository; and what a killed run leaves behind. Every jbackup here is a
 * separate JVM (as a user starts it), except the short second backups, which run in-process.
 */
class BusyResourcesTest {
    @TempDir
    Path dir;

    private String initRepo() {
        String r = dir.resolve("repo").toString();
        Cli.run("init", "--repo", r, "--chunk-size", "64K", "--pack-size", "1M").ok();
        return r;
    }

    /** Backs up a small image once, so that the repository has an export to serve. */
    private void oneBackup(String repo) throws IOException {
        FaultImage img = new FaultImage(dir, 2 << 20, 1 << 20, new Random(7));
        try (Proc.Background src = img.serve()) {
            Cli.run("full", "--repo", repo, "--disk", "vda", "--source", QemuImages.uriOf(src)).ok();
        }
    }

    private static JBackupProcess serve(Path dir, String name, String repo, Path sock) {
        return JBackupProcess.start(dir, name, Map.of(), "serve", "--repo", repo, "--socket", sock.toString(),
            "--cache-size", "16");
    }

    private static Proc.Result nbdinfoList(Path sock) {
        return Proc.exec(Duration.ofSeconds(30), "nbdinfo", "--list", "nbd+unix:///?socket=" + sock);
    }

    private static void awaitServing(JBackupProcess p, Path sock) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!p.stdout().contains("Ctrl-C to stop")) {
            if (!p.process.isAlive()) {
                throw new AssertionError("serve exited " + p.process.exitValue() + ": " + p.stdout() + p.stderr());
            }
            assertTrue(System.nanoTime() < deadline, "serve did not start: " + p.stderr());
            Thread.sleep(50);
        }
        assertTrue(Files.exists(sock));
    }

    @Test
    void aSecondServeOnTheSameSocketIsRefusedAndTheFirstStaysReachable() throws Exception {
        String repo = initRepo();
        oneBackup(repo);
        Path sock = dir.resolve("serve.sock");
        try (JBackupProcess first = serve(dir, "first", repo, sock)) {
            awaitServing(first, sock);
            assertEquals(0, nbdinfoList(sock).exitCode());
            try (JBackupProcess second = serve(dir, "second", repo, sock)) {
                int code;
                try {
                    code = second.await(30);
                } catch (AssertionError stillRunning) {
                    code = -1; // it took the socket over and serves: the defect
                }
                assertEquals(2, code, "second serve: " + second.stdout() + second.stderr());
                assertTrue(second.stderr().contains("already in use by a running server")
                    && second.stderr().contains(sock.toString()), second.stderr());
            }
            // the second one is gone (it may have removed the file on its way out): the first must still answer
            Proc.Result r = nbdinfoList(sock);
            assertEquals(0, r.exitCode(), r.stderr());
            assertTrue(r.stdout().contains("vda@latest"), r.stdout());
            assertTrue(first.process.isAlive());
        }
    }

    @Test
    void aStaleSocketFileIsReplaced() throws Exception {
        String repo = initRepo();
        oneBackup(repo);
        Path sock = dir.resolve("stale.sock");
        try (ServerSocketChannel ch = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.bind(UnixDomainSocketAddress.of(sock));
        } // closed: the file stays, nothing accepts on it
        assertTrue(Files.exists(sock));
        try (JBackupProcess p = serve(dir, "serve", repo, sock)) {
            awaitServing(p, sock);
            Proc.Result r = nbdinfoList(sock);
            assertEquals(0, r.exitCode(), r.stderr());
            assertTrue(r.stdout().contains("vda@latest"), r.stdout());
        }
    }

    @Test
    void aRegularFileOrDirectoryAtTheSocketPathIsRefusedAndKept() throws Exception {
        String repo = initRepo();
        Path file = dir.resolve("precious.txt");
        Files.writeString(file, "keep me");
        Cli.Result r = Cli.run("serve", "--repo", repo, "--socket", file.toString());
        assertEquals(2, r.exitCode(), r.stderr());
        assertTrue(r.stderr().contains("not a socket") && r.stderr().contains(file.toString()), r.stderr());
        assertEquals("keep me", Files.readString(file));
        Path d = Files.createDirectory(dir.resolve("adir"));
        r = Cli.run("serve", "--repo", repo, "--socket", d.toString());
        assertEquals(2, r.exitCode(), r.stderr());
        assertTrue(Files.isDirectory(d));
    }

    /** The lock file of a disk, whose content names the holder. */
    private static Path diskLock(String repo, String disk) {
        return Path.of(repo, "locks", "disk-_--" + disk + ".lock");
    }

    @Test
    void aSecondBackupOfABusyDiskExitsTwoNamingTheHolderOrWaitsWithWaitLock() throws Exception {
        String repo = initRepo();
        FaultImage img = new FaultImage(dir, 8 << 20, 6 << 20, new Random(11));
        String sha = Proc.sha256(img.snapshot(dir.resolve("img.raw")));
        try (Proc.Background slow = img.serveThrottled(1_500_000); Proc.Background fast = img.serve();
             JBackupProcess first = JBackupProcess.start(dir, "first", Map.of(), "full", "--repo", repo,
                 "--disk", "vda", "--source", QemuImages.uriOf(slow))) {
            long pid = first.process.pid();
            Path lock = diskLock(repo, "vda");
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!(Files.exists(lock) && Files.readString(lock).contains("pid " + pid + " "))) {
                assertTrue(first.process.isAlive(), "first backup ended early: " + first.stderr());
                assertTrue(System.nanoTime() < deadline, "the first backup never took the disk lock " + lock);
                Thread.sleep(20);
            }
            // no wait: exit 2 at once, naming the holder
            long t0 = System.nanoTime();
            Cli.Result busy = Cli.run("full", "--repo", repo, "--disk", "vda", "--source", QemuImages.uriOf(fast));
            assertEquals(2, busy.exitCode(), busy.stdout() + busy.stderr());
            assertTrue(busy.stderr().contains("disk vda is being backed up by pid " + pid + " on "
                + host()) && busy.stderr().contains("--wait-lock"), busy.stderr());
            assertTrue(first.process.isAlive(), "the refusal must come before the first run ends");
            assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(10), "refused at once");
            // --wait-lock=DURATION: waits for the first, then backs up
            Cli.Result waited = Cli.run("full", "--repo", repo, "--disk", "vda", "--source", QemuImages.uriOf(fast),
                "--wait-lock=60s", "--json");
            assertEquals(0, waited.exitCode(), waited.stderr());
            assertEquals(0, first.await(60), first.stderr());
            assertFalse(first.process.isAlive());
        }
        var list = Cli.run("list", "--repo", repo, "--json").ok().json();
        assertEquals(2, list.size(), list.toString());
        for (var b : list) {
            Path out = dir.resolve("restored-" + b.get("id").asText() + ".raw");
            Cli.run("restore", "--repo", repo, "--disk", "vda", "--backup", b.get("id").asText(), "--to",
                out.toString()).ok();
            assertEquals(sha, Proc.sha256(out), "backup " + b.get("id").asText());
        }
    }

    @Test
    void runDueSkipsAJobWhoseDiskAnotherBackupHoldsAndRunsItNextTime() throws Exception {
        String repo = initRepo();
        FaultImage img = new FaultImage(dir, 2 << 20, 1 << 20, new Random(17));
        try (Proc.Background src = img.serve()) {
            Path jobs = dir.resolve("jobs.yaml");
            Files.writeString(jobs, String.join("\n", "repository: " + repo, "timezone: UTC", "jobs:",
                "  - name: web1", "    vm: web1", "    schedule: \"0 2 * * *\"", "    mode: full", "    disks:",
                "      - {name: vda, source: \"" + QemuImages.uriOf(src) + "\"}", ""));
            String now = "2026-11-24T02:30:00Z";
            // this JVM backs up web1/vda (as a "jbackup full" from the shell would)
            try (FileMutex held = DiskLock.acquire(Path.of(repo), "web1", "vda", "jbackup full backup of web1/vda",
                Duration.ZERO, () -> false)) {
                var r = Cli.run("run-due", "--config", jobs.toString(), "--now", now, "--json");
                assertEquals(0, r.exitCode(), r.stderr());
                var t = r.json().get("tasks").get(0);
                assertEquals("skipped", t.get("status").asText(), t.toString());
                assertTrue(t.get("message").asText().contains("disk web1/vda is being backed up by pid "
                    + ProcessHandle.current().pid() + " on " + host()), t.toString());
            }
            assertEquals(0, Cli.run("list", "--repo", repo, "--json").ok().json().size(), "nothing was backed up");
            // still due: the next run backs it up
            var t = Cli.run("run-due", "--config", jobs.toString(), "--now", now, "--json").ok().json()
                .get("tasks").get(0);
            assertEquals("ok", t.get("status").asText(), t.toString());
            assertEquals(1, Cli.run("list", "--repo", repo, "--json").ok().json().size());
        }
    }

    @Test
    void afterCtrlCTheNextCommandIsQuietAndNothingIsLeft() throws Exception {
        String repo = initRepo();
        FaultImage img = new FaultImage(dir, 8 << 20, 6 << 20, new Random(13));
        try (Proc.Background slow = img.serveThrottled(1_000_000);
             JBackupProcess victim = JBackupProcess.start(dir, "victim", Map.of(), "full", "--repo", repo,
                 "--disk", "vda", "--source", QemuImages.uriOf(slow))) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!hasEntries(Path.of(repo, "tmp"))) {
                assertTrue(victim.process.isAlive(), victim.stderr());
                assertTrue(System.nanoTime() < deadline, "the backup never started");
                Thread.sleep(20);
            }
            Thread.sleep(300);
            // SIGTERM: the same shutdown path as Ctrl-C (a forked test JVM may run with SIGINT ignored)
            victim.process.destroy();
            assertEquals(7, victim.await(60), victim.stderr());
        }
        try (JBackupProcess next = JBackupProcess.start(dir, "next", Map.of(), "list", "--repo", repo)) {
            assertEquals(0, next.await(60), next.stderr());
            assertEquals("", next.stderr().strip(), "stderr at default verbosity");
        }
        assertFalse(hasEntries(Path.of(repo, "tmp")), "tmp/ left");
        try (var s = Files.list(Path.of(repo, "locks"))) {
            assertTrue(s.noneMatch(f -> f.toString().endsWith(".json")), "lock record left");
        }
    }

    /** The host name jbackup records (/etc/hostname first). */
    private static String host() throws IOException {
        Path h = Path.of("/etc/hostname");
        return Files.exists(h) ? Files.readString(h).trim() : InetAddress.getLocalHost().getHostName();
    }

    private static boolean hasEntries(Path d) throws IOException {
        if (!Files.isDirectory(d)) {
            return false;
        }
        try (var s = Files.list(d)) {
            return s.findAny().isPresent();
        }
    }

    @Test
    void leftoversOfADeadRunAreRemovedQuietlyAndReportedAtVerbose() throws Exception {
        String repo = initRepo();
        // a record of a process that is gone: pid 2^22 + 1 is above Linux's pid_max default
        Path rec = Path.of(repo, "locks", host() + "-4194305-1.json");
        Files.writeString(rec, "{\"pid\":4194305,\"host\":\"" + host()
            + "\",\"start\":1,\"mode\":\"shared\",\"since\":\"2026-01-01T00:00:00Z\",\"command\":\"x\"}");
        Path tmp = Files.createDirectories(Path.of(repo, "tmp", host() + "-4194305-1"));
        Files.writeString(tmp.resolve("pack-0.partial"), "unsealed");
        try (JBackupProcess quiet = JBackupProcess.start(dir, "quiet", Map.of(), "list", "--repo", repo)) {
            assertEquals(0, quiet.await(60), quiet.stderr());
            assertEquals("", quiet.stderr().strip());
        }
        assertFalse(Files.exists(rec), "the stale record is removed");
        assertFalse(Files.exists(tmp), "the dead run's tmp/ directory is removed");
        Files.writeString(rec, "{\"pid\":4194305,\"host\":\"" + host()
            + "\",\"start\":1,\"mode\":\"shared\",\"since\":\"2026-01-01T00:00:00Z\",\"command\":\"x\"}");
        try (JBackupProcess verbose = JBackupProcess.start(dir, "verbose", Map.of(), "list", "--repo", repo, "-v")) {
            assertEquals(0, verbose.await(60), verbose.stderr());
            assertTrue(verbose.stderr().contains("stale lock record"), verbose.stderr());
            assertFalse(verbose.stderr().contains("WARN"), verbose.stderr());
        }
    }
}
