package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.nbd.server.ServerConfig;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.JBackupProcess;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.TestJvm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code jbackup serve --writable}: clients write through copy-on-write overlays, the backup never changes;
 * SIGTERM stops a serve process gracefully (exit 0, socket removed, overlays kept); {@code commit-overlay} turns
 * an overlay into an incremental backup that restores to the image the client saw.
 */
class ServeWritableTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Writes made through the writable export (and on a raw copy, for the expected image). */
    private static final String[] WRITES = {"write -P 0xaa 1M 64k", "write -P 0xbb 100k 3k", "write -z 5M 512k"};

    @TempDir
    Path dir;

    private Path repo() {
        return dir.resolve("repo");
    }

    /** A repository with one full backup of an 8 MiB disk; returns {backup id, raw snapshot}. */
    private Object[] oneBackup() {
        Cli.run("init", "--repo", repo().toString(), "--chunk-size", "64K").ok();
        Path img = QemuImages.qcow2(dir.resolve("disk.qcow2"), "8M");
        QemuImages.io(img, "qcow2", "write -P 0x11 0 2M", "write -P 0x22 5M 1M", "write -P 0x33 7M 64k");
        String id;
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A")) {
            id = Cli.run("full", "--repo", repo().toString(), "--disk", "vda", "--source", QemuImages.uriOf(s),
                "--json").ok().json().get("disks").get(0).get("backupId").asText();
        }
        return new Object[] {id, QemuImages.toRaw(img, dir.resolve("snap.raw"))};
    }

    /** Overlays only read (a listing opens every export) are removed at shutdown, not kept as "0 bytes changed". */
    @Test
    void overlaysNothingWasWrittenToAreNotKept() throws Exception {
        String id = (String) oneBackup()[0];
        Path img = QemuImages.qcow2(dir.resolve("other.qcow2"), "1M");
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A")) {
            Cli.run("full", "--repo", repo().toString(), "--disk", "vdb", "--source", QemuImages.uriOf(s)).ok();
        }
        Path overlays = dir.resolve("ov");
        Path sock = dir.resolve("r.sock");
        try (Repository r = Repository.open(repo(), OpenOptions.defaults())) {
            ServerConfig cfg = ServerConfig.builder().unixSocket(sock).build();
            try (BackupServer s = BackupServer.start(r, cfg, BackupServer.Options.writable(8 << 20, 4, overlays, false))) {
                Proc.run("nbdinfo", "--list", "nbd+unix:///?socket=" + sock);
                // a reference that names no backup: the client is told why, not only "no export named"
                Proc.Result none = Proc.exec(java.time.Duration.ofSeconds(30), "qemu-io", "-r", "-f", "raw", "-c",
                    "read 0 4k", "nbd+unix:///vda@@2001-01-01T00:00:00Z?socket=" + sock);
                assertTrue(none.exitCode() != 0 && none.stderr().contains("no complete backup of vda at or before"),
                    none.toString());
                Proc.run("qemu-io", "-f", "raw", "-c", "read 0 64k", "nbd+unix:///vdb@latest?socket=" + sock);
                Proc.run("qemu-io", "-f", "raw", "-c", "write -P 0x77 0 4k", "nbd+unix:///vda@latest?socket=" + sock);
                s.close();
                List<BackupExports.KeptOverlay> kept = s.keptOverlays();
                assertEquals(1, kept.size(), kept.toString());
                assertEquals(id, kept.get(0).backupId());
            }
        }
        try (Stream<Path> files = Files.list(overlays)) {
            assertEquals(List.of("vda@" + id + ".overlay", "vda@" + id + ".overlay.json", "vda@" + id + ".overlay.map"),
                files.map(f -> f.getFileName().toString()).sorted().toList());
        }
    }

    /** The snapshot with {@link #WRITES} applied. */
    private Path expected(Path snap) throws IOException {
        Path e = dir.resolve("expected.raw");
        Files.copy(snap, e);
        QemuImages.io(e, "raw", WRITES);
        return e;
    }

    private String restore(String id, String name) {
        Path out = dir.resolve(name);
        Cli.run("restore", "--repo", repo().toString(), "--disk", "vda", "--backup", id, "--to", out.toString()).ok();
        return Proc.sha256(out);
    }

    private static void writeThrough(String uri) {
        String[] cmd = new String[4 + 2 * WRITES.length];
        int i = 0;
        cmd[i++] = "qemu-io";
        cmd[i++] = "-f";
        cmd[i++] = "raw";
        for (String w : WRITES) {
            cmd[i++] = "-c";
            cmd[i++] = w;
        }
        cmd[i] = uri;
        String out = Proc.run(cmd);
        assertFalse(out.contains("failed"), out);
    }

    @Test
    void sigtermKeepsTheOverlayAndCommitOverlayMakesANewBackup() throws Exception {
        Object[] b = oneBackup();
        String id = (String) b[0];
        Path snap = (Path) b[1];
        Path expected = expected(snap);
        Path sock = dir.resolve("serve.sock");
        Path log = dir.resolve("serve.log");
        Process p = new ProcessBuilder(TestJvm.java("-cp", System.getProperty("java.class.path"), "io.jbackup.cli.Main",
            "serve", "--repo", repo().toString(), "--socket", sock.toString(), "--writable"))
            .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (!Files.exists(sock)) {
                assertTrue(p.isAlive() && System.nanoTime() < deadline, "serve did not start: " + Files.readString(log));
                Thread.sleep(20);
            }
            String uri = "nbd+unix:///vda@latest?socket=" + sock;
            JsonNode info = JSON.readTree(Proc.run("nbdinfo", "--json", uri)).get("exports").get(0);
            assertFalse(info.get("is_read_only").asBoolean(), info.toString());
            assertTrue(info.get("description").asText().contains("writable overlay"), info.toString());

            writeThrough(uri);
            // another name of the same backup shares the overlay; reads merge overlay and backup
            String io = Proc.run("qemu-io", "-r", "-f", "raw", "-c", "read -P 0x11 0 100k", "-c", "read -P 0xbb 100k 3k",
                "-c", "read -P 0x11 103k 900k", "-c", "read -P 0xaa 1M 64k", "-c", "read -P 0 5M 512k",
                "-c", "read -P 0x22 5632k 512k", "nbd+unix:///vda@" + id + "?socket=" + sock);
            assertFalse(io.contains("verification failed"), io);
            Path seen = dir.resolve("seen.raw");
            Proc.run("nbdcopy", uri, seen.toString());
            assertEquals(Proc.sha256(expected), Proc.sha256(seen), "the writable export shows the writes");
        } finally {
            p.destroy(); // SIGTERM
        }
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "serve stopped on SIGTERM");
        String out = Files.readString(log);
        assertEquals(0, p.exitValue(), out);
        assertFalse(Files.exists(sock), "the socket is removed: " + out);
        assertTrue(out.contains("kept overlay") && out.contains("commit-overlay"), out);
        Path overlay = repo().resolve("overlays").resolve("vda@" + id + ".overlay");
        assertTrue(Files.exists(overlay) && Files.exists(OverlayFiles.metaFileOf(overlay))
            && Files.exists(Path.of(overlay + ".map")), out);
        assertEquals(Proc.sha256(snap), restore(id, "original.raw"), "the backup itself never changed");

        JsonNode c = Cli.run("commit-overlay", "--repo", repo().toString(), "--export", "vda@latest", "--json")
            .ok().json();
        assertEquals(id, c.get("parentId").asText(), c.toString());
        // chunk 1 (100k), chunk 16 (1M) and the 8 chunks of [5M, 5.5M), of which those 8 are now zero
        assertEquals(10, c.get("chunks").asLong(), c.toString());
        assertEquals(8, c.get("zeroChunks").asLong(), c.toString());
        assertTrue(c.get("bytesNew").asLong() <= 2 * 65536, "only the changed chunks are new: " + c);
        assertFalse(c.get("overlayKept").asBoolean());
        assertFalse(Files.exists(overlay) || Files.exists(OverlayFiles.metaFileOf(overlay)), "overlay deleted");

        String newId = c.get("backupId").asText();
        assertEquals(Proc.sha256(expected), restore(newId, "committed.raw"));
        assertEquals(Proc.sha256(snap), restore(id, "original2.raw"), "the parent is unchanged");
        try (Repository r = Repository.open(repo(), OpenOptions.defaults())) {
            var info = r.backup(newId).orElseThrow();
            assertEquals("incremental", info.type());
            assertEquals(id, info.parentId());
            assertEquals("commit-overlay", info.labels().get("origin"));
        }
    }

    @Test
    void overlaysAreContinuedLockedAndDiscardedOnRequest() throws Exception {
        Object[] b = oneBackup();
        String id = (String) b[0];
        Path snap = (Path) b[1];
        Path expected = expected(snap);
        Path overlays = dir.resolve("my-overlays");
        Path sock = dir.resolve("w.sock");
        String uri = "nbd+unix:///vda@latest?socket=" + sock;
        try (Repository r = Repository.open(repo(), OpenOptions.defaults())) {
            ServerConfig cfg = ServerConfig.builder().unixSocket(sock).build();
            try (BackupServer s = BackupServer.start(r, cfg, BackupServer.Options.writable(8 << 20, 4, overlays, false))) {
                writeThrough(uri);
                s.close();
                List<BackupExports.KeptOverlay> kept = s.keptOverlays();
                assertEquals(1, kept.size());
                assertEquals(id, kept.get(0).backupId());
                assertTrue(kept.get(0).changedBytes() >= 64 * 1024 + 512 * 1024, kept.toString());
            }
            Path overlay = overlays.resolve("vda@" + id + ".overlay");
            String overlaySha = Proc.sha256(overlay);
            // a second run continues the overlay; while it is served, commit-overlay is refused
            try (BackupServer s = BackupServer.start(r, cfg, BackupServer.Options.writable(8 << 20, 4, overlays, false))) {
                Path seen = dir.resolve("seen.raw");
                Proc.run("nbdcopy", uri, seen.toString());
                assertEquals(Proc.sha256(expected), Proc.sha256(seen));
                // a second serve of the same overlays: the client is refused with the reason, and the server's
                // console gets one line for it, not a stack trace
                Path sock2 = dir.resolve("w2.sock");
                try (JBackupProcess other = JBackupProcess.start(dir, "serve-busy", Map.of(), "serve", "--repo",
                    repo().toString(), "--socket", sock2.toString(), "--writable", "--cache-size", "16",
                    "--overlay-dir", overlays.toString())) {
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                    while (!Files.exists(sock2)) {
                        assertTrue(other.process.isAlive() && System.nanoTime() < deadline,
                            "serve did not start: " + other.stderr());
                        Thread.sleep(20);
                    }
                    Proc.Result refused = Proc.exec(java.time.Duration.ofSeconds(30), "qemu-io", "-f", "raw", "-c",
                        "read 0 4k", "nbd+unix:///vda@latest?socket=" + sock2);
                    assertTrue(refused.exitCode() != 0 && refused.stderr().contains("in use"), refused.toString());
                    other.process.destroy();
                    assertEquals(0, other.await(30), other.stderr());
                    assertTrue(other.stderr().contains("in use by another jbackup"), other.stderr());
                    assertFalse(other.stderr().contains("\tat "), "no stack trace: " + other.stderr());
                }
                Cli.Result busy = Cli.run("commit-overlay", "--repo", repo().toString(), "--overlay", overlay.toString(),
                    "--json");
                assertEquals(2, busy.exitCode(), "held by another run, like a busy disk: " + busy);
                assertEquals("overlay-busy", busy.json().get("error").get("code").asText(), busy.toString());
                assertTrue(busy.json().get("error").get("message").asText().contains("in use"), busy.toString());
            }
            // --discard-changes: fresh overlays in a temporary directory, deleted at shutdown; the directory a
            // killed run left (its pid, beyond pid_max, runs no more) is removed
            Path stale = Files.createDirectories(overlays.resolve("discard-999999999-1"));
            Files.writeString(stale.resolve("vda@x.overlay"), "x");
            try (BackupServer s = BackupServer.start(r, cfg, BackupServer.Options.writable(8 << 20, 4, overlays, true))) {
                assertFalse(Files.exists(stale), "the leftover of a killed --discard-changes run is removed");
                Path seen = dir.resolve("fresh.raw");
                Proc.run("nbdcopy", uri, seen.toString());
                assertEquals(Proc.sha256(snap), Proc.sha256(seen), "discard mode starts from the backup");
                Proc.run("qemu-io", "-f", "raw", "-c", "write -P 0xcc 0 1M", uri);
                assertTrue(s.exports().overlayDir().startsWith(overlays), s.exports().overlayDir().toString());
                s.close();
                assertTrue(s.keptOverlays().isEmpty());
                assertFalse(Files.exists(s.exports().overlayDir()), "temporary overlay directory removed");
            }
            try (Stream<Path> files = Files.list(overlays)) {
                assertEquals(3, files.count(), "only the kept overlay's files remain");
            }
            assertEquals(overlaySha, Proc.sha256(overlay), "the kept overlay was not touched");
        }
        // a commit is a backup of the disk: it takes the disk lock, and a running backup of the disk refuses it
        try (var held = io.jbackup.store.DiskLock.acquire(repo(), null, "vda", "a backup in this test",
                java.time.Duration.ZERO, () -> false)) {
            Cli.Result busy = Cli.run("commit-overlay", "--repo", repo().toString(), "--overlay",
                overlays.resolve("vda@" + id + ".overlay").toString(), "--keep-overlay", "--json");
            assertEquals(2, busy.exitCode(), busy.toString());
            assertEquals("disk-busy", busy.json().get("error").get("code").asText(), busy.toString());
            assertTrue(busy.stderr().contains("a backup in this test"), busy.stderr());
        }
        // committed with --keep-overlay, by file; the commit is the image the client saw
        JsonNode c = Cli.run("commit-overlay", "--repo", repo().toString(), "--overlay",
            overlays.resolve("vda@" + id + ".overlay").toString(), "--keep-overlay", "--note", "fixed config", "--json")
            .ok().json();
        assertTrue(c.get("overlayKept").asBoolean());
        assertEquals(Proc.sha256(expected), restore(c.get("backupId").asText(), "c.raw"));
        Cli.Result noSuch = Cli.run("commit-overlay", "--repo", repo().toString(), "--export", "vda@latest");
        assertEquals(2, noSuch.exitCode(), noSuch.toString()); // latest is now the committed backup: no overlay
        assertTrue(noSuch.stderr().contains("no overlay"), noSuch.stderr());
        // the overlays of this test are in a directory of its own: the message names the option that finds them
        assertTrue(noSuch.stderr().contains("give the same --overlay-dir"), noSuch.stderr());
    }

    @Test
    void encryptedRepositoryServesAndCommitsOverlays() throws Exception {
        Path pass = Files.writeString(dir.resolve("pass"), "correct horse\n");
        Cli.run("init", "--repo", repo().toString(), "--chunk-size", "64K", "--encryption", "aes-256-gcm",
            "--passphrase-file", pass.toString()).ok();
        Path img = QemuImages.qcow2(dir.resolve("enc.qcow2"), "4M");
        QemuImages.io(img, "qcow2", "write -P 0x11 0 2M", "write -P 0x22 3M 512k");
        String id;
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A")) {
            id = Cli.run("full", "--repo", repo().toString(), "--passphrase-file", pass.toString(), "--disk", "vda",
                "--source", QemuImages.uriOf(s), "--json").ok().json().get("disks").get(0).get("backupId").asText();
        }
        Path snap = QemuImages.toRaw(img, dir.resolve("enc-snap.raw"));
        Path sock = dir.resolve("enc.sock");
        String uri = "nbd+unix:///vda@latest?socket=" + sock;
        try (Repository r = Repository.open(repo(), OpenOptions.defaults().withPassphrase("correct horse"));
             BackupServer s = BackupServer.start(r, ServerConfig.builder().unixSocket(sock).build(),
                 BackupServer.Options.writable(8 << 20, 4, OverlayFiles.defaultDir(repo()), false))) {
            Path seen = dir.resolve("enc-seen.raw");
            Proc.run("nbdcopy", uri, seen.toString());
            assertEquals(Proc.sha256(snap), Proc.sha256(seen));
            Proc.run("qemu-io", "-f", "raw", "-c", "write -P 0x77 1M 128k", uri);
        }
        Path expected = dir.resolve("enc-expected.raw");
        Files.copy(snap, expected);
        QemuImages.io(expected, "raw", "write -P 0x77 1M 128k");
        JsonNode c = Cli.run("commit-overlay", "--repo", repo().toString(), "--passphrase-file", pass.toString(),
            "--export", "vda@" + id, "--json").ok().json();
        assertEquals(2, c.get("chunks").asLong(), c.toString());
        Path out = dir.resolve("enc-restored.raw");
        Cli.run("restore", "--repo", repo().toString(), "--passphrase-file", pass.toString(), "--disk", "vda",
            "--backup", c.get("backupId").asText(), "--to", out.toString()).ok();
        assertEquals(Proc.sha256(expected), Proc.sha256(out));
    }
}
