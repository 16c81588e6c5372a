package io.jbackup.mount;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * What one {@code jbackup mount} made, recorded before each thing is made so that a mount killed by SIGKILL can
 * be cleaned up by the next {@code mount} or {@code umount} ({@link Cleanup}).
 *
 * <p>It lives in its state directory {@code ROOT/HASH/} ({@link #ROOT} {@code = /run/jbackup/mounts}; HASH is the
 * first 16 hex digits of the SHA-256 of the absolute mount point), mode 0700, which also holds the NBD socket
 * ({@code nbd.sock}), one FUSE directory per disk ({@code fuse/N/}, its file {@code disk}) with nbdfuse's pid file
 * and log beside it, and {@code state.json}:
 * <pre>{@code
 * {"pid": 1234, "mountpoint": "/mnt/b", "ready": true,   // everything mounted and announced
 *  "fuse": [{"dir": ".../fuse/0", "pid": 1240}],
 *  "nbd": [{"device": "/dev/nbd0", "tool": "qemu-nbd", "pid": 1250}],  // kernel nbd devices (pid: 0 until known)
 *  "loops": ["/dev/loop0", "/dev/loop1"],    // loop devices attached (their backing file says if still ours)
 *  "vgs": [{"name": "vg0", "devices": ["/dev/loop1"], "dm": ["vg0-root"], "devicesOption": true}],  // activated
 *  "mounts": ["/mnt/b/1", "/mnt/b/2"],       // mount points, in the order they were mounted
 *  "dirs": ["/mnt/b/1", "/mnt/b/2"]}         // directories this mount created (removed when empty)
 * }</pre>
 * Loop devices are also found by their backing file, which lies in the state directory or is a recorded nbd device
 * ({@link LoopDevices#backedBy}),
 * so one attached just before a kill is not missed; a recorded one is detached only while its backing file is still
 * ours. The file is replaced atomically (written beside, then renamed).
 */
public final class MountState {
    /** Where state directories live. */
    public static final Path ROOT = Path.of("/run/jbackup/mounts");
    private static final String FILE = "state.json";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** One nbdfuse: its directory and process id. */
    public record Fuse(String dir, long pid) {
    }

    /** One kernel nbd device connected to the socket: its device, the program that connected it, its pid. */
    public record Nbd(String device, String tool, long pid) {
    }

    /**
     * One volume group activated read-only: its name, the loop devices lvm2 was restricted to, the device-mapper
     * names of its logical volumes, and whether lvm2 took {@code --devices} ({@link Lvm}).
     */
    public record Vg(String name, List<String> devices, List<String> dm, boolean devicesOption) {
    }

    /** The recorded content (mutable lists, kept in order). */
    public static final class Data {
        public long pid;
        public String mountpoint;
        public boolean ready;
        public List<Fuse> fuse = new ArrayList<>();
        public List<Nbd> nbd = new ArrayList<>();
        public List<String> loops = new ArrayList<>();
        public List<Vg> vgs = new ArrayList<>();
        public List<String> mounts = new ArrayList<>();
        public List<String> dirs = new ArrayList<>();
    }

    private final Path dir;
    private final Data data;

    private MountState(Path dir, Data data) {
        this.dir = dir;
        this.data = data;
    }

    /** The state directory of {@code mountpoint}. */
    public static Path dirOf(Path mountpoint) {
        try {
            byte[] h = MessageDigest.getInstance("SHA-256").digest(mountpoint.toAbsolutePath().normalize().toString()
                .getBytes(StandardCharsets.UTF_8));
            return ROOT.resolve(HexFormat.of().formatHex(h, 0, 8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Creates the state directory of {@code mountpoint} for this process (it must not exist). */
    public static MountState create(Path mountpoint) throws IOException {
        Path d = dirOf(mountpoint);
        Files.createDirectories(ROOT);
        Files.createDirectory(d, java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
            java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
        Data data = new Data();
        data.pid = ProcessHandle.current().pid();
        data.mountpoint = mountpoint.toAbsolutePath().normalize().toString();
        MountState s = new MountState(d, data);
        s.save();
        return s;
    }

    /** The state in {@code dir}, or null if it has no readable state file. */
    public static MountState load(Path dir) {
        try {
            return new MountState(dir, JSON.readValue(dir.resolve(FILE).toFile(), Data.class));
        } catch (IOException e) {
            return null;
        }
    }

    /** Every state directory under {@link #ROOT}. */
    public static List<Path> all() throws IOException {
        if (!Files.isDirectory(ROOT)) {
            return List.of();
        }
        try (var s = Files.list(ROOT)) {
            return s.filter(Files::isDirectory).sorted().toList();
        }
    }

    public Path dir() {
        return dir;
    }

    public Data data() {
        return data;
    }

    /** The NBD socket of this mount. */
    public Path socket() {
        return dir.resolve("nbd.sock");
    }

    /** Whether the process that made this mount still runs (a pid reused by another program counts as gone). */
    public boolean ownerAlive() {
        return data.pid != ProcessHandle.current().pid() && ProcessHandle.of(data.pid)
            .filter(h -> h.info().command().map(c -> c.contains("java") || c.contains("jbackup")).orElse(true))
            .map(ProcessHandle::isAlive).orElse(false);
    }

    /** Writes the state (call after every change, before acting on it). */
    public synchronized void save() throws IOException {
        Path tmp = dir.resolve(FILE + ".tmp");
        JSON.writeValue(tmp.toFile(), data);
        Files.move(tmp, dir.resolve(FILE), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
}
