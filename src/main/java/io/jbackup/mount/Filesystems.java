package io.jbackup.mount;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * Identifying a filesystem ({@code blkid -p}) and mounting it read-only with options that never write to the
 * device, whatever state its journal is in:
 * <table>
 * <caption>mount per type</caption>
 * <tr><th>type</th><th>how</th></tr>
 * <tr><td>ext2, ext3, ext4</td><td>{@code mount -o ro,noload} (the journal is not replayed)</td></tr>
 * <tr><td>xfs</td><td>{@code mount -o ro,norecovery,nouuid} (two backups of one disk share the UUID)</td></tr>
 * <tr><td>btrfs</td><td>{@code mount -o ro,rescue=nologreplay}, else {@code ro}</td></tr>
 * <tr><td>vfat</td><td>{@code mount -o ro} where the kernel has vfat, else {@code fusefat -o ro} (FUSE)</td></tr>
 * <tr><td>ntfs</td><td>{@code ntfs-3g -o ro} when installed</td></tr>
 * <tr><td>LVM2_member</td><td>not mounted here: a partition's (or whole disk's) volume group is activated by
 * {@link LvmVolumes}; one inside a logical volume is not</td></tr>
 * <tr><td>anything else</td><td>{@code mount -o ro}</td></tr>
 * </table>
 * Every mount is also {@value #INERT}. The devices are read-only loop devices over a read-only FUSE file, so nothing
 * can be written anyway; the options keep the kernel from refusing a dirty journal it may not replay.
 */
public final class Filesystems {
    /**
     * Options of every mount, whatever the type: the guest's setuid programs and device nodes stay inert on this host
     * (a guest's root could otherwise leave a setuid shell or a world-writable node of the host's memory or disks for
     * any local user who can reach the mount point).
     */
    static final String INERT = "nosuid,nodev";

    private Filesystems() {
    }

    /** What {@link #mount} did: the command used, or why the filesystem was not mounted ({@code problem}). */
    public record Outcome(String how, String problem) {
        public boolean mounted() {
            return problem == null;
        }
    }

    /** The filesystem type {@code blkid -p} finds on {@code device} (ext4, xfs, vfat, LVM2_member, ...), or null. */
    public static String identify(String device) throws IOException {
        Tool.Result r = Tool.exec(List.of("blkid", "-p", "-o", "export", device));
        String usage = null;
        String type = null;
        for (String line : r.stdout().split("\n")) {
            if (line.startsWith("TYPE=")) {
                type = line.substring(5);
            } else if (line.startsWith("PTTYPE=") && type == null) {
                usage = "partition table " + line.substring(7);
            }
        }
        return type != null ? type : usage;
    }

    /** Whether the running kernel has a driver for {@code type} ({@code /proc/filesystems}). */
    public static boolean kernelHas(String type) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/filesystems"))) {
                if (line.strip().endsWith("\t" + type) || line.strip().equals(type)) {
                    return true;
                }
            }
        } catch (IOException e) {
            return false;
        }
        return false;
    }

    /** Mounts {@code device}, holding a filesystem of {@code type} (from {@link #identify}), on {@code dir}. */
    public static Outcome mount(String device, String type, Path dir) throws IOException {
        if (type == null) {
            return new Outcome(null, "blkid recognises no filesystem on it");
        }
        String t = type.toLowerCase(Locale.ROOT);
        switch (t) {
            case "swap":
                return new Outcome(null, "swap space (holds no files)");
            case "lvm2_member":
                return new Outcome(null, "LVM physical volume inside a logical volume (nested volume "
                    + "groups are not activated); restore the disk, or serve it and activate it by hand");
            case "vfat", "msdos":
                if (kernelHas("vfat") || !Tool.available("fusefat")) {
                    return plain(device, "vfat", "ro", dir, kernelHas("vfat") ? null
                        : "the kernel has no vfat driver and fusefat is not installed (Debian package fusefat)");
                }
                return helper(List.of("fusefat", "-o", "ro," + INERT, device, dir.toString()));
            case "ntfs":
                if (!Tool.available("ntfs-3g")) {
                    return new Outcome(null, "NTFS needs ntfs-3g (Debian package ntfs-3g)");
                }
                return helper(List.of("ntfs-3g", "-o", "ro," + INERT, device, dir.toString()));
            case "ext2", "ext3", "ext4":
                return plain(device, t, "ro,noload", dir, null);
            case "xfs":
                return plain(device, t, "ro,norecovery,nouuid", dir, null); // two backups side by side
            case "btrfs":
                Outcome o = plain(device, t, "ro,rescue=nologreplay", dir, null);
                return o.mounted() ? o : plain(device, t, "ro", dir, null);
            default:
                if (t.startsWith("partition table")) {
                    return new Outcome(null, "a nested " + t);
                }
                return plain(device, t, "ro", dir, null);
        }
    }

    private static Outcome plain(String device, String type, String options, Path dir, String unsupported)
        throws IOException {
        if (unsupported != null) {
            return new Outcome(null, unsupported);
        }
        List<String> cmd = List.of("mount", "-t", type, "-o", options + "," + INERT, device, dir.toString());
        Tool.Result r = Tool.exec(cmd);
        return r.ok() ? new Outcome(String.join(" ", cmd), null)
            : new Outcome(null, "mount -t " + type + " -o " + options + "," + INERT + " failed: " + r.said());
    }

    private static Outcome helper(List<String> cmd) throws IOException {
        Tool.Result r = Tool.exec(cmd);
        return r.ok() ? new Outcome(String.join(" ", cmd), null)
            : new Outcome(null, cmd.get(0) + " failed: " + r.said());
    }

    /** Unmounts {@code dir}; lazily ({@code umount -l}) when it is busy. True if it is no mount point any more. */
    public static boolean unmount(Path dir) throws IOException {
        if (!MountTable.isMountPoint(dir)) {
            return true;
        }
        if (!Tool.exec(List.of("umount", dir.toString())).ok()) {
            Tool.exec(List.of("umount", "-l", dir.toString()));
        }
        return !MountTable.isMountPoint(dir);
    }
}
