package io.jbackup.qmp;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Device resolution against query-block replies as QEMU 7.2 gives them (qemu-system is not installed here). */
class BlockNodesTest {
    /** A libvirt-style VM (-blockdev, no drive ids), a legacy -drive disk, and an empty CD-ROM. */
    private static final String QUERY_BLOCK = """
        [{"device": "", "qdev": "/machine/peripheral/virtio-disk0/virtio-backend",
          "inserted": {"node-name": "libvirt-1-format", "drv": "qcow2"}, "type": "unknown"},
         {"device": "drive-virtio-disk1", "qdev": "/machine/peripheral-anon/device[1]/virtio-backend",
          "inserted": {"node-name": "#block123", "drv": "raw"}},
         {"device": "ide2-cd0", "qdev": "ide2-cd0", "tray_open": false}]""";

    @TempDir
    Path dir;

    @Test
    void devicesResolveByQdevIdPathOrDriveId() throws Exception {
        try (FakeQmpServer s = new FakeQmpServer(dir.resolve("q.sock"), FakeQmpServer.GREETING,
            cmd -> FakeQmpServer.reply(cmd, QUERY_BLOCK));
             QmpClient q = QmpClient.connect(s.socket(), Duration.ofSeconds(5))) {
            assertEquals("libvirt-1-format", BlockNodes.resolveDevice(q, "virtio-disk0"));
            assertEquals("libvirt-1-format", BlockNodes.resolveDevice(q,
                "/machine/peripheral/virtio-disk0/virtio-backend"));
            assertEquals("#block123", BlockNodes.resolveDevice(q, "drive-virtio-disk1"));
            IllegalArgumentException empty = assertThrows(IllegalArgumentException.class,
                () -> BlockNodes.resolveDevice(q, "ide2-cd0"));
            assertTrue(empty.getMessage().contains("no medium"), empty.getMessage());
            IllegalArgumentException none = assertThrows(IllegalArgumentException.class,
                () -> BlockNodes.resolveDevice(q, "vdz"));
            assertTrue(none.getMessage().contains("virtio-disk0 -> libvirt-1-format")
                && none.getMessage().contains("drive-virtio-disk1 -> #block123"), none.getMessage());
        }
    }

    @Test
    void qdevIds() {
        assertEquals("virtio-disk0", BlockNodes.qdevId("/machine/peripheral/virtio-disk0/virtio-backend"));
        assertEquals("sda", BlockNodes.qdevId("sda"));
        assertEquals("/machine/peripheral-anon/device[1]/virtio-backend",
            BlockNodes.qdevId("/machine/peripheral-anon/device[1]/virtio-backend"));
    }
}
