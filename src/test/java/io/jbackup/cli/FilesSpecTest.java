package io.jbackup.cli;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** {@code [PARTITION:]PATH} of {@code files ls|get}: partitions, the whole disk and logical volumes (N/VG-LV). */
class FilesSpecTest {
    private static final List<String> NAMES = List.of("1", "2", "4", "4/vg0-root", "4/vg0-home", "disk");

    private static void split(String spec, String part, String path) {
        assertArrayEquals(new String[] {part, path}, FilesCommands.Base.split(spec, NAMES), spec);
    }

    @Test
    void aPartitionALogicalVolumeOrNone() {
        split("1:/etc", "1", "/etc");
        split("4/vg0-root:/etc/fstab", "4/vg0-root", "/etc/fstab");
        split("4/vg0-home:", "4/vg0-home", "/");
        split("4:/", "4", "/");
        split("disk:home", "disk", "home");
        split("/etc/hosts", null, "/etc/hosts");
        split("/a:b", null, "/a:b");
        split("4/vg0-gone:/x", null, "4/vg0-gone:/x");
        split("", null, "/");
    }

    /** files ls shows setuid, setgid and sticky as ls -l does: a guest's setuid program is not listed as ordinary. */
    @Test
    void modesListAsLsDoes() {
        assertEquals("rwxr-xr-x", FilesCommands.Ls.rwx(0755));
        assertEquals("rwsr-xr-x", FilesCommands.Ls.rwx(04755));
        assertEquals("rwSr--r--", FilesCommands.Ls.rwx(04644));
        assertEquals("rwxr-sr-x", FilesCommands.Ls.rwx(02755));
        assertEquals("rwxrwxrwt", FilesCommands.Ls.rwx(01777));
        assertEquals("rw-rw-rwT", FilesCommands.Ls.rwx(01666));
        assertEquals("---------", FilesCommands.Ls.rwx(0));
    }
}
