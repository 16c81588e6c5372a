package io.jbackup.libvirt;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DomainXmlTest {
    private static final String XML = """
        <domain type='kvm'>
          <name>web1</name>
          <uuid>0b3f7c1e-8a4e-4d4b-9d8a-1f2e3d4c5b6a</uuid>
          <os><type arch='x86_64' machine='q35'>hvm</type>
            <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>
            <nvram template='/usr/share/OVMF/OVMF_VARS.fd'>/var/lib/libvirt/qemu/nvram/web1_VARS.fd</nvram></os>
          <devices>
            <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
              <source file='/images/web1 &amp; co.qcow2'/><backingStore/><target dev='vda' bus='virtio'/></disk>
            <disk type='block' device='disk'><driver name='qemu' type='raw'/>
              <source dev='/dev/vg/web1-data'/><target dev='vdb' bus='virtio'/></disk>
            <disk type='network' device='disk'><driver name='qemu' type='raw'/>
              <source protocol='rbd' name='pool/img'/><target dev='vdc' bus='virtio'/></disk>
            <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>
              <source file='/iso/install.iso'/><target dev='sda' bus='sata'/><readonly/></disk>
            <interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='default'/></interface>
          </devices>
        </domain>
        """;

    @Test
    void disksAndWhyTheyCannotBeBackedUp() throws Exception {
        DomainXml d = DomainXml.parse(XML);
        assertEquals("web1", d.name());
        assertEquals("/var/lib/libvirt/qemu/nvram/web1_VARS.fd", d.nvram());
        List<DomainXml.Disk> disks = d.disks();
        assertEquals(List.of("vda", "vdb", "vdc", "sda"), disks.stream().map(DomainXml.Disk::target).toList());
        assertEquals("/images/web1 & co.qcow2", disks.get(0).source());
        assertTrue(disks.get(0).unsupported().isEmpty());
        assertTrue(disks.get(1).unsupported().orElseThrow().contains("raw image"), disks.get(1).toString());
        assertTrue(disks.get(2).unsupported().orElseThrow().contains("network disk"));
        assertTrue(disks.get(3).unsupported().orElseThrow().contains("cdrom"));
        assertTrue(disks.get(3).readOnly());
    }

    @Test
    void restoredDefinitionPointsAtTheFilesWithANewIdentity() throws Exception {
        DomainXml d = DomainXml.parse(XML);
        String text = d.restored(Map.of("vda", new DomainXml.RestoredDisk("/restore/vda.qcow2", "qcow2")), "web1-r",
            "/restore/web1-r_VARS.fd");
        DomainXml r = DomainXml.parse(text);
        assertEquals("web1-r", r.name());
        assertNull(r.uuid(), "libvirt makes a new UUID");
        assertFalse(text.contains("52:54:00:aa:bb:cc"), "libvirt makes a new MAC: " + text);
        assertEquals("/restore/web1-r_VARS.fd", r.nvram());
        List<DomainXml.Disk> disks = r.disks();
        assertEquals(List.of("vda", "sda"), disks.stream().map(DomainXml.Disk::target).toList(),
            "disks without a backup are dropped; the cdrom keeps its drive");
        assertEquals("/restore/vda.qcow2", disks.get(0).source());
        assertEquals("qcow2", disks.get(0).format());
        assertNull(disks.get(1).source(), "no medium");
        assertFalse(text.contains("backingStore"), text);
        // without a new name the identity stays
        assertEquals("0b3f7c1e-8a4e-4d4b-9d8a-1f2e3d4c5b6a",
            DomainXml.parse(d.restored(Map.of(), null, null)).uuid());
    }

    @Test
    void instantRecoveryDisksAreNbdSources() throws Exception {
        String text = DomainXml.parse(XML).restored(Map.of("vda",
            DomainXml.RestoredDisk.nbd("/run/jb.sock", "vda@20261206-185017-52bffc")), "web1-ir", null);
        DomainXml.Disk vda = DomainXml.parse(text).disks().get(0);
        assertEquals("network", vda.type());
        assertEquals("vda@20261206-185017-52bffc", vda.source());
        assertTrue(text.contains("socket=\"/run/jb.sock\""), text);
    }

    @Test
    void hostileOrForeignDocumentsAreRefused() {
        assertThrows(LibvirtException.class, () -> DomainXml.parse("<!DOCTYPE d [<!ENTITY x SYSTEM "
            + "'file:///etc/passwd'>]><domain><name>&x;</name></domain>"));
        assertThrows(LibvirtException.class, () -> DomainXml.parse("<domaincheckpoint/>"));
        assertThrows(LibvirtException.class, () -> DomainXml.parse("<domain><name>x</name>"));
    }

    @Test
    void pullBackupDocuments() throws Exception {
        String b = PullBackupXml.backup(Path.of("/tmp/d/nbd.sock"), Path.of("/tmp/d"), List.of(
            new PullBackupXml.Disk("vda", "jbackup-1234abcd-x"), new PullBackupXml.Disk("vdc", null)), List.of("sda"));
        assertEquals("/tmp/d/nbd.sock", DomainXml.backupSocket(b));
        assertTrue(b.contains("backupmode=\"incremental\"") && b.contains("incremental=\"jbackup-1234abcd-x\""), b);
        assertTrue(b.contains("<disk backup=\"no\" name=\"sda\"/>"), b);
        assertTrue(b.contains("/tmp/d/vdc.scratch.qcow2"), b);
        String c = PullBackupXml.checkpoint("cp<1>", "jbackup repository r", List.of("vda"), List.of("sda"));
        assertTrue(c.contains("<name>cp&lt;1&gt;</name>"), c);
        assertTrue(c.contains("checkpoint=\"bitmap\"") && c.contains("checkpoint=\"no\""), c);
        assertEquals("backup-vda", PullBackupXml.bitmapOf("vda"));
    }

    /** {@code checkpoint-dumpxml --size}: a bitmap disk without a size has a missing or inconsistent bitmap. */
    @Test
    void checkpointDisksWithAnIntactBitmapAreThoseLibvirtSized() throws Exception {
        String xml = """
            <domaincheckpoint><name>cp1</name><disks>
              <disk name='vda' checkpoint='bitmap' bitmap='cp1' size='1048576'/>
              <disk name='vdb' checkpoint='bitmap' bitmap='cp1'/>
              <disk name='vdc' checkpoint='no'/>
              <disk name='vdd' checkpoint='bitmap' bitmap='cp1' size='0'/>
            </disks></domaincheckpoint>
            """;
        assertEquals(java.util.Set.of("vda", "vdd"), DomainXml.checkpointDisksWithSize(xml));
        assertEquals(java.util.Set.of(), DomainXml.checkpointDisksWithSize("<domaincheckpoint><name>x</name>"
            + "</domaincheckpoint>"));
    }
}
