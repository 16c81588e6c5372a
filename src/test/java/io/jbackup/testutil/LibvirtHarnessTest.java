package io.jbackup.testutil;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The libvirt harness against the real libvirt: one domain, monitor writes, snapshots, hotplug, a pull backup by hand. */
class LibvirtHarnessTest {
    private static final long MIB = 1 << 20;

    @TempDir
    Path tmp;

    @BeforeAll
    static void libvirt() {
        Libvirt.assumeAvailable();
    }

    @Test
    void domainWritesSnapshotsHotplugAndPullBackup() throws IOException {
        Path dir = Libvirt.shareWithQemu(tmp);
        String name;
        try (Domain dom = Libvirt.domain(dir).disks(32 * MIB, 16 * MIB).cdrom().userInterface("52:54:00:AB:CD:EF")
            .create()) {
            name = dom.name();
            assertTrue(Libvirt.isDefined(name));
            assertEquals("running", dom.state());
            String xml = dom.liveXml();
            assertTrue(xml.contains("<mac address='52:54:00:ab:cd:ef'/>"), xml);
            assertTrue(xml.contains("device='cdrom'"), xml);
            assertEquals("virtio-disk0", dom.deviceId("vda"));
            assertEquals("virtio-disk1", dom.deviceId("vdb"));

            // A guest write lands in the disk; the snapshot (domain paused around it) holds it, and it runs again.
            Path before = dom.snapshot("vdb", dir.resolve("vdb-0.raw"));
            dom.write("vdb", 0x44, 3 * MIB, 128 * 1024);
            Path after = dom.snapshot("vdb", dir.resolve("vdb-1.raw"));
            assertEquals("running", dom.state());
            assertEquals(16 * MIB, Files.size(after));
            assertArrayEquals(filled(0x44, 128 * 1024), read(after, 3 * MIB, 128 * 1024));
            assertArrayEquals(new byte[4096], read(after, 3 * MIB - 4096, 4096));
            assertNotEquals(Libvirt.sha256(before), Libvirt.sha256(after));
            assertEquals(32 * MIB, Files.size(dom.snapshot("vda", dir.resolve("vda-1.raw"))));

            // A failed guest write (past the end) fails the call: qemu-io's "write failed" is found in the QEMU log.
            AssertionError e = assertThrows(AssertionError.class, () -> dom.write("vdb", 0x11, 100 * MIB, 4096));
            assertTrue(e.getMessage().contains("write failed"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> dom.deviceId("vdz"));

            // Write-zeroes and discard go through as well.
            dom.writeZeroes("vdb", 3 * MIB, 64 * 1024);
            dom.discard("vdb", 3 * MIB + 64 * 1024, 64 * 1024);
            Path zeroed = dom.snapshot("vdb", dir.resolve("vdb-2.raw"));
            assertEquals(Libvirt.sha256(before), Libvirt.sha256(zeroed));

            // A disk attached live and persistently, written through its own device.
            dom.attachDisk("vdc", 8 * MIB);
            assertTrue(dom.liveXml().contains("<target dev='vdc' bus='virtio'/>"));
            assertTrue(dom.inactiveXml().contains("<target dev='vdc' bus='virtio'/>"));
            assertEquals("virtio-disk2", dom.deviceId("vdc"));
            dom.write("vdc", 0x5a, 0, 4096);
            dom.suspend();
            assertEquals("paused", dom.state());
            Path vdc = dom.snapshotAsIs("vdc", dir.resolve("vdc.raw"));
            dom.resume();
            assertArrayEquals(filled(0x5a, 4096), read(vdc, 0, 4096));

            // A pull-mode backup by hand: a checkpoint, NBD exports vda and vdb (the cdrom and vdc are left out).
            Path sock = dir.resolve("bk.sock");
            Files.writeString(dir.resolve("cp1.xml"), "<domaincheckpoint><name>cp1</name><disks>"
                + "<disk name='vda' checkpoint='bitmap'/><disk name='vdb' checkpoint='bitmap'/>"
                + "<disk name='vdc' checkpoint='no'/></disks></domaincheckpoint>");
            Files.writeString(dir.resolve("bk1.xml"), "<domainbackup mode='pull'>"
                + "<server transport='unix' socket='" + sock + "'/><disks>"
                + "<disk name='vda' backup='yes' type='file'><scratch file='" + dir.resolve("s-vda.qcow2") + "'/></disk>"
                + "<disk name='vdb' backup='yes' type='file'><scratch file='" + dir.resolve("s-vdb.qcow2") + "'/></disk>"
                + "<disk name='vdc' backup='no'/></disks></domainbackup>");
            Libvirt.virsh("backup-begin", dom.name(), dir.resolve("bk1.xml").toString(),
                dir.resolve("cp1.xml").toString());
            String exports = Proc.run("nbdinfo", "--list", "nbd+unix:///?socket=" + sock);
            assertTrue(exports.contains("export=\"vda\""), exports);
            assertTrue(exports.contains("export=\"vdb\""), exports);
            assertFalse(exports.contains("export=\"vdc\""), exports);
            Libvirt.virsh("domjobabort", dom.name());
            assertEquals(List.of("cp1"), dom.checkpoints());
        }
        assertFalse(Libvirt.isDefined(name), "close() undefines the domain");
        try (var files = Files.list(dir)) {
            assertTrue(files.noneMatch(p -> p.getFileName().toString().endsWith(".qcow2")), "close() deletes the disks");
        }
    }

    private static byte[] filled(int pattern, int length) {
        byte[] b = new byte[length];
        Arrays.fill(b, (byte) pattern);
        return b;
    }

    private static byte[] read(Path file, long offset, int length) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "r")) {
            byte[] b = new byte[length];
            f.seek(offset);
            f.readFully(b);
            return b;
        }
    }
}
