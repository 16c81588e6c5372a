package io.jbackup.mount;

import io.jbackup.engine.ExternalToolException;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The lvm2 command lines of read-only activation and the reports they read ({@link Lvm}); no lvm2 runs here. */
class LvmTest {
    private static final String CONFIG = "activation { udev_sync=0 udev_rules=0 monitoring=0 "
        + "read_only_volume_list=[\"vg0\"] } devices { obtain_device_list_from_udev=0 hints=\"none\" } "
        + "backup { backup=0 archive=0 }";

    @Test
    void activationSeesOnlyTheLoopDeviceNeedsNoUdevAndIsReadOnly() {
        assertEquals(List.of("vgchange", "-ay", "--noudevsync", "--ignoremonitoring", "--poll", "n", "--devices",
            "/dev/loop3", "--config", CONFIG, "vg0"), Lvm.activate("vg0", List.of("/dev/loop3"), true));
        assertEquals(List.of("vgchange", "-an", "--noudevsync", "--ignoremonitoring", "--devices",
            "/dev/loop3,/dev/loop4", "--config", CONFIG, "vg0"),
            Lvm.deactivate("vg0", List.of("/dev/loop3", "/dev/loop4"), true));
    }

    @Test
    void withoutTheDevicesOptionAFilterAcceptsOnlyTheLoopDevices() {
        List<String> cmd = Lvm.activate("vg0", List.of("/dev/loop3"), false);
        assertFalse(cmd.contains("--devices"), cmd.toString());
        String filter = "[\"a|^/dev/loop3$|\", \"r|.*|\"]";
        assertEquals("activation { udev_sync=0 udev_rules=0 monitoring=0 read_only_volume_list=[\"vg0\"] } devices {"
            + " obtain_device_list_from_udev=0 hints=\"none\" use_devicesfile=0 filter=" + filter + " global_filter="
            + filter + " } backup { backup=0 archive=0 }", cmd.get(cmd.indexOf("--config") + 1));
    }

    @Test
    void reportsAreReadWithoutLocksOrDeviceMapper() {
        List<String> vgs = Lvm.groups(List.of("/dev/loop3"), true);
        assertEquals(List.of("vgs", "--readonly", "--devices", "/dev/loop3"), vgs.subList(0, 4));
        assertTrue(vgs.get(5).startsWith("activation { udev_sync=0 udev_rules=0 monitoring=0 } devices"), vgs.get(5));
        List<String> lvs = Lvm.volumes(List.of("/dev/loop3"), true);
        assertEquals("vg_name,lv_name,lv_dm_path,lv_attr,lv_size", lvs.get(lvs.size() - 1));
    }

    @Test
    void namesAndDevicesThatLvm2WouldNotAcceptAreRefusedBeforeUse() {
        for (String bad : List.of("", "a b", "vg\"]", "-vg", "..", "x".repeat(128))) {
            assertFalse(Lvm.validName(bad), bad);
            assertThrows(IllegalArgumentException.class, () -> Lvm.activate(bad, List.of("/dev/loop0"), true));
        }
        assertTrue(Lvm.validName("vg_root-1.x+y"));
        assertThrows(IllegalArgumentException.class, () -> Lvm.deactivate("vg", List.of("/dev/loop0|x"), false));
    }

    @Test
    void theDevicesOptionComesWith2_03_12() {
        assertTrue(Lvm.hasDevicesOption("  LVM version:     2.03.16(2) (2022-05-18)\n  Library version: 1.02.185"));
        assertTrue(Lvm.hasDevicesOption("  LVM version:     2.03.12(2) (2021-05-07)"));
        assertFalse(Lvm.hasDevicesOption("  LVM version:     2.03.11(2) (2021-01-08)"));
        assertFalse(Lvm.hasDevicesOption("  LVM version:     2.02.187(2) (2020-03-24)"));
        assertFalse(Lvm.hasDevicesOption(""));
    }

    @Test
    void reportsAsLvm2PrintsThem() throws ExternalToolException {
        // as lvm2 2.03.16 printed them for a two-PV volume group seen through one of its loop devices
        assertEquals(List.of(new Lvm.Group("vgm", "O4aveX-PbuY-xEFq-3Tuz-q9AD-ca5w-dCOQQa", 2, 1)), Lvm.parseGroups("""
              {
                  "report": [
                      {
                          "vg": [
                              {"vg_name":"vgm", "vg_uuid":"O4aveX-PbuY-xEFq-3Tuz-q9AD-ca5w-dCOQQa", "pv_count":"2", \
            "vg_missing_pv_count":"1"}
                          ]
                      }
                  ]
              }"""));
        List<Lvm.Volume> v = Lvm.parseVolumes("{\"report\": [{\"lv\": [{\"vg_name\":\"vg-a\", \"lv_name\":\"my-lv\", "
            + "\"lv_dm_path\":\"/dev/mapper/vg--a-my--lv\", \"lv_attr\":\"-wi-XX----\", \"lv_size\":\"8388608\"}, "
            + "{\"vg_name\":\"vg-a\", \"lv_name\":\"pool\", \"lv_dm_path\":\"/dev/mapper/vg--a-pool\", "
            + "\"lv_attr\":\"twi---tz--\", \"lv_size\":\"4194304\"}]}]}");
        assertEquals(new Lvm.Volume("vg-a", "my-lv", "/dev/mapper/vg--a-my--lv", "-wi-XX----", 8388608), v.get(0));
        assertEquals("vg-a-my-lv", v.get(0).dirName());
        assertEquals("vg--a-my--lv", v.get(0).dmName());
        assertFalse(v.get(0).pool());
        assertTrue(v.get(1).pool());
        assertEquals(List.of("/dev/sda3"), Lvm.physicalVolumesOf("{\"report\": [{\"pv\": [{\"pv_name\":\"/dev/sda3\", "
            + "\"vg_name\":\"vg0\"}, {\"pv_name\":\"/dev/sdb\", \"vg_name\":\"\"}, {\"pv_name\":\"/dev/sdc\", "
            + "\"vg_name\":\"data\"}]}]}", "vg0"));
        assertThrows(ExternalToolException.class, () -> Lvm.parseVolumes("WARNING: no JSON"));
    }
}
