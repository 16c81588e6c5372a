package io.jbackup.mount;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.JBackupProcess;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.S3Proxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code jbackup mount}, {@code umount} and {@code files} on a GPT disk built with sfdisk: an ext4, a vfat, an XFS
 * and a Btrfs partition (and, when lvm2 is installed, an LVM physical volume of volume group jbvg whose logical
 * volume data holds ext4, mounted on 4/jbvg-data where device-mapper works) holding known files (modes, times,
 * symbolic links, a 2 MiB random file), backed up into a repository with 64 KiB chunks. Real tools throughout:
 * nbdfuse, losetup, mount, blkid, lvm2; runs as root.
 */
class MountTest {
    static final long MIB = 1 << 20;
    /** Partition 1 (ext4) starts at 1 MiB: 32 MiB; 2 (vfat): 32 MiB; 3 (XFS): 320 MiB, the smallest it takes. */
    static final long P1 = MIB;
    static final long P2 = 33 * MIB;
    static final long P3 = 65 * MIB;
    /** Partition 4 (12 MiB): an LVM physical volume (VG jbvg, LV data: 8 MiB ext4) when lvm2 is installed. */
    static final long P4 = 385 * MIB;
    /** Partition 5 (64 MiB): Btrfs. */
    static final long P5 = 400 * MIB;
    static boolean lvm;

    @TempDir
    static Path dir;
    static Path repo;
    /** The same disk backed up twice as vda and vdb of VM vm1, one set. */
    static Path vmRepo;
    static String backupId;
    static Path ext4Src;
    static Path fatSrc;
    static Path xfsSrc;
    static Path btrfsSrc;
    static Path lvSrc;
    /** The chunk (64 KiB) in the middle of /big.bin of partition 1. */
    static long bigChunk;
    /** The test disk as a raw image. */
    static Path disk;

    @BeforeAll
    static void build() throws IOException {
        Assumptions.assumeTrue("root".equals(System.getProperty("user.name")), "mount needs root");
        for (String t : List.of("nbdfuse", "sfdisk", "losetup", "mkfs.ext4", "mkfs.vfat", "mcopy", "mkfs.xfs",
            "mkfs.btrfs", "debugfs")) {
            Proc.requireTool(t);
        }
        ext4Src = tree(dir.resolve("ext4-src"), true);
        fatSrc = tree(dir.resolve("fat-src"), false);
        xfsSrc = tree(dir.resolve("xfs-src"), true);
        btrfsSrc = tree(dir.resolve("btrfs-src"), true);
        byte[] big = new byte[(int) (2 * MIB)];
        new Random(16).nextBytes(big);
        Files.write(ext4Src.resolve("big.bin"), big);
        Files.setLastModifiedTime(ext4Src.resolve("big.bin"), FileTime.from(Instant.parse("2024-02-03T04:05:06Z")));
        Files.setLastModifiedTime(ext4Src, FileTime.from(Instant.parse("2024-02-03T04:05:07Z")));

        Path p1 = dir.resolve("p1.img");
        Proc.run("mkfs.ext4", "-q", "-b", "4096", "-E", "root_owner=0:0", "-d", ext4Src.toString(), p1.toString(),
            "32M");
        Path p2 = dir.resolve("p2.img");
        Proc.run("mkfs.vfat", "-C", p2.toString(), Long.toString(32 * 1024));
        List<String> mcopy = new ArrayList<>(List.of("mcopy", "-s", "-m", "-i", p2.toString()));
        try (var s = Files.list(fatSrc)) {
            s.sorted().forEach(p -> mcopy.add(p.toString()));
        }
        mcopy.add("::/");
        Proc.run(mcopy.toArray(String[]::new));
        Path p3 = dir.resolve("p3.img");
        Proc.run("truncate", "-s", "320M", p3.toString());
        Proc.run("mkfs.xfs", "-q", p3.toString());
        Path m = Files.createDirectories(dir.resolve("xfs-fill"));
        Proc.run("mount", "-o", "loop", p3.toString(), m.toString());
        try {
            Proc.run("cp", "-a", xfsSrc + "/.", m.toString());
        } finally {
            Proc.run("umount", m.toString());
        }

        disk = dir.resolve("disk.raw");
        Proc.run("truncate", "-s", "470M", disk.toString());
        Proc.exec(java.time.Duration.ofSeconds(30), "bash", "-c", "printf 'label: gpt\\nstart=2048, size=65536, "
            + "type=L\\nstart=67584, size=65536, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\\nstart=133120, "
            + "size=655360, type=L\\nstart=788480, size=24576, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\\n"
            + "start=819200, size=131072, type=L\\n' | sfdisk -q " + disk).requireSuccess(List.of("sfdisk"));
        place(p1, disk, P1);
        place(p2, disk, P2);
        place(p3, disk, P3);
        Path p5 = dir.resolve("p5.img");
        Proc.run("truncate", "-s", "64M", p5.toString());
        Proc.run("mkfs.btrfs", "-q", "--mixed", "--rootdir", btrfsSrc.toString(), p5.toString());
        place(p5, disk, P5);
        lvm = LvmImages.installed();
        if (lvm) {
            lvSrc = tree(dir.resolve("lv-src"), true);
            Path p4 = dir.resolve("p4.img");
            LvmImages.build(p4, 12, "jbvg", "data", 8, lvSrc, dir);
            place(p4, disk, P4);
        }
        long block = Long.parseLong(Proc.run("debugfs", "-R", "bmap /big.bin 256", p1.toString()).strip());
        bigChunk = (P1 + block * 4096) / (64 * 1024);

        repo = dir.resolve("repo");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K").ok();
        try (Proc.Background s = QemuImages.qemuNbd(dir, disk, "raw", "-r")) {
            backupId = Cli.run("full", "--repo", repo.toString(), "--disk", "vda", "--source", QemuImages.uriOf(s),
                "--json").ok().json().get("disks").get(0).get("backupId").asText();
        }
        vmRepo = dir.resolve("vm-repo");
        Cli.run("init", "--repo", vmRepo.toString()).ok();
        try (Proc.Background s = QemuImages.qemuNbd(dir, disk, "raw", "-r", "-e", "2")) {
            Cli.run("full", "--repo", vmRepo.toString(), "--vm", "vm1", "--source", "vda=" + QemuImages.uriOf(s),
                "--source", "vdb=" + QemuImages.uriOf(s)).ok();
        }
    }

    @AfterAll
    static void noLeftovers() throws IOException {
        if (repo == null) {
            return;
        }
        try {
            assertNothingOfOursUnder(dir);
        } finally { // a failed test leaves no mount on the machine
            for (Path d : MountState.all()) {
                MountState s = MountState.load(d);
                if (s != null && Path.of(s.data().mountpoint).startsWith(dir)) {
                    Cli.run("umount", s.data().mountpoint);
                }
            }
        }
    }

    /** Files with known content, modes and times; FAT gets 8.3 upper-case names only. */
    static Path tree(Path root, boolean unix) throws IOException {
        Files.createDirectories(root.resolve(unix ? "etc" : "ETC"));
        Map<String, String> files = unix
            ? Map.of("etc/hosts", "127.0.0.1 localhost\n", "etc/secret", "only root\n", "run.sh",
            "#!/bin/sh\necho hi\n", "README", "a file at the root\n")
            : Map.of("ETC/HOSTS", "127.0.0.1 localhost\n", "README.TXT", "a file at the root\n", "RUN.SH",
            "#!/bin/sh\necho hi\n");
        int i = 0;
        for (Map.Entry<String, String> e : new java.util.TreeMap<>(files).entrySet()) {
            Path p = root.resolve(e.getKey());
            Files.writeString(p, e.getValue());
            if (unix) {
                Files.setPosixFilePermissions(p, PosixFilePermissions.fromString(e.getKey().endsWith(".sh")
                    ? "rwxr-xr-x" : e.getKey().endsWith("secret") ? "rw-------" : "rw-r--r--"));
            }
            Files.setLastModifiedTime(p, FileTime.from(Instant.parse("2023-0" + (1 + i++) + "-02T03:04:06Z")));
        }
        if (unix) {
            Files.createSymbolicLink(root.resolve("etc/hosts.link"), Path.of("hosts"));
            Files.createSymbolicLink(root.resolve("escape"), Path.of("/etc")); // the host's, when followed
            Proc.run("mkfifo", "-m", "0600", root.resolve("etc/initctl").toString());
            // whole seconds, as the files' (touch: Java's setLastModifiedTime opens the file, which blocks on a FIFO)
            Proc.run("touch", "-d", "2023-06-02T03:04:06Z", root.resolve("etc/initctl").toString());
        }
        Files.setLastModifiedTime(root.resolve(unix ? "etc" : "ETC"), FileTime.from(Instant.parse(
            "2022-06-07T08:09:10Z")));
        return root;
    }

    static void place(Path part, Path disk, long offset) {
        Proc.run("dd", "if=" + part, "of=" + disk, "bs=1M", "seek=" + offset / MIB, "conv=notrunc,sparse",
            "status=none");
    }

    /** Starts {@code jbackup mount ARGS MOUNTPOINT} of {@link #repo} as its own process; see the other. */
    static JBackupProcess mount(Path mountpoint, String name, String... args) throws InterruptedException {
        return mount(repo, dir, mountpoint, name, args);
    }

    /**
     * Starts {@code jbackup mount -v --repo REPO ARGS MOUNTPOINT} as its own process (output in {@code dir}) and
     * waits until it has mounted.
     */
    static JBackupProcess mount(Path repo, Path dir, Path mountpoint, String name, String... args)
        throws InterruptedException {
        return mount(List.of(), repo, dir, mountpoint, name, args);
    }

    /** {@link #mount(Path, Path, Path, String, String...)} with the JVM run by {@code prefix}. */
    static JBackupProcess mount(List<String> prefix, Path repo, Path dir, Path mountpoint, String name,
                                String... args) throws InterruptedException {
        List<String> a = new ArrayList<>(List.of("mount", "-v", "--repo", repo.toString()));
        a.addAll(List.of(args));
        a.add(mountpoint.toString());
        JBackupProcess p = JBackupProcess.start(dir, name, Map.of(), prefix, a.toArray(String[]::new));
        long deadline = System.nanoTime() + 120_000_000_000L;
        while (!p.stdout().contains("jbackup: mounted")) {
            if (!p.process.isAlive() || System.nanoTime() > deadline) {
                p.close();
                throw new AssertionError("jbackup mount did not mount (exit " + (p.process.isAlive() ? "-" :
                    p.process.exitValue()) + ")\nstdout: " + p.stdout() + "\nstderr: " + p.stderr());
            }
            Thread.sleep(50);
        }
        return p;
    }

    /** No loop device, mount, nbdfuse or state directory of a jbackup mount on or under {@code root}. */
    static void assertNothingOfOursUnder(Path root) throws IOException {
        String loops = Proc.run("losetup", "-a");
        String mounts = Files.readString(Path.of("/proc/self/mountinfo"));
        for (Path d : MountState.all()) {
            MountState s = MountState.load(d);
            assertFalse(s != null && Path.of(s.data().mountpoint).startsWith(root), "state left in " + d);
        }
        assertFalse(mounts.contains(" " + root), "mounts left under " + root + ":\n" + mounts);
        for (String line : loops.split("\n")) {
            // a loop device on an nbdfuse file, also one whose FUSE file system went away under it ("(/disk)")
            boolean ours = line.contains("(" + MountState.ROOT) || line.contains("(/disk)");
            assertFalse(ours && !otherMountsAlive(), "loop device left: " + line);
        }
    }

    /** Whether a jbackup mount not made by this test runs (then its loop devices are not ours to judge). */
    private static boolean otherMountsAlive() throws IOException {
        for (Path d : MountState.all()) {
            MountState s = MountState.load(d);
            if (s != null && s.ownerAlive() && !Path.of(s.data().mountpoint).startsWith(dir)) {
                return true;
            }
        }
        return false;
    }

    @Test
    void everyPartitionMountsReadOnlyWithItsFilesAndUmountRemovesAll() throws Exception {
        Path mp = dir.resolve("mnt-a").resolve("vm1"); // neither exists: the mount creates both
        try (JBackupProcess p = mount(mp, "mount-a", "--disk", "vda")) {
            Trees.assertSame(ext4Src, mp.resolve("1"), Trees.Depth.FULL);
            Trees.assertSame(fatSrc, mp.resolve("2"), Trees.Depth.CONTENT);
            Trees.assertSame(xfsSrc, mp.resolve("3"), Trees.Depth.FULL);
            Trees.assertSame(btrfsSrc, mp.resolve("5"), Trees.Depth.FULL);
            String out = p.stdout();
            for (String type : List.of("ext4", "vfat", "xfs", "btrfs")) {
                assertTrue(out.contains("  " + type + "  "), type + " in " + out);
            }
            String dm = LvmVolumes.unavailable();
            if (lvm && dm == null) { // the logical volume of partition 4 (see the test of its own below)
                Trees.assertSame(lvSrc, mp.resolve("4/jbvg-data"), Trees.Depth.FULL);
                assertTrue(out.contains("mounted 5 of 5 filesystems"), out);
            } else {
                // partition 4 is listed with the reason it is not mounted (lvm2 read the volume group and its
                // logical volume through nbdfuse and the loop device); the others mount all the same
                assertTrue(out.contains("vda partition 4  " + (lvm ? "LVM2_member" : "-")) && out.contains(lvm
                    ? "not mounted: LVM physical volume of volume group jbvg (logical volumes: data): not activated: "
                    + dm : "not mounted: blkid recognises no filesystem"), out);
                assertTrue(out.contains("mounted 4 of 5 filesystems"), out);
                assertFalse(Files.exists(mp.resolve("4")), "no directory for what is not mounted");
            }
            assertTrue(p.stderr().contains("nbdfuse") && p.stderr().contains("losetup -r"), "-v names the path: "
                + p.stderr());
            Proc.Result w = Proc.exec(java.time.Duration.ofSeconds(10), "touch", mp.resolve("1/new").toString());
            assertTrue(w.exitCode() != 0 && w.stderr().contains("Read-only"), "read-only: " + w);
            assertEquals("rwx------", java.nio.file.attribute.PosixFilePermissions.toString(
                Files.getPosixFilePermissions(mp)), "a mount point it creates is root's alone");

            Cli.Result u = Cli.run("umount", mp.toString()).ok();
            assertTrue(u.stdout().contains("stopped the mount"), u.stdout());
            assertEquals(0, p.await(60), p.stderr());
        }
        assertNothingOfOursUnder(mp);
        assertFalse(Files.exists(mp), "the mount point it created is removed");
        assertFalse(Files.exists(mp.getParent()), "and the parent it created for it");
    }

    @Test
    void sigtermUnmountsAndUmountCleansUpAfterSigkill() throws Exception {
        Path mp = dir.resolve("mnt-b");
        try (JBackupProcess p = mount(mp, "mount-b", "--disk", "vda", "--backup", backupId)) {
            assertTrue(Files.exists(mp.resolve("1/README")));
            p.process.destroy(); // SIGTERM
            assertEquals(0, p.await(60), p.stderr());
            assertTrue(p.stdout().contains("jbackup: unmounted"), p.stdout());
        }
        assertNothingOfOursUnder(mp);

        try (JBackupProcess p = mount(mp, "mount-c", "--disk", "vda")) {
            assertTrue(Files.exists(mp.resolve("3/README")));
            p.kill(); // SIGKILL: everything stays behind
        }
        assertTrue(Proc.run("losetup", "-a").contains(MountState.dirOf(mp).toString()), "loop devices stay");
        Cli.Result u = Cli.run("umount", "--json", mp.toString()).ok();
        assertEquals("removed the leftovers of a killed mount", u.json().get("action").asText(), u.stdout());
        assertNothingOfOursUnder(mp);
        assertEquals(2, Cli.run("umount", mp.toString()).exitCode(), "nothing is mounted any more");
    }

    @Test
    void ctrlCOnATerminalReachesTheWholeProcessGroupAndEverythingIsStillUnmounted() throws Exception {
        // a terminal's Ctrl-C is SIGINT to the foreground process group: the mount and whatever it started there
        Path mp = dir.resolve("mnt-int");
        List<String> leader = List.of("python3", "-c", "import os, signal, sys; signal.signal(signal.SIGINT, "
            + "signal.SIG_DFL); os.setsid(); os.execvp(sys.argv[1], sys.argv[1:])");
        try (JBackupProcess p = mount(leader, repo, dir, mp, "mount-int", "--disk", "vda")) {
            assertTrue(Files.exists(mp.resolve("1/README")));
            Proc.run("kill", "-INT", "--", "-" + p.process.pid());
            assertEquals(0, p.await(60), p.stderr());
            assertTrue(p.stdout().contains("jbackup: unmounted"), p.stdout());
        }
        assertNothingOfOursUnder(mp);
    }

    @Test
    void logicalVolumesMountAsVgLvReadOnlyAndEveryCleanUpDeactivatesThem() throws Exception {
        Assumptions.assumeTrue(lvm, "lvm2 is not installed (Debian package lvm2)");
        String dm = LvmVolumes.unavailable();
        Assumptions.assumeTrue(dm == null, "LVM activation is not tested on this host: " + dm);
        Path mp = dir.resolve("mnt-lvm");
        try (JBackupProcess p = mount(mp, "mount-lvm", "--disk", "vda")) {
            Trees.assertSame(lvSrc, mp.resolve("4/jbvg-data"), Trees.Depth.FULL);
            assertTrue(p.stderr().contains("volume group jbvg activated read-only")
                && p.stderr().contains("read_only_volume_list"), "-v names the activation: " + p.stderr());
            Proc.Result w = Proc.exec(java.time.Duration.ofSeconds(10), "touch", mp.resolve("4/jbvg-data/new")
                .toString());
            assertTrue(w.exitCode() != 0, "read-only: " + w);
            // while jbvg is active here, a second activation under the same name is refused with the reason
            Cli.Result clash = Cli.run("files", "ls", "--repo", repo.toString(), "--disk", "vda", "4/jbvg-data:/");
            assertEquals(2, clash.exitCode(), clash.stdout() + clash.stderr());
            assertTrue(clash.stderr().contains("already known to this host"), clash.stderr());
            p.kill(); // SIGKILL: the volume group stays active
        }
        assertTrue(dmActive("jbvg-data"), "the killed mount leaves its logical volume active");
        Cli.run("umount", mp.toString()).ok();
        assertFalse(dmActive("jbvg-data"), "umount deactivates what the killed mount activated");
        assertNothingOfOursUnder(mp);

        JsonNode ls = Cli.run("files", "ls", "--repo", repo.toString(), "--disk", "vda", "--json",
            "4/jbvg-data:/etc").ok().json();
        assertEquals("4/jbvg-data", ls.get("partition").asText());
        assertEquals(3, ls.get("entries").size(), ls.toString());
        assertFalse(dmActive("jbvg-data"), "files deactivates it before it returns");

        try (JBackupProcess p = mount(mp, "mount-lvm-term", "--disk", "vda")) {
            assertTrue(dmActive("jbvg-data"));
            p.process.destroy(); // SIGTERM
            assertEquals(0, p.await(60), p.stderr());
        }
        assertFalse(dmActive("jbvg-data"), "SIGTERM deactivates it");
        assertFalse(Files.exists(Path.of("/dev/jbvg")), "no device links are left");
        assertNothingOfOursUnder(mp);
    }

    private static boolean dmActive(String name) {
        return Proc.exec(java.time.Duration.ofSeconds(10), "dmsetup", "info", name).exitCode() == 0;
    }

    /** A backup with no filesystem at all: an error naming why, nothing left running or mounted. */
    @Test
    void aBackupWithNothingMountableFailsAndLeavesNoMountRunning() throws Exception {
        Path blank = dir.resolve("blank.raw");
        Proc.run("truncate", "-s", "8M", blank.toString());
        Path r = dir.resolve("blank-repo");
        Cli.run("init", "--repo", r.toString()).ok();
        try (Proc.Background s = QemuImages.qemuNbd(dir, blank, "raw", "-r")) {
            Cli.run("full", "--repo", r.toString(), "--disk", "blank", "--source", QemuImages.uriOf(s)).ok();
        }
        Path mp = dir.resolve("mnt-blank");
        try (JBackupProcess p = JBackupProcess.start(dir, "mount-blank", Map.of(), "mount", "--repo", r.toString(),
            "--disk", "blank", "--daemon", "--json", mp.toString())) {
            assertEquals(2, p.await(120), "stdout: " + p.stdout() + "\nstderr: " + p.stderr());
            // --daemon passes on what the mount process printed: --json's error document alone on stdout
            JsonNode err = p.json();
            assertEquals(2, err.get("exitCode").asInt(), p.stdout());
            String msg = err.get("error").get("message").asText();
            assertTrue(msg.contains("nothing of backup") && msg.contains("no filesystem"), msg);
            assertFalse(p.stdout().contains("\"ok\""), "no success document: " + p.stdout());
            assertTrue(p.stdout().strip().startsWith("{") && p.stdout().strip().endsWith("}"),
                "nothing but the document on stdout: " + p.stdout() + "\nstderr: " + p.stderr());
        }
        assertFalse(Files.exists(mp), "the mount point it created is removed");
        assertNothingOfOursUnder(mp);
        assertEquals(2, Cli.run("umount", mp.toString()).exitCode(), "no mount runs on");
    }

    @Test
    void aVmsSetMountsPerDiskAndDaemonReturnsOnceMounted() throws Exception {
        Path mp = dir.resolve("mnt-vm");
        try (JBackupProcess p = JBackupProcess.start(dir, "mount-vm", Map.of(), "mount", "--repo", vmRepo.toString(),
            "--vm", "vm1", "--daemon", "--json", mp.toString())) {
            assertEquals(0, p.await(120), p.stderr());
            JsonNode j = p.json();
            assertTrue(j.has("pid"), "stdout: " + p.stdout() + "\nstderr: " + p.stderr());
            long pid = j.get("pid").asLong();
            try {
                assertEquals(10, j.get("filesystems").size(), p.stdout());
                for (String d : List.of("vda", "vdb")) {
                    Trees.assertSame(ext4Src, mp.resolve(d).resolve("1"), Trees.Depth.FULL);
                    Trees.assertSame(xfsSrc, mp.resolve(d).resolve("3"), Trees.Depth.FULL);
                    assertEquals("127.0.0.1 localhost\n", Files.readString(mp.resolve(d).resolve("2/ETC/HOSTS")));
                }
                assertTrue(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "the mount runs on");
                // a second --daemon mount on the busy mount point: refused, not the first one's success reported
                Path log = Path.of(MountState.dirOf(mp) + ".log");
                String logBefore = Files.readString(log);
                try (JBackupProcess again = JBackupProcess.start(dir, "mount-vm-again", Map.of(), "mount", "--repo",
                    vmRepo.toString(), "--vm", "vm1", "--daemon", "--json", mp.toString())) {
                    assertEquals(2, again.await(120), "stdout: " + again.stdout() + "\nstderr: " + again.stderr());
                    JsonNode err = again.json();
                    assertEquals("usage", err.get("error").get("code").asText(), again.stdout());
                    assertTrue(err.get("error").get("message").asText().contains("jbackup umount " + mp),
                        again.stdout());
                    assertFalse(again.stderr().contains("mount runs as process"), again.stderr());
                }
                assertEquals(logBefore, Files.readString(log), "the running mount's log is kept");
                assertTrue(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "the mount runs on");
            } finally {
                Cli.run("umount", mp.toString()).ok();
            }
            assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "and ends at umount");
        }
        assertNothingOfOursUnder(mp);
    }

    @Test
    void filesLsAndGetGiveTheFilesAsWritten() throws Exception {
        JsonNode ls = Cli.run("files", "ls", "--repo", repo.toString(), "--disk", "vda", "--json", "1:/etc").ok()
            .json();
        List<String> names = new ArrayList<>();
        for (JsonNode e : ls.get("entries")) {
            names.add(e.get("name").asText());
            Path src = ext4Src.resolve("etc").resolve(e.get("name").asText());
            if (e.get("type").asText().equals("file")) {
                assertEquals(Files.getLastModifiedTime(src).toInstant(), Instant.parse(e.get("mtime").asText()));
                assertEquals(Files.size(src), e.get("size").asLong());
                assertEquals(String.format("%04o", (Integer) Files.getAttribute(src, "unix:mode") & 07777),
                    e.get("mode").asText());
            }
        }
        assertEquals(List.of("hosts", "hosts.link", "initctl", "secret"), names);
        assertEquals("symlink", ls.get("entries").get(1).get("type").asText());
        assertEquals("fifo", ls.get("entries").get(2).get("type").asText());
        String text = Cli.run("files", "ls", "--repo", repo.toString(), "--disk", "vda", "1:/etc").ok().stdout();
        assertTrue(text.lines().anyMatch(l -> l.startsWith("prw------- ") && l.endsWith(" initctl")), text);

        Path out = Files.createDirectories(dir.resolve("got"));
        JsonNode g = Cli.run("files", "get", "--repo", repo.toString(), "--disk", "vda", "--json", "3:/",
            "--to", out.resolve("xfs").toString()).ok().json();
        assertEquals("ok", g.get("status").asText());
        Trees.assertSame(xfsSrc, out.resolve("xfs"), Trees.Depth.FULL);
        Cli.run("files", "get", "--repo", repo.toString(), "--disk", "vda", "2:/ETC/HOSTS", "--to",
            out.toString()).ok();
        assertEquals("127.0.0.1 localhost\n", Files.readString(out.resolve("HOSTS")));
        Cli.Result again = Cli.run("files", "get", "--repo", repo.toString(), "--disk", "vda", "2:/ETC/HOSTS", "--to",
            out.toString());
        assertEquals(2, again.exitCode(), "nothing is overwritten: " + again.stderr());
        assertTrue(again.stderr().contains("HOSTS exists"), again.stderr());
        Cli.Result noParent = Cli.run("files", "get", "--repo", repo.toString(), "--disk", "vda", "2:/ETC/HOSTS",
            "--to", out.resolve("no/such/hosts").toString());
        assertEquals(2, noParent.exitCode(), "a target directory that does not exist is a usage error, not damage: "
            + noParent);
        assertTrue(noParent.stderr().contains("does not exist; create it first"), noParent.stderr());
        assertFalse(Files.exists(out.resolve("no")));
        Cli.Result out1 = Cli.run("files", "get", "--repo", repo.toString(), "--disk", "vda", "1:/escape/hostname",
            "--to", out.resolve("hostname").toString());
        assertEquals(2, out1.exitCode(), "a link out of the filesystem is not followed: " + out1.stderr());
        assertTrue(out1.stderr().contains("leads out of the backup's filesystem"), out1.stderr());
        assertFalse(Files.exists(out.resolve("hostname")), "nothing of the host is copied");
        Cli.Result noPart = Cli.run("files", "ls", "--repo", repo.toString(), "--disk", "vda", "7:/");
        assertEquals(2, noPart.exitCode(), noPart.toString());
        assertTrue(noPart.stderr().contains("has no partition 7; it has [1 (ext4"), noPart.stderr());
        Cli.Result which = Cli.run("files", "ls", "--repo", repo.toString(), "--disk", "vda", "/etc");
        assertEquals(2, which.exitCode(), "three filesystems: the partition must be named");
        assertTrue(which.stderr().contains("1:/etc"), which.stderr());
        assertNothingOfOursUnder(Path.of("/run/jbackup/files"));
    }

    @Test
    void anEncryptedS3RepositoryMountsToo() throws Exception {
        try (S3Proxy s3 = S3Proxy.start(Files.createDirectories(dir.resolve("s3"))).withDefaultCredentials()) {
            s3.createBucket("mount");
            Path pass = Files.writeString(dir.resolve("pass"), "mount test passphrase\n");
            List<String> r = List.of("--repo", "s3://mount/r", "--s3-endpoint", s3.endpoint().toString(),
                "--s3-region", "us-east-1", "--cache-dir", dir.resolve("s3-cache").toString(), "--passphrase-file",
                pass.toString());
            run(r, "init", "--chunk-size", "64K", "--encryption", "aes-256-gcm").ok();
            try (Proc.Background s = QemuImages.qemuNbd(dir, disk, "raw", "-r")) {
                run(r, "full", "--disk", "vda", "--source", QemuImages.uriOf(s)).ok();
            }
            Path out = dir.resolve("got-s3");
            JsonNode g = run(r, "files", "get", "--disk", "vda", "--json", "1:/", "--to", out.toString()).ok().json();
            assertEquals("ok", g.get("status").asText());
            Trees.assertSame(ext4Src, out, Trees.Depth.CONTENT);
        }
        assertNothingOfOursUnder(Path.of("/run/jbackup/files"));
    }

    private static Cli.Result run(List<String> repoArgs, String... args) {
        List<String> a = new ArrayList<>(List.of(args));
        a.addAll(repoArgs);
        return Cli.run(a.toArray(String[]::new));
    }

    @Test
    void aDamagedChunkUnderAFileIsEioTheRestReadsAndVerifyNamesTheBackup() throws Exception {
        Path bad = dir.resolve("repo-damaged");
        Proc.run("cp", "-a", repo.toString(), bad.toString());
        TestRepos.damageChunk(bad, backupId, bigChunk);
        Path out = Files.createDirectories(dir.resolve("got-damaged"));
        Cli.Result g = Cli.run("files", "get", "--repo", bad.toString(), "--disk", "vda", "--json", "1:/",
            "--to", out.resolve("all").toString());
        assertEquals(3, g.exitCode(), g.stdout() + g.stderr());
        JsonNode j = g.json();
        assertEquals("partial", j.get("status").asText());
        assertEquals(1, j.get("errors").size(), j.toString());
        assertTrue(j.get("errors").get(0).asText().contains("big.bin")
            && j.get("errors").get(0).asText().contains("Input/output error"), j.toString());
        for (String f : List.of("README", "run.sh", "etc/hosts", "etc/secret")) {
            assertEquals(Files.readString(ext4Src.resolve(f)), Files.readString(out.resolve("all").resolve(f)), f);
        }
        Cli.Result v = Cli.run("verify", "--repo", bad.toString(), "--json");
        assertEquals(6, v.exitCode(), v.stdout());
        assertTrue(v.stdout().contains(backupId), v.stdout());
        assertNothingOfOursUnder(Path.of("/run/jbackup/files"));
    }
}
