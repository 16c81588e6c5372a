package io.jbackup.mount;

import io.jbackup.testutil.Cli;
import io.jbackup.testutil.JBackupProcess;
import io.jbackup.testutil.Proc;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code jbackup mount} of an MBR disk (sfdisk, label dos): an ext4 primary partition, and an NTFS filesystem
 * (mkntfs, filled through ntfs-3g) in a logical partition of the extended one, mounted with {@code ntfs-3g -o ro}.
 * The extended partition itself is no filesystem. Both filesystems compare file by file with their sources.
 */
class MbrNtfsMountTest {
    static final long MIB = 1 << 20;

    @TempDir
    static Path dir;
    static Path repo;
    static Path ext4Src;
    static Path ntfsSrc;

    @BeforeAll
    static void build() throws IOException {
        Assumptions.assumeTrue("root".equals(System.getProperty("user.name")), "mount needs root");
        for (String t : java.util.List.of("nbdfuse", "sfdisk", "losetup", "mkfs.ext4")) {
            Proc.requireTool(t);
        }
        Assumptions.assumeTrue(Proc.onPath("mkntfs") && Proc.onPath("ntfs-3g"),
            "NTFS needs the Debian package ntfs-3g (mkntfs, ntfs-3g); .ci/install-deps installs it");
        ext4Src = MountTest.tree(dir.resolve("ext4-src"), true);
        ntfsSrc = MountTest.tree(dir.resolve("ntfs-src"), false);
        Path p1 = dir.resolve("p1.img");
        Proc.run("mkfs.ext4", "-q", "-b", "4096", "-E", "root_owner=0:0", "-d", ext4Src.toString(), p1.toString(),
            "16M");
        Path p5 = dir.resolve("p5.img");
        Proc.run("truncate", "-s", "24M", p5.toString());
        Proc.run("mkntfs", "-q", "-F", "-f", "-L", "data", p5.toString());
        Path m = Files.createDirectories(dir.resolve("ntfs-fill"));
        Proc.run("ntfs-3g", p5.toString(), m.toString());
        try {
            Proc.run("cp", "-r", "--preserve=timestamps", ntfsSrc + "/.", m.toString());
        } finally {
            Proc.run("umount", m.toString());
        }
        Path disk = dir.resolve("mbr.raw");
        Proc.run("truncate", "-s", "48M", disk.toString());
        // 1: ext4 at 1 MiB (16 MiB); 2: extended from 18 MiB; 5: logical NTFS (type 7) at 19 MiB (24 MiB)
        Proc.exec(java.time.Duration.ofSeconds(30), "bash", "-c", "printf 'label: dos\\nstart=2048, size=32768, "
            + "type=83\\nstart=36864, size=61440, type=5\\nstart=38912, size=49152, type=7\\n' | sfdisk -q " + disk)
            .requireSuccess(java.util.List.of("sfdisk"));
        MountTest.place(p1, disk, MIB);
        MountTest.place(p5, disk, 19 * MIB);
        repo = TestRepos.backUp(dir, disk);
    }

    @AfterAll
    static void noLeftovers() throws IOException {
        if (repo != null) {
            MountTest.assertNothingOfOursUnder(dir);
        }
    }

    @Test
    void mbrPrimaryAndLogicalPartitionsMountWithNtfsThroughNtfs3g() throws Exception {
        Path mp = dir.resolve("mnt");
        try (JBackupProcess p = MountTest.mount(repo, dir, mp, "mount-mbr", "--disk", "vda")) {
            Trees.assertSame(ext4Src, mp.resolve("1"), Trees.Depth.FULL);
            Trees.assertSame(ntfsSrc, mp.resolve("5"), Trees.Depth.CONTENT);
            String out = p.stdout();
            assertTrue(out.contains("  ntfs  "), out);
            assertTrue(p.stderr().contains("ntfs-3g -o ro"), "-v names how NTFS is mounted: " + p.stderr());
            assertFalse(Files.exists(mp.resolve("2")), "the extended partition is no filesystem: " + out);
            Proc.Result w = Proc.exec(java.time.Duration.ofSeconds(10), "touch", mp.resolve("5/NEW").toString());
            assertTrue(w.exitCode() != 0, "read-only: " + w);
            Cli.run("umount", mp.toString()).ok();
            assertEquals(0, p.await(60), p.stderr());
        }
        MountTest.assertNothingOfOursUnder(mp);
    }
}
