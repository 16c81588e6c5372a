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
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --via nbd}: the backup of an ext4 filesystem on the whole disk reaches the kernel through its nbd device
 * (connected read-only by nbd-client or qemu-nbd) instead of nbdfuse. Where the kernel has no nbd devices, the
 * mount is refused with what is missing, and the test of the path itself is skipped saying so.
 */
class NbdMountTest {
    private static final Path NBD0 = Path.of("/dev/nbd0");

    @TempDir
    static Path dir;
    static Path repo;
    static Path src;

    @BeforeAll
    static void build() throws IOException {
        TestRepos.requireRootAnd("losetup", "mkfs.ext4", "qemu-nbd");
        src = MountTest.tree(dir.resolve("src"), true);
        repo = TestRepos.backUpExt4(dir, src, "16M");
    }

    @AfterAll
    static void noLeftovers() throws IOException {
        if (repo == null) {
            return;
        }
        MountTest.assertNothingOfOursUnder(dir);
        String loops = Proc.run("losetup", "-a");
        assertFalse(loops.contains("(/dev/nbd"), "a loop device is left on an nbd device: " + loops);
    }

    @Test
    void viaNbdWithoutTheKernelsNbdDevicesIsRefusedNamingWhatIsMissing() throws IOException {
        Assumptions.assumeFalse(Files.exists(NBD0), "this host has kernel nbd devices (/dev/nbd0)");
        Cli.Result r = Cli.run("files", "ls", "--repo", repo.toString(), "--disk", "vda", "--via", "nbd", "/");
        assertEquals(4, r.exitCode(), r.stdout() + r.stderr());
        assertTrue(r.stderr().contains("--via nbd: the kernel's nbd module is not loaded (/dev/nbd0 is missing: "
            + "modprobe nbd); or try --via fuse"), r.stderr());
        MountTest.assertNothingOfOursUnder(Path.of("/run/jbackup/files"));
    }

    @Test
    void mountsThroughTheKernelNbdDeviceAndEveryCleanUpDisconnectsIt() throws Exception {
        Assumptions.assumeTrue(Files.exists(NBD0), "the nbd path is not tested on this host: /dev/nbd0 is missing "
            + "(the kernel's nbd module is not loaded; modprobe nbd where the host allows it)");
        Path mp = dir.resolve("mnt");
        String device;
        try (JBackupProcess p = MountTest.mount(repo, dir, mp, "mount-nbd", "--disk", "vda", "--via", "nbd")) {
            Trees.assertSame(src, mp.resolve("disk"), Trees.Depth.FULL);
            assertTrue(p.stderr().contains("the backup reaches the kernel through: kernel nbd device connected "
                + "read-only by"), "-v says which path: " + p.stderr());
            Matcher m = Pattern.compile("on kernel nbd device (/dev/nbd\\d+)").matcher(p.stderr());
            assertTrue(m.find(), p.stderr());
            device = m.group(1);
            assertTrue(NbdDevices.clientPid(device) > 0, device + " is connected");
            Proc.Result w = Proc.exec(java.time.Duration.ofSeconds(10), "touch", mp.resolve("disk/new").toString());
            assertTrue(w.exitCode() != 0, "read-only: " + w);
            p.kill(); // SIGKILL: the device, its loop device and the mount stay
        }
        Cli.run("umount", mp.toString()).ok();
        assertEquals(0, NbdDevices.clientPid(device), "umount disconnects " + device);
        MountTest.assertNothingOfOursUnder(mp);

        try (JBackupProcess p = MountTest.mount(repo, dir, mp, "mount-nbd-term", "--disk", "vda", "--via", "nbd")) {
            Matcher m = Pattern.compile("on kernel nbd device (/dev/nbd\\d+)").matcher(p.stderr());
            assertTrue(m.find(), p.stderr());
            device = m.group(1);
            p.process.destroy(); // SIGTERM
            assertEquals(0, p.await(60), p.stderr());
        }
        assertEquals(0, NbdDevices.clientPid(device), "SIGTERM disconnects " + device);
        assertFalse(Proc.run("losetup", "-a").contains("(" + device + ")"), "no loop device on " + device);
        MountTest.assertNothingOfOursUnder(mp);
    }
}
