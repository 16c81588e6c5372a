package io.jbackup.mount;

import io.jbackup.engine.ExternalToolException;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** {@link PartitionTable#parse} on what sfdisk 2.38 prints, and {@link MountTable#unescape}. */
class PartitionTableTest {
    @Test
    void gptPartitionsInBytes() throws ExternalToolException {
        String json = """
            {"partitiontable": {"label": "gpt", "device": "disk", "unit": "sectors", "sectorsize": 512,
              "partitions": [
                {"node": "disk1", "start": 2048, "size": 65536, "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"},
                {"node": "disk2", "start": 67584, "size": 65536, "type": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"}]}}
            """;
        assertEquals(List.of(
            new PartitionTable.Partition(1, 1 << 20, 32 << 20, "0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
            new PartitionTable.Partition(2, 33 << 20, 32 << 20, "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")),
            PartitionTable.parse(json));
    }

    @Test
    void mbrExtendedPartitionIsLeftOutItsLogicalOnesKeptAndNumbersComeFromTheNode() throws ExternalToolException {
        String json = """
            {"partitiontable": {"label": "dos", "device": "/run/x/fuse/0/disk0", "unit": "sectors", "sectorsize": 512,
              "partitions": [
                {"node": "/run/x/fuse/0/disk0p1", "start": 2048, "size": 8192, "type": "83"},
                {"node": "/run/x/fuse/0/disk0p2", "start": 10240, "size": 10240, "type": "5"},
                {"node": "/run/x/fuse/0/disk0p5", "start": 12288, "size": 4096, "type": "83"}]}}
            """;
        List<PartitionTable.Partition> p = PartitionTable.parse(json);
        assertEquals(List.of(1, 5), p.stream().map(PartitionTable.Partition::number).toList());
        assertEquals(12288L * 512, p.get(1).offset());
    }

    @Test
    void aTableWithoutPartitionsIsEmptyAndNonsenseIsAnError() throws ExternalToolException {
        // a FAT boot sector on the whole disk reads as an empty MBR
        assertEquals(List.of(),
            PartitionTable.parse("{\"partitiontable\": {\"label\": \"dos\", \"sectorsize\": 512}}"));
        assertThrows(ExternalToolException.class, () -> PartitionTable.parse("not json"));
        assertThrows(ExternalToolException.class, () -> PartitionTable.parse(
            "{\"partitiontable\": {\"partitions\": [{\"node\": \"disk\", \"start\": 1, \"size\": 1}]}}"));
    }

    @Test
    void mountinfoEscapesAreUndone() {
        assertEquals("/mnt/a b\tc\\d", MountTable.unescape("/mnt/a\\040b\\011c\\134d"));
        assertEquals("/plain", MountTable.unescape("/plain"));
        assertEquals("/end\\04", MountTable.unescape("/end\\04"));
    }
}
