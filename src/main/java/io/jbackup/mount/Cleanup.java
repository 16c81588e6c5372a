package io.jbackup.mount;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * Undoes what a {@link MountState} records, in the reverse order of making: filesystems unmounted (lazily when
 * busy), volume groups deactivated ({@link LvmVolumes#deactivate}), loop devices backed by files in the state
 * directory or by the mount's nbd devices detached, nbdfuse unmounted and ended, nbd devices disconnected
 * ({@link NbdDevices#disconnect}), the directories the mount created removed when empty, and the state directory
 * deleted. Each step is tried even when
 * an earlier one failed; what failed is returned. Running it twice is harmless.
 */
public final class Cleanup {
    private static final Logger LOG = LoggerFactory.getLogger(Cleanup.class);
    /** A state directory this young without a state file may be one that is being created. */
    private static final long YOUNG_MILLIS = 10_000;

    private Cleanup() {
    }

    /**
     * Unmounts and detaches everything of {@code state} but leaves the state directory (the NBD server's socket is
     * in it); returns the problems, empty when all is gone.
     */
    public static List<String> undo(MountState state) throws IOException {
        List<String> problems = new ArrayList<>();
        MountState.Data d = state.data();
        List<Path> points = new ArrayList<>();
        for (int i = d.mounts.size() - 1; i >= 0; i--) {
            points.add(Path.of(d.mounts.get(i)));
        }
        for (Path p : MountTable.under(state.dir())) { // temporary mounts of `files`, then the FUSE directories
            if (!points.contains(p) && !p.startsWith(state.dir().resolve("fuse"))) {
                points.add(p);
            }
        }
        for (Path p : points) {
            if (!Filesystems.unmount(p)) {
                problems.add("could not unmount " + p);
            }
        }
        for (int i = d.vgs.size() - 1; i >= 0; i--) { // they map loop devices: before those are detached
            problems.addAll(LvmVolumes.deactivate(d.vgs.get(i)));
        }
        List<String> nbd = d.nbd.stream().filter(NbdDevices::stillOurs).map(MountState.Nbd::device).toList();
        java.util.Set<String> loops = new java.util.LinkedHashSet<>(LoopDevices.backedBy(state.dir(), nbd));
        for (String loop : d.loops) {
            String back = LoopDevices.backingFile(loop);
            // still ours: in the state directory, the FUSE file after its file system went away under it, or one
            // of our nbd devices
            if (back != null && (back.startsWith(state.dir() + "/") || back.equals("/" + NbdFuse.FILE)
                || nbd.contains(back))) {
                loops.add(loop);
            }
        }
        for (String loop : loops) {
            if (!LoopDevices.detach(loop)) {
                problems.add("could not detach " + loop);
            }
        }
        for (MountState.Fuse f : d.fuse) {
            NbdFuse.stop(Path.of(f.dir()), f.pid());
            if (MountTable.isMountPoint(Path.of(f.dir()))) {
                problems.add("could not unmount the FUSE file system on " + f.dir());
            }
        }
        for (MountState.Nbd n : d.nbd) {
            problems.addAll(NbdDevices.disconnect(n));
        }
        for (int i = d.dirs.size() - 1; i >= 0; i--) {
            Path dir = Path.of(d.dirs.get(i));
            try {
                if (Files.isDirectory(dir) && !MountTable.isMountPoint(dir)) {
                    Files.deleteIfExists(dir);
                }
            } catch (java.nio.file.DirectoryNotEmptyException e) {
                LOG.info("kept {}: not empty", dir);
            }
        }
        return problems;
    }

    /**
     * Deletes the state directory and the log of a daemon mount beside it (after {@link #undo} found nothing left);
     * it holds no mount point then.
     */
    public static void removeDir(Path dir) throws IOException {
        if (!Files.exists(dir) || !MountTable.under(dir).isEmpty()) {
            return;
        }
        Files.deleteIfExists(Path.of(dir + ".log")); // the output of a --daemon mount
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }

    /**
     * Cleans up after every mount whose process is gone (killed by SIGKILL, or crashed) and returns the mount
     * points it cleaned; a mount whose process runs is left alone.
     */
    public static List<String> leftovers() throws IOException {
        List<String> cleaned = new ArrayList<>();
        for (Path dir : MountState.all()) {
            MountState s = MountState.load(dir);
            if (s == null) {
                if (System.currentTimeMillis() - Files.getLastModifiedTime(dir).toMillis() > YOUNG_MILLIS) {
                    removeDir(dir);
                }
                continue;
            }
            if (s.ownerAlive()) {
                continue;
            }
            List<String> problems = undo(s);
            if (problems.isEmpty()) {
                removeDir(dir);
                cleaned.add(s.data().mountpoint);
                LOG.info("removed the leftovers of the mount on {} (process {} is gone)", s.data().mountpoint,
                    s.data().pid);
            } else {
                LOG.warn("leftovers of the mount on {}: {}", s.data().mountpoint, String.join("; ", problems));
            }
        }
        return cleaned;
    }
}
