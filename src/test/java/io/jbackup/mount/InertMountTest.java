package io.jbackup.mount;

import io.jbackup.testutil.Cli;
import io.jbackup.testutil.JBackupProcess;
import io.jbackup.testutil.Proc;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A guest's device nodes and setuid programs stay inert under {@code jbackup mount}: a guest's root could otherwise
 * leave a world-writable node of this host's memory or disks, or a setuid shell, for any local user who can reach the
 * mount point. The backup of an ext4 filesystem holding a node of {@code /dev/zero} (char 1:5, mode 0666) and a
 * setuid file; real mount, nbdfuse and losetup; runs as root.
 */
class InertMountTest {
    @TempDir
    static Path dir;
    static Path repo;

    @BeforeAll
    static void build() throws IOException {
        TestRepos.requireRootAnd("nbdfuse", "losetup", "mkfs.ext4", "mknod");
        Path src = Files.createDirectories(dir.resolve("src"));
        Proc.run("mknod", "-m", "0666", src.resolve("zero").toString(), "c", "1", "5");
        Files.writeString(src.resolve("suid"), "#!/bin/sh\nid -u\n");
        Proc.run("chmod", "4755", src.resolve("suid").toString());
        repo = TestRepos.backUpExt4(dir, src, "8M");
    }

    @Test
    void theGuestsDeviceNodesAndSetuidFilesAreInert() throws Exception {
        Path mp = dir.resolve("mnt");
        try (JBackupProcess p = MountTest.mount(repo, dir, mp, "mount", "--disk", "vda")) {
            Path zero = mp.resolve("disk/zero");
            assertTrue(Files.exists(zero), "the node is listed: " + p.stdout());
            assertThrows(AccessDeniedException.class, () -> Files.newInputStream(zero).close(),
                "a device node of the guest opens no device of this host");
            String line = Files.readAllLines(Path.of("/proc/self/mountinfo")).stream()
                .filter(l -> l.contains(" " + mp.resolve("disk") + " ")).findFirst().orElseThrow();
            assertTrue(line.contains("nosuid") && line.contains("nodev"), line);
        } finally {
            Cli.run("umount", mp.toString());
        }
        MountTest.assertNothingOfOursUnder(mp);
        assertEquals(2, Cli.run("umount", mp.toString()).exitCode(), "nothing is mounted any more");
    }
}
