package io.jbackup.mount;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.JBackupProcess;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code jbackup files get} where the copy, not the backup, fails: a target file system that is full or read-only,
 * a copy stopped by SIGTERM; {@code files ls} of a directory over a damaged chunk, and a disk with nothing to mount.
 * An ext4 filesystem on the whole disk (no partition table) with a 2 MiB random file, backed up with 64 KiB chunks;
 * real cp, mount and nbdfuse; runs as root.
 */
class FilesGetTest {
    @TempDir
    static Path dir;
    static Path repo;
    static Path src;

    @BeforeAll
    static void build() throws IOException {
        TestRepos.requireRootAnd("nbdfuse", "losetup", "mkfs.ext4");
        src = MountTest.tree(dir.resolve("src"), true);
        byte[] big = new byte[2 << 20];
        new Random(7).nextBytes(big);
        Files.write(src.resolve("big.bin"), big);
        // whole seconds: mkfs.ext4 -d keeps no fractions
        Files.setLastModifiedTime(src.resolve("big.bin"), FileTime.from(Instant.parse("2024-02-03T04:05:06Z")));
        repo = TestRepos.backUpExt4(dir, src, "16M");
    }

    @AfterAll
    static void noLeftovers() throws IOException {
        if (repo != null) {
            MountTest.assertNothingOfOursUnder(Path.of("/run/jbackup/files"));
        }
    }

    /** A full or read-only target is the target's fault (exit 4), not a damaged backup (3); no half copy stays. */
    @Test
    void aFullOrReadOnlyTargetIsATargetErrorAndNoHalfCopyIsLeft() throws Exception {
        Path small = Files.createDirectories(dir.resolve("small"));
        Proc.run("mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", small.toString());
        try {
            Cli.Result full = Cli.run("files", "get", "--repo", repo.toString(), "--disk", "vda", "--json", "/",
                "--to", small.resolve("all").toString());
            assertEquals(4, full.exitCode(), full.stdout() + full.stderr());
            JsonNode err = full.json().get("error");
            assertEquals("target-error", err.get("code").asText(), full.stdout());
            assertTrue(err.get("message").asText().contains("No space left on device"), full.stdout());
            assertFalse(err.get("message").asText().contains("verify"), "no damage is suspected: " + full.stdout());
            assertFalse(Files.exists(small.resolve("all")), "the half copy is removed");

            Proc.run("mount", "-o", "remount,ro", small.toString());
            Cli.Result ro = Cli.run("files", "get", "--repo", repo.toString(), "--disk", "vda", "/etc/hosts",
                "--to", small.resolve("hosts").toString());
            assertEquals(4, ro.exitCode(), ro.toString());
            assertTrue(ro.stderr().contains("Read-only file system"), ro.stderr());
        } finally {
            Proc.run("umount", small.toString());
        }
        // the same copy to where there is room: everything, as written
        Path out = dir.resolve("all");
        Cli.run("files", "get", "--repo", repo.toString(), "--disk", "vda", "/", "--to", out.toString()).ok();
        Trees.assertSame(src, out, Trees.Depth.FULL);
        // into an existing directory, the root of the filesystem is copied as 'root', a path under its last name
        Path into = Files.createDirectories(dir.resolve("into"));
        Cli.run("files", "get", "--repo", repo.toString(), "--disk", "vda", "/", "--to", into.toString()).ok();
        Trees.assertSame(src, into.resolve("root"), Trees.Depth.FULL);
        Cli.run("files", "get", "--repo", repo.toString(), "--disk", "vda", "/etc", "--to", into.toString()).ok();
        Trees.assertSame(src.resolve("etc"), into.resolve("etc"), Trees.Depth.FULL);
    }

    /**
     * SIGTERM while cp runs: the copy is stopped and its new target removed, the backup unmounted, exit 7. cp is a
     * wrapper (first on PATH) that copies with the real one, then stays, so that the signal finds it running.
     */
    @Test
    void sigtermStopsTheCopyRemovesItAndExitsInterrupted() throws Exception {
        Path bin = Files.createDirectories(dir.resolve("slow-cp"));
        Path started = dir.resolve("cp-started");
        Path cp = bin.resolve("cp");
        Files.writeString(cp, "#!/bin/sh\n/bin/cp \"$@\" || exit\necho $$ > " + started + "\nexec sleep 600\n");
        Files.setPosixFilePermissions(cp, PosixFilePermissions.fromString("rwxr-xr-x"));
        Path out = dir.resolve("stopped");
        try (JBackupProcess p = JBackupProcess.start(dir, "get-term", Map.of("PATH", bin + ":"
            + System.getenv("PATH")), "files", "get", "--repo", repo.toString(), "--disk", "vda", "--json", "/",
            "--to", out.toString())) {
            long deadline = System.nanoTime() + 120_000_000_000L;
            while (!Files.exists(started) || Files.readString(started).isBlank()) {
                assertTrue(p.process.isAlive() && System.nanoTime() < deadline, "cp did not start: " + p.stderr());
                Thread.sleep(20);
            }
            long cpPid = Long.parseLong(Files.readString(started).strip());
            assertTrue(Files.exists(out.resolve("big.bin")), "the copy is under way");
            p.process.destroy(); // SIGTERM
            assertEquals(7, p.await(60), p.stdout() + p.stderr());
            assertEquals("interrupted", p.json().get("error").get("code").asText(), p.stdout());
            assertFalse(ProcessHandle.of(cpPid).map(ProcessHandle::isAlive).orElse(false), "cp is stopped");
        }
        assertFalse(Files.exists(out), "the copy it stopped is removed");
    }

    /** A directory over a damaged chunk: ls names it and exits 3 (partial), as get does; not exit 1, "a bug". */
    @Test
    void lsOfADirectoryOverADamagedChunkNamesItAndIsPartial() throws Exception {
        Path bad = dir.resolve("repo-damaged");
        Proc.run("cp", "-a", repo.toString(), bad.toString());
        long block = Long.parseLong(Proc.run("debugfs", "-R", "bmap /etc 0", dir.resolve("disk.raw").toString())
            .strip());
        String id = Cli.run("list", "--repo", bad.toString(), "--disk", "vda", "--json").ok().json().get(0).get("id")
            .asText();
        TestRepos.damageChunk(bad, id, block * 4096 / (64 * 1024));
        Cli.Result ls = Cli.run("files", "ls", "--repo", bad.toString(), "--disk", "vda", "--json", "/etc");
        assertEquals(3, ls.exitCode(), ls.stdout() + ls.stderr());
        JsonNode j = ls.json();
        assertEquals("partial", j.get("status").asText(), ls.stdout());
        assertEquals("cannot read disk:/etc: Input/output error", j.get("errors").get(0).asText(), ls.stdout());
        Cli.Result text = Cli.run("files", "ls", "--repo", bad.toString(), "--disk", "vda", "/etc");
        assertEquals(3, text.exitCode(), text.toString());
        assertTrue(text.stderr().contains("cannot read disk:/etc: Input/output error")
            && text.stderr().contains("jbackup verify"), text.stderr());
    }

    /** Where files mounts backups nobody else enters: a host user with a guest user's uid could read its files. */
    @Test
    void filesMountsWhereNobodyElseEnters() throws Exception {
        Path work = Path.of("/run/jbackup/files");
        if (Files.isDirectory(work)) {
            Files.setPosixFilePermissions(work, PosixFilePermissions.fromString("rwxr-xr-x")); // as it was made
        }
        Cli.run("files", "ls", "--repo", repo.toString(), "--disk", "vda", "/etc").ok();
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(work)));
    }

    /** Nothing to mount: said as such, not "name one as PARTITION:PATH, e.g. 1:/" of a disk without partitions. */
    @Test
    void aDiskWithNoFilesystemSaysSoWithoutAskingForAPartition() throws Exception {
        Path blank = dir.resolve("blank.raw");
        Proc.run("truncate", "-s", "8M", blank.toString());
        try (Proc.Background s = QemuImages.qemuNbd(dir, blank, "raw", "-r")) {
            Cli.run("full", "--repo", repo.toString(), "--disk", "blank", "--source", QemuImages.uriOf(s)).ok();
        }
        Cli.Result r = Cli.run("files", "ls", "--repo", repo.toString(), "--disk", "blank", "--json", "/etc");

        assertEquals(2, r.exitCode(), r.toString());
        String msg = r.json().get("error").get("message").asText();
        assertTrue(msg.contains("no filesystem of disk blank") && msg.contains("blkid recognises no filesystem"),
            msg);
        assertFalse(msg.contains("1:"), "there is no partition 1 to name: " + msg);
    }
}
