package io.jbackup.mount;

import io.jbackup.model.BackupInfo;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Mounts the filesystems of one disk image that an NBD server exports: nbdfuse presents the export as a file, or
 * the kernel's nbd device as a block device ({@link KernelPath}); {@code sfdisk --json} reads its partition table,
 * each partition (or the whole disk, when there is no table) gets a read-only loop device, {@code blkid -p} names
 * its filesystem and {@link Filesystems#mount} mounts it on {@code DIR/N} (or {@code DIR/disk}); the logical volumes
 * of an LVM physical volume are activated read-only and mounted on {@code DIR/N/VG-LV} ({@link LvmVolumes}). Every
 * step is recorded in the {@link MountState} before it is taken.
 */
public final class DiskMounter {
    private DiskMounter() {
    }

    /** What gets a loop device: a partition ({@code 1}, {@code 2}, ...) or the whole disk ({@code disk}). */
    private record Unit(String name, long offset, long size) {
    }

    /**
     * Mounts the filesystems of {@code backup}, export {@code export} on {@code socket}, under {@code dir}, reaching
     * the kernel as {@code via} says; a FUSE file goes to {@code state.dir()/fuse/INDEX}. Returns one entry per
     * partition or logical volume (mounted or not).
     */
    public static List<MountedFilesystem> mount(MountState state, Path socket, String export, BackupInfo backup,
                                                int index, Path dir, KernelPath.Choice via, Consumer<String> verbose)
        throws IOException {
        Path file = present(state, socket, export, backup, index, via, verbose);
        List<PartitionTable.Partition> parts = PartitionTable.read(file);
        List<Unit> units = new ArrayList<>();
        if (parts.isEmpty()) {
            units.add(new Unit("disk", 0, backup.imageSize()));
        } else {
            for (PartitionTable.Partition p : parts) {
                units.add(new Unit(Integer.toString(p.number()), p.offset(),
                    Math.min(p.size(), backup.imageSize() - p.offset())));
            }
        }
        List<MountedFilesystem> out = new ArrayList<>();
        for (Unit u : units) {
            long offset = u.offset();
            long size = u.size();
            if (size <= 0) {
                out.add(new MountedFilesystem(backup.disk(), backup.id(), u.name(), offset, size, null, null, null,
                    null, "lies beyond the end of the image"));
                continue;
            }
            String loop = LoopDevices.attach(file, offset, size);
            synchronized (state) {
                state.data().loops.add(loop);
                state.save();
            }
            String type = Filesystems.identify(loop);
            Path target = dir.resolve(u.name());
            Filesystems.Outcome o;
            if ("LVM2_member".equals(type)) {
                LvmVolumes.Result lv = LvmVolumes.mount(state, loop, backup, u.name(), offset, target, verbose);
                if (lv.problem() == null) { // the loop device stays: the volume group maps it
                    out.addAll(lv.volumes());
                    continue;
                }
                o = new Filesystems.Outcome(null, lv.problem());
            } else {
                o = mountRecorded(state, loop, type, dir, target);
            }
            if (!o.mounted()) {
                LoopDevices.detach(loop);
                synchronized (state) {
                    state.data().loops.remove(loop);
                    state.save();
                }
            }
            verbose.accept(backup.disk() + " " + u.name() + ": " + (type == null ? "no filesystem" : type) + " on "
                + loop + (o.mounted() ? ", " + o.how() : ", not mounted: " + o.problem()));
            out.add(new MountedFilesystem(backup.disk(), backup.id(), u.name(), offset, size,
                o.mounted() ? loop : null, type, o.mounted() ? target.toString() : null, o.how(), o.problem()));
        }
        return out;
    }

    /** Presents the export to the kernel as a file (nbdfuse) or a block device (nbd); returns its path. */
    private static Path present(MountState state, Path socket, String export, BackupInfo backup, int index,
                                KernelPath.Choice via, Consumer<String> verbose) throws IOException {
        String steps = "; partitions read by sfdisk, one read-only loop device each (losetup -r -o OFFSET "
            + "--sizelimit SIZE)";
        if (via.kind() == KernelPath.Kind.NBD) {
            String device = NbdDevices.connect(state, via.tool(), socket, export);
            verbose.accept(backup.disk() + ": export " + export + " on kernel nbd device " + device + ", connected "
                + "read-only by " + via.tool() + " (pid " + NbdDevices.clientPid(device) + ")" + steps);
            return Path.of(device);
        }
        Path fuseDir = state.dir().resolve("fuse").resolve(Integer.toString(index));
        synchronized (state) {
            state.data().fuse.add(new MountState.Fuse(fuseDir.toString(), 0));
            state.save();
        }
        long pid = NbdFuse.start(fuseDir, socket, export);
        synchronized (state) {
            List<MountState.Fuse> f = state.data().fuse;
            f.set(f.indexOf(new MountState.Fuse(fuseDir.toString(), 0)), new MountState.Fuse(fuseDir.toString(), pid));
            state.save();
        }
        Path file = fuseDir.resolve(NbdFuse.FILE);
        verbose.accept(backup.disk() + ": export " + export + " presented as " + file + " by nbdfuse (pid " + pid
            + ")" + steps);
        return file;
    }

    /**
     * Mounts {@code device} (holding {@code type}) on {@code target}, recording the mount and each directory it
     * creates from {@code base} down in {@code state} first; when it cannot be mounted, the record and the
     * directories it created are removed again.
     */
    static Filesystems.Outcome mountRecorded(MountState state, String device, String type, Path base, Path target)
        throws IOException {
        List<Path> created = new ArrayList<>();
        synchronized (state) {
            for (Path p = target; p != null && p.startsWith(base) && !p.equals(base); p = p.getParent()) {
                if (!Files.isDirectory(p)) {
                    created.add(0, p);
                }
            }
            for (Path p : created) {
                Files.createDirectories(p);
                state.data().dirs.add(p.toString());
            }
            state.data().mounts.add(target.toString());
            state.save();
        }
        Filesystems.Outcome o = Filesystems.mount(device, type, target);
        if (!o.mounted()) {
            synchronized (state) {
                state.data().mounts.remove(target.toString());
                for (int i = created.size() - 1; i >= 0; i--) {
                    Files.deleteIfExists(created.get(i));
                    state.data().dirs.remove(created.get(i).toString());
                }
                state.save();
            }
        }
        return o;
    }
}
