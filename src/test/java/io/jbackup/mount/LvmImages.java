package io.jbackup.mount;

import io.jbackup.testutil.Proc;

import java.nio.file.Path;

/**
 * Builds an LVM physical volume image without device-mapper: {@code pvcreate}, {@code vgcreate} and
 * {@code lvcreate --driverloaded n -an -Zn} (no activation, no zeroing) write only metadata, on a loop device that
 * lvm2 is restricted to ({@code --devices}); the logical volume is then filled by writing an ext4 image
 * ({@code mkfs.ext4 -d}) at its offset, {@code pe_start + first extent * extent size} as {@code pvs} and
 * {@code lvs --segments} report them. No metadata backup is written to the host's /etc/lvm.
 */
final class LvmImages {
    private static final String CONFIG = "backup { backup=0 archive=0 } devices { hints=\"none\" }";

    private LvmImages() {
    }

    /** Whether lvm2's tools are installed. */
    static boolean installed() {
        return Proc.onPath("pvcreate") && Proc.onPath("vgcreate") && Proc.onPath("lvcreate");
    }

    /**
     * Makes {@code image} ({@code mib} MiB) a physical volume of volume group {@code vg} (1 MiB extents) holding
     * the linear logical volume {@code lv} of {@code lvMib} MiB with an ext4 filesystem made from {@code src}.
     */
    static void build(Path image, long mib, String vg, String lv, long lvMib, Path src, Path work) {
        Proc.run("truncate", "-s", mib + "M", image.toString());
        String loop = Proc.run("losetup", "-f", "--show", image.toString()).strip();
        long offset;
        try {
            Proc.run("pvcreate", "-q", "--devices", loop, "--config", CONFIG, loop);
            Proc.run("vgcreate", "-q", "-s", "1M", "--devices", loop, "--config", CONFIG, vg, loop);
            Proc.run("lvcreate", "-q", "--driverloaded", "n", "-an", "-Zn", "-y", "-L", lvMib + "M", "-n", lv,
                "--devices", loop, "--config", CONFIG, vg);
            long peStart = Long.parseLong(Proc.run("pvs", "--devices", loop, "--config", CONFIG, "--noheadings",
                "--units", "b", "--nosuffix", "-o", "pe_start", loop).strip());
            String[] seg = Proc.run("lvs", "--devices", loop, "--config", CONFIG, "--noheadings", "--segments",
                "--units", "b", "--nosuffix", "-o", "seg_pe_ranges,vg_extent_size", vg + "/" + lv).strip()
                .split("\\s+");
            // one linear segment: "/dev/loopN:FIRST-LAST EXTENT_SIZE"
            String range = seg[0].substring(seg[0].lastIndexOf(':') + 1);
            long first = Long.parseLong(range.substring(0, range.indexOf('-')));
            offset = peStart + first * Long.parseLong(seg[1]);
        } finally {
            Proc.run("losetup", "-d", loop);
        }
        Path fs = work.resolve(lv + ".ext4");
        Proc.run("mkfs.ext4", "-q", "-b", "4096", "-E", "root_owner=0:0", "-d", src.toString(), fs.toString(),
            lvMib + "M");
        Proc.run("dd", "if=" + fs, "of=" + image, "bs=64K", "seek=" + offset, "oflag=seek_bytes",
            "conv=notrunc", "status=none");
        String type = Proc.run("blkid", "-p", "-O", Long.toString(offset), "-o", "value", "-s", "TYPE",
            image.toString()).strip();
        if (!type.equals("ext4")) {
            throw new AssertionError("no ext4 at " + offset + " of " + image + " (blkid: " + type + ")");
        }
    }
}
