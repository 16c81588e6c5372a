package io.jbackup.mount;

import io.jbackup.model.BackupInfo;

import java.io.IOException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * The logical volumes of an LVM physical volume found in a partition, activated read-only with lvm2 ({@link Lvm})
 * and mounted like partitions on {@code DIR/N/VG-LV}. The activation is recorded in the {@link MountState} before it
 * is made, so every clean-up path deactivates it ({@link #deactivate}) before the loop device is detached.
 *
 * <p>It is refused, with the reason, when the host has no lvm2 or no working device-mapper ({@code dmsetup version}
 * fails), when the volume group spans physical volumes that are not on this partition, and when a volume group of
 * the same name is already known to the host (two cannot be active under one name); the partition is then listed
 * as not mounted and the others still mount.
 */
public final class LvmVolumes {
    private LvmVolumes() {
    }

    /** The logical volumes of one physical volume (mounted or not), or why none was activated ({@code problem}). */
    public record Result(List<MountedFilesystem> volumes, String problem) {
        static Result refused(String problem) {
            return new Result(List.of(), problem);
        }
    }

    /** Why volume groups cannot be activated on this host, or null when lvm2 and device-mapper work. */
    public static String unavailable() throws IOException {
        if (!Tool.available("vgchange")) {
            return "lvm2 is not installed (Debian package lvm2)";
        }
        if (!Tool.available("dmsetup")) {
            return "device-mapper unavailable: dmsetup is not installed (Debian package dmsetup)";
        }
        Tool.Result r = Tool.exec(List.of("dmsetup", "version"));
        return r.ok() ? null : "device-mapper unavailable: dmsetup version failed: " + r.said();
    }

    /**
     * Activates the volume group on {@code loop} (partition {@code part} of {@code backup}, at {@code offset} in
     * the image) read-only and mounts each of its logical volumes on {@code partDir/VG-LV}.
     */
    public static Result mount(MountState state, String loop, BackupInfo backup, String part, long offset,
                               Path partDir, Consumer<String> verbose) throws IOException {
        String way = "; restore the disk, or serve it and activate the volume group by hand";
        if (!Tool.available("vgchange")) {
            return Result.refused("LVM physical volume: its logical volumes are not activated (lvm2 is not "
                + "installed, Debian package lvm2)" + way);
        }
        boolean devicesOption = Lvm.hasDevicesOption(Tool.exec(List.of("lvm", "version")).stdout());
        List<String> devices = List.of(loop);
        Tool.Result g = Tool.exec(Lvm.groups(devices, devicesOption));
        List<Lvm.Group> groups = g.ok() ? Lvm.parseGroups(g.stdout()) : List.of();
        if (groups.isEmpty()) {
            return Result.refused("LVM physical volume in no volume group (it holds no logical volumes"
                + (g.ok() ? "" : "; vgs: " + g.said()) + ")");
        }
        Lvm.Group vg = groups.get(0);
        if (!Lvm.validName(vg.name())) {
            return Result.refused("LVM physical volume of a volume group whose name lvm2 does not accept");
        }
        Tool.Result l = Tool.exec(Lvm.volumes(devices, devicesOption));
        List<Lvm.Volume> volumes = new ArrayList<>();
        for (Lvm.Volume v : l.ok() ? Lvm.parseVolumes(l.stdout()) : List.<Lvm.Volume>of()) {
            if (v.vg().equals(vg.name()) && Lvm.validName(v.lv()) && v.dmPath().startsWith("/dev/mapper/")) {
                volumes.add(v);
            }
        }
        String what = "LVM physical volume of volume group " + vg.name() + " (logical volumes: "
            + (volumes.isEmpty() ? "none" : String.join(", ", volumes.stream().map(Lvm.Volume::lv).toList())) + ")";
        if (volumes.isEmpty()) {
            return Result.refused(what);
        }
        String missing = unavailable();
        if (missing == null && vg.missingPvs() > 0) {
            missing = "the volume group spans " + vg.pvCount() + " physical volumes and " + vg.missingPvs()
                + " of them are not in this partition (volume groups over several partitions or disks are not "
                + "activated)";
        }
        if (missing == null) {
            missing = clash(vg.name(), devices, volumes);
        }
        if (missing != null) {
            return Result.refused(what + ": not activated: " + missing + way);
        }
        MountState.Vg rec = new MountState.Vg(vg.name(), devices, volumes.stream().map(Lvm.Volume::dmName).toList(),
            devicesOption);
        synchronized (state) {
            state.data().vgs.add(rec);
            state.save();
        }
        List<String> cmd = Lvm.activate(vg.name(), devices, devicesOption);
        Tool.Result a = Tool.exec(cmd);
        if (!a.ok()) {
            if (deactivate(rec).isEmpty()) {
                synchronized (state) {
                    state.data().vgs.remove(rec);
                    state.save();
                }
            }
            return Result.refused(what + ": vgchange -ay failed: " + a.said() + way);
        }
        verbose.accept(backup.disk() + " " + part + ": volume group " + vg.name() + " activated read-only on " + loop
            + ": " + String.join(" ", cmd));
        List<MountedFilesystem> out = new ArrayList<>();
        for (Lvm.Volume v : volumes) {
            String name = part + "/" + v.dirName();
            Filesystems.Outcome o;
            String type = null;
            if (v.pool()) {
                o = new Filesystems.Outcome(null, "a thin pool (its thin volumes are listed on their own)");
            } else if (!Files.exists(Path.of(v.dmPath()))) {
                o = new Filesystems.Outcome(null, "not active after vgchange -ay (attributes " + v.attr() + ")");
            } else {
                type = Filesystems.identify(v.dmPath());
                o = DiskMounter.mountRecorded(state, v.dmPath(), type, partDir.getParent(),
                    partDir.resolve(v.dirName()));
            }
            verbose.accept(backup.disk() + " " + name + ": " + (type == null ? "no filesystem" : type) + " on "
                + v.dmPath() + (o.mounted() ? ", " + o.how() : ", not mounted: " + o.problem()));
            out.add(new MountedFilesystem(backup.disk(), backup.id(), name, offset, v.size(),
                o.mounted() ? v.dmPath() : null, type, o.mounted() ? partDir.resolve(v.dirName()).toString() : null,
                o.how(), o.problem()));
        }
        return new Result(out, null);
    }

    /** Why {@code vg} may not be activated: a volume group of that name known to this host; null when none is. */
    private static String clash(String vg, List<String> ours, List<Lvm.Volume> volumes) throws IOException {
        Tool.Result r = Tool.exec(Lvm.hostPhysicalVolumes());
        if (!r.ok()) {
            return "could not list this host's volume groups to rule out a name clash (pvs: " + r.said() + ")";
        }
        List<String> where = new ArrayList<>(Lvm.physicalVolumesOf(r.stdout(), vg));
        where.removeAll(ours);
        // a host whose udev autoactivates volume groups (lvm2's 69-lvm.rules) may already have activated this one on
        // our own loop device: that is not a clash, and the clean-up deactivates it with the rest
        boolean activeOnOurs = false;
        for (Lvm.Volume v : volumes) {
            if (Files.exists(Path.of(v.dmPath()))) {
                if (ownedBy(v.dmName(), ours)) {
                    activeOnOurs = true;
                } else {
                    where.add(v.dmPath());
                }
            }
        }
        if (!activeOnOurs && Files.exists(Path.of("/dev", vg))) {
            where.add("/dev/" + vg);
        }
        return where.isEmpty() ? null : "a volume group named " + vg + " is already known to this host (" + String.join(
            ", ", where) + "); two cannot be active under one name (unmount the other mount of this backup first)";
    }

    /**
     * Deactivates a recorded volume group: {@code vgchange -an} restricted to its loop devices; what is left of its
     * device-mapper devices (after a kill the loop device may no longer read) is removed with {@code dmsetup remove}
     * while it still maps one of those loop devices. Returns the problems, empty when nothing is left.
     */
    public static List<String> deactivate(MountState.Vg vg) throws IOException {
        List<String> problems = new ArrayList<>();
        if (!Tool.available("dmsetup") || vg.dm().stream().noneMatch(LvmVolumes::active)) {
            return problems;
        }
        Tool.Result r = Tool.exec(Lvm.deactivate(vg.name(), vg.devices(), vg.devicesOption()));
        for (String dm : vg.dm()) {
            if (active(dm) && ownedBy(dm, vg.devices())) {
                Tool.exec(List.of("dmsetup", "remove", "--noudevsync", "--noudevrules", "--retry", dm));
            }
            if (active(dm)) {
                problems.add("could not deactivate " + dm + " of volume group " + vg.name() + " (vgchange -an: "
                    + (r.ok() ? "done" : r.said()) + ")");
            }
        }
        Path links = Path.of("/dev", vg.name()); // made by libdevmapper without udev; gone when vgchange did it all
        if (Files.isDirectory(links) && problems.isEmpty()) {
            try (var s = Files.list(links)) {
                for (Path p : s.toList()) {
                    if (Files.isSymbolicLink(p) && !Files.exists(p)) {
                        Files.delete(p);
                    }
                }
            }
            try {
                Files.deleteIfExists(links);
            } catch (DirectoryNotEmptyException e) {
                // other links: not ours to remove
            }
        }
        return problems;
    }

    private static boolean active(String dm) {
        try {
            return Tool.exec(List.of("dmsetup", "info", dm)).ok();
        } catch (IOException e) {
            return false;
        }
    }

    /** Whether device-mapper device {@code dm} maps one of {@code devices} ({@code dmsetup deps -o devname}). */
    private static boolean ownedBy(String dm, List<String> devices) throws IOException {
        String deps = Tool.exec(List.of("dmsetup", "deps", "-o", "devname", dm)).stdout();
        return devices.stream().anyMatch(d -> deps.contains("(" + Path.of(d).getFileName() + ")"));
    }
}
