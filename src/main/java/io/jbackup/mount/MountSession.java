package io.jbackup.mount;

import io.jbackup.engine.BackupServer;
import io.jbackup.error.UsageException;
import io.jbackup.model.BackupInfo;
import io.jbackup.nbd.server.ServerConfig;
import io.jbackup.store.Repository;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * One {@code jbackup mount}: an in-process NBD server ({@link BackupServer}, the one {@code jbackup serve} runs)
 * on a private Unix socket in the mount's state directory, the way it reaches the kernel chosen by
 * {@link KernelPath}, and the filesystems of each backup mounted by {@link DiskMounter}. {@link #close} undoes it
 * all ({@link Cleanup}) and stops the server; it is idempotent and safe to call from a shutdown hook.
 */
public final class MountSession implements AutoCloseable {
    /** A backup to mount and the directory its filesystems go under. */
    public record Target(BackupInfo backup, Path dir) {
    }

    private final MountState state;
    private final BackupServer server;
    private final List<MountedFilesystem> filesystems = new ArrayList<>();
    private boolean closed;

    private MountSession(MountState state, BackupServer server) {
        this.state = state;
        this.server = server;
    }

    /**
     * Mounts every target under {@code mountpoint} (an empty directory, created when missing). Cleans up the
     * leftovers of killed mounts first; refuses a mount point that a running mount uses or that is not empty.
     *
     * @param cacheBytes memory of the server's chunk cache
     * @param readAhead  chunks the server prefetches after sequential reads
     * @param via        how the backup reaches the kernel ({@link KernelPath})
     * @param verbose    receives the steps taken (for {@code -v})
     */
    public static MountSession open(Repository repo, List<Target> targets, Path mountpoint, long cacheBytes,
                                    int readAhead, KernelPath.Via via, Consumer<String> verbose) throws IOException {
        Path mp = mountpoint.toAbsolutePath().normalize();
        if (!Integer.valueOf(0).equals(Files.getAttribute(Path.of("/proc/self"), "unix:uid"))) {
            throw new UsageException("mounting a backup needs root: it creates loop devices and mounts filesystems "
                + "(run it as root or with sudo; without root, restore the disk with 'jbackup restore')");
        }
        for (String m : Cleanup.leftovers()) {
            verbose.accept("removed the leftovers of a killed mount on " + m);
        }
        KernelPath.Choice path = KernelPath.choose(via, KernelPath.HostFacts.probe());
        verbose.accept("the backup reaches the kernel through: " + KernelPath.describe(path));
        Path sd = MountState.dirOf(mp);
        if (Files.exists(sd)) {
            throw inUse(mp, MountState.load(sd));
        }
        List<Path> created = List.of();
        if (!Files.exists(mp)) {
            created = createDirectories(mp);
            // the guest's files keep their owners: a host user whose uid is a guest user's would read that
            // user's files; a mount point jbackup creates is root's alone (mode 0700)
            Files.setPosixFilePermissions(mp, java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
        } else if (!Files.isDirectory(mp)) {
            throw new UsageException(mp + " is not a directory");
        } else {
            try (var s = Files.list(mp)) {
                if (s.findAny().isPresent()) {
                    throw new UsageException(mp + " is not empty: mount into an empty or new directory");
                }
            }
        }
        MountState state = MountState.create(mp);
        if (!created.isEmpty()) {
            created.forEach(d -> state.data().dirs.add(d.toString()));
            state.save();
        }
        BackupServer server = null;
        MountSession s = null;
        try {
            server = BackupServer.start(repo, ServerConfig.builder().unixSocket(state.socket()).build(),
                BackupServer.Options.readOnly(cacheBytes, readAhead));
            s = new MountSession(state, server);
            verbose.accept("NBD server on " + state.socket() + " (state in " + state.dir() + ")");
            int i = 0;
            for (Target t : targets) {
                String export = t.backup().disk() + "@" + t.backup().id();
                if (!t.dir().equals(mp) && !Files.isDirectory(t.dir())) {
                    createDirectories(t.dir()).forEach(d -> state.data().dirs.add(d.toString()));
                    state.save();
                }
                s.filesystems.addAll(DiskMounter.mount(state, state.socket(), export, t.backup(), i++, t.dir(),
                    path, verbose));
            }
            return s;
        } catch (IOException | RuntimeException e) {
            try {
                if (s != null) {
                    s.close();
                } else {
                    if (server != null) {
                        server.close();
                    }
                    Cleanup.undo(state);
                    Cleanup.removeDir(state.dir());
                }
            } catch (IOException | RuntimeException cleanup) {
                e.addSuppressed(cleanup); // the cause of the failure is what the user needs first
            }
            throw e;
        }
    }

    /** Every filesystem found, mounted or not (with the reason). */
    public List<MountedFilesystem> filesystems() {
        return List.copyOf(filesystems);
    }

    public MountState state() {
        return state;
    }

    /** Records that the mount is complete and announced ({@code --daemon} waits for this). */
    public void markReady() throws IOException {
        synchronized (state) {
            state.data().ready = true;
            state.save();
        }
    }

    /** Unmounts everything, stops nbdfuse and the server, removes the state directory; returns what failed. */
    public synchronized List<String> closeAndReport() throws IOException {
        if (closed) {
            return List.of();
        }
        closed = true;
        List<String> problems;
        try {
            problems = Cleanup.undo(state);
        } finally {
            server.close();
        }
        if (problems.isEmpty()) {
            Cleanup.removeDir(state.dir());
        }
        return problems;
    }

    @Override
    public void close() throws IOException {
        List<String> problems = closeAndReport();
        if (!problems.isEmpty()) {
            throw new IOException("unmount left: " + String.join("; ", problems));
        }
    }

    /** The refusal of a mount on {@code mp}, which the mount recorded in {@code other} (null: unreadable) holds. */
    public static UsageException inUse(Path mp, MountState other) {
        return new UsageException(mp + " is in use by a running jbackup mount"
            + (other == null ? "" : " (process " + other.data().pid + ")") + "; unmount it with: jbackup umount " + mp);
    }

    /**
     * Creates {@code dir} and its missing parents; returns those it created, outermost first (unmounting removes
     * them again innermost first, each when empty: a mount on /mnt/restore/vm1 that made both leaves neither).
     */
    private static List<Path> createDirectories(Path dir) throws IOException {
        List<Path> missing = new ArrayList<>();
        for (Path p = dir.toAbsolutePath(); p != null && !Files.exists(p); p = p.getParent()) {
            missing.add(0, p);
        }
        Files.createDirectories(dir);
        return missing;
    }
}
