package io.jbackup.faults;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.JBackupProcess;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Fault: the repository's file system fills up during a backup. The repository lives on a tmpfs of 24 MiB
 * ({@code mount -t tmpfs -o size=24m}, as root, which CI is); a filler file takes all but a little of it, and the
 * backup CLI (a child JVM) must store more than fits. Where mounting is not allowed, the child runs under
 * {@code ulimit -f} instead (the JVM ignores SIGXFSZ, so writes past the limit fail with EFBIG); the test prints
 * which one ran. Expected: exit code 5 (repository error) and a message that names the full file system and the way
 * out (free space, then {@code jbackup gc}); verify passes and the earlier backup restores bit-exact; after the
 * filler is deleted, gc reclaims what the failed backup left, and the next backup succeeds bit-exact. The catalog
 * (SQLite) meeting a full disk is checked the same way.
 */
@Tag("reliability")
class DiskFullFaultTest {
    static final long SEED = Long.getLong("jbackup.faults.seed", 0x5EED_0003L);

    @TempDir
    Path dir;
    Path mount;

    @AfterEach
    void unmount() {
        if (mount != null) {
            Proc.exec(Duration.ofSeconds(30), "umount", "-l", mount.toString());
        }
    }

    /**
     * Mounts a tmpfs of {@code size} at {@code dir/fs}; false when mounting is not allowed here (or
     * {@code -Djbackup.faults.noMount=true} asks for the {@code ulimit -f} path).
     */
    private boolean mountTmpfs(String size) throws IOException {
        if (Boolean.getBoolean("jbackup.faults.noMount")) { // to exercise the ulimit -f path where mount works
            System.out.println("  -Djbackup.faults.noMount: using ulimit -f");
            return false;
        }
        Path m = Files.createDirectories(dir.resolve("fs"));
        Proc.Result res = Proc.exec(Duration.ofSeconds(30), "mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs",
            m.toString());
        if (res.exitCode() != 0) {
            System.out.println("  mount -t tmpfs failed (" + res.stderr().trim() + "); using ulimit -f instead");
            return false;
        }
        mount = m;
        return true;
    }

    @Test
    void fullFileSystemFailsCleanlyAndGcReclaimsTheLeftovers() throws Exception {
        System.out.printf("DiskFullFaultTest: seed %d (replay with -Djbackup.faults.seed=%d)%n", SEED, SEED);
        Random rnd = new Random(SEED);
        boolean tmpfs = mountTmpfs("24m");
        System.out.println("  repository file system: " + (tmpfs ? "tmpfs of 24 MiB (mount -t tmpfs -o size=24m)"
            : "ulimit -f (file size limit)"));
        Path repo = (tmpfs ? mount : dir).resolve("repo");
        String r = repo.toString();
        // under ulimit -f every file counts, including the native libraries that sqlite-jdbc and zstd-jni extract at
        // start (~1 MiB each): the limit is 2 MiB, and packs of 32 MiB are what reaches it
        Cli.run("init", "--repo", r, "--chunk-size", "64K", "--pack-size", tmpfs ? "1M" : "32M").ok();
        FaultImage img = new FaultImage(dir, 8 << 20, 3 << 20, rnd);

        // a backup that fits
        String sha1 = Proc.sha256(img.snapshot(dir.resolve("one.raw")));
        String first;
        try (Proc.Background src = img.serve()) {
            first = Cli.run("full", "--repo", r, "--disk", "vda", "--source", QemuImages.uriOf(src), "--json").ok()
                .json().get("disks").get(0).get("backupId").asText();
        }
        // 4 MiB of new data, with about 2 MiB of room left
        img.write(3 << 20, 4 << 20);
        String sha2 = Proc.sha256(img.snapshot(dir.resolve("two.raw")));
        Path filler = tmpfs ? fill(mount, 2 << 20) : null;

        JBackupProcess p;
        try (Proc.Background src = img.serve()) {
            p = tmpfs ? JBackupProcess.start(dir, "full-disk", Map.of(), "full", "--repo", r, "--disk", "vda",
                "--source", QemuImages.uriOf(src))
                : JBackupProcess.startLimited(dir, "full-disk", 2048, "full", "--repo", r, "--disk", "vda",
                "--source", QemuImages.uriOf(src));
            int code = p.await(120);
            System.out.println("  backup on a full file system: exit " + code + ": " + p.stderr().trim());
            assertEquals(5, code, "repository error: " + p.stderr());
        }
        String err = p.stderr();
        assertTrue(err.contains(tmpfs ? "is full" : "file size limit"), err);
        assertTrue(err.contains("jbackup gc"), "names the way out: " + err);
        assertTrue(!err.contains("looks like a bug"), err);

        // consistent: nothing partial listed, verify passes, the earlier backup restores bit-exact
        JsonNode list = Cli.run("list", "--repo", r, "--json").ok().json();
        assertEquals(1, list.size(), list.toString());
        assertEquals(first, list.get(0).get("id").asText());
        Cli.run("verify", "--repo", r).ok();
        assertEquals(sha1, restoreSha(r, first));

        // the catalog meets a full disk: same kind of error
        if (tmpfs) {
            Path more = fill(mount, 0);
            Cli.Result c = Cli.run("protect", "--repo", r, first, "--reason", "catalog on a full disk");
            System.out.println("  catalog write on a full file system: exit " + c.exitCode() + ": " + c.stderr().trim());
            assertEquals(5, c.exitCode(), c.stderr());
            assertTrue(c.stderr().contains("is full") && c.stderr().contains("free space"), c.stderr());
            Files.delete(more);
        }

        // free space; gc reclaims the failed backup's packs; the next backup succeeds
        if (filler != null) {
            Files.delete(filler);
        }
        JsonNode gc = Cli.run("gc", "--repo", r, "--json").ok().json();
        System.out.println("  gc after freeing space: " + gc);
        if (tmpfs) {
            // 1 MiB packs: the failed backup sealed some before the disk filled; nothing uses them now
            assertTrue(gc.get("bytesReclaimed").asLong() > 0, gc.toString());
        } else {
            // one 32 MiB pack being written when the limit hit: the writer deleted it itself, nothing is left over
            assertEquals(gc.get("packBytesBefore").asLong(), gc.get("packBytesAfter").asLong(), gc.toString());
        }
        assertEquals(List.of(), tmpFiles(repo), "tmp/ is empty");
        try (Repository opened = Repository.open(repo, OpenOptions.defaults());
             Stream<Path> packs = Files.walk(repo.resolve("packs"))) {
            assertEquals(opened.totals().packs(), packs.filter(f -> f.toString().endsWith(".pack")).count(),
                "every pack file left is in the catalog (gc registers and reclaims orphans)");
        }
        String second;
        try (Proc.Background src = img.serve()) {
            second = Cli.run("full", "--repo", r, "--disk", "vda", "--source", QemuImages.uriOf(src), "--json").ok()
                .json().get("disks").get(0).get("backupId").asText();
        }
        assertEquals(sha2, restoreSha(r, second));
        assertEquals(sha1, restoreSha(r, first));
        Cli.run("verify", "--repo", r).ok();
        System.out.println("DiskFullFaultTest: seed " + SEED + ", " + (tmpfs ? "tmpfs" : "ulimit -f")
            + ": the backup failed with exit 5, backups lost 0");
    }

    /** Writes a filler file so that about {@code leave} bytes stay free on the file system of {@code dir}. */
    private static Path fill(Path dir, long leave) throws IOException {
        Path f = Files.createTempFile(dir, "filler", ".bin");
        byte[] b = new byte[64 << 10];
        try (OutputStream out = Files.newOutputStream(f)) {
            while (Files.getFileStore(dir).getUsableSpace() > leave + b.length) {
                out.write(b);
                out.flush();
            }
        } catch (IOException full) {
            // filled to the last byte
        }
        return f;
    }

    private static List<Path> tmpFiles(Path repo) throws IOException {
        try (Stream<Path> s = Files.walk(repo.resolve("tmp"))) {
            return s.filter(Files::isRegularFile).collect(java.util.stream.Collectors.toCollection(ArrayList::new));
        }
    }

    private String restoreSha(String r, String id) throws IOException {
        Path out = dir.resolve("restore-" + id + ".raw");
        Cli.run("restore", "--repo", r, "--disk", "vda", "--backup", id, "--to", out.toString()).ok();
        String sha = Proc.sha256(out);
        Files.delete(out);
        return sha;
    }
}
