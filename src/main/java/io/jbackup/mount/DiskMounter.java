package io.jbackup.mount;

import io.jbackup.model.BackupInfo;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Mounts the filesystems of one disk image that an NBD server exports: nbdfuse presents the export as a file,
 * {@code sfdisk --json} reads its partition table, each partition (or the whole disk, when there is no table) gets
 * a read-only loop device, {@code blkid -p} names its filesystem and {@link Filesystems#mount} mounts it on
 * {@code DIR/N} (or {@code DIR/disk}). Every step is recorded in the {@link MountState} before it is taken.
 */
public final class DiskMounter {
    private DiskMounter() {
    }

    /** What gets a loop device: a partition ({@code 1}, {@code 2}, ...) or the whole disk ({@code disk}). */
    private record Unit(String name, long offset, long size) {
    }

    /**
     * Mounts the filesystems of {@code backup}, export {@code export} on {@code socket}, under {@code dir}; the
     * FUSE file goes to {@code state.dir()/fuse/INDEX}. Returns one entry per partition (mounted or not).
     */
    public static List<MountedFilesystem> mount(MountState state, Path socket, String export, BackupInfo backup,
                                                int index, Path dir, Consumer<String> verbose) throws IOException {
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
            + "); partitions read by sfdisk, one read-only loop device each (losetup -r -o OFFSET --sizelimit SIZE)");
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
            synchronized (state) {
                if (!Files.isDirectory(target)) {
                    Files.createDirectories(target);
                    state.data().dirs.add(target.toString());
                }
                state.data().mounts.add(target.toString());
                state.save();
            }
            Filesystems.Outcome o = Filesystems.mount(loop, type, target);
            if (!o.mounted()) {
                synchronized (state) {
                    state.data().mounts.remove(target.toString());
                    state.save();
                }
                LoopDevices.detach(loop);
                synchronized (state) {
                    state.data().loops.remove(loop);
                    state.save();
                }
                if (state.data().dirs.contains(target.toString())) {
                    Files.deleteIfExists(target);
                    synchronized (state) {
                        state.data().dirs.remove(target.toString());
                        state.save();
                    }
                }
            }
            verbose.accept(backup.disk() + " " + u.name() + ": " + (type == null ? "no filesystem" : type) + " on "
                + loop + (o.mounted() ? ", " + o.how() : ", not mounted: " + o.problem()));
            out.add(new MountedFilesystem(backup.disk(), backup.id(), u.name(), offset, size,
                o.mounted() ? loop : null, type, o.mounted() ? target.toString() : null, o.how(), o.problem()));
        }
        return out;
    }
}
