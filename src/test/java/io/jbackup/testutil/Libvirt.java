package io.jbackup.testutil;

import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The real libvirt of the machine ({@code qemu:///system}) for tests of jbackup's libvirt pull-mode backups: whether
 * it is installed ({@link #available()}, {@link #assumeAvailable()}), starting its daemons when they do not run
 * ({@link #ensureRunning()}; CI installs them with {@code .ci/install-deps} but nothing starts them), {@code virsh}
 * calls, directories QEMU can use ({@link #shareWithQemu}) and TCG domains with qcow2 disks ({@link #domain}).
 *
 * <p>Facts of libvirt 9.0 / QEMU 7.2 without KVM this relies on (see also the libvirt recipe in the shared reference):
 * <ul>
 *   <li>{@code virsh start} fails unless {@code virtlogd} runs; {@code libvirtd -d} does not start it.</li>
 *   <li>QEMU runs as {@code libvirt-qemu}: the directory holding disks, NBD sockets and scratch files must be
 *       writable by it and every parent traversable, or {@code backup-begin} fails binding its socket
 *       ("Permission denied").</li>
 *   <li>Where {@code /dev/kvm} exists but only root may open it, libvirt probes QEMU's capabilities again on every
 *       look-up ("KVM was enabled when probing ..., but it is not available now"): each {@code virsh define} then
 *       takes about 30-50 s, {@code virsh start} and {@code virsh version} about 4 s. Define few domains.</li>
 * </ul>
 * All of it needs root (the system daemon); tests are skipped where libvirt is not installed.
 */
public final class Libvirt {
    /** The connection every call uses. */
    public static final String URI = "qemu:///system";
    public static final Path LIBVIRT_SOCK = Path.of("/run/libvirt/libvirt-sock");
    public static final Path VIRTLOGD_SOCK = Path.of("/run/libvirt/virtlogd-sock");
    /** Where libvirtd keeps each domain's QEMU log (the output of monitor {@code qemu-io} commands goes there). */
    public static final Path QEMU_LOG_DIR = Path.of("/var/log/libvirt/qemu");
    public static final String EMULATOR = "/usr/bin/qemu-system-x86_64";

    private static final Duration START_TIMEOUT = Duration.ofSeconds(120);
    private static volatile boolean running;

    private Libvirt() {
    }

    /**
     * Whether libvirt can be used here: virsh, libvirtd, virtlogd and qemu-system-x86_64 are installed, and either we
     * are root (we can start the daemons) or libvirtd already answers.
     */
    public static boolean available() {
        return whyUnavailable() == null;
    }

    private static String whyUnavailable() {
        if (!Proc.onPath("virsh")) {
            return "virsh is not installed (.ci/install-deps installs libvirt-clients)";
        }
        if (daemon("libvirtd") == null || daemon("virtlogd") == null) {
            return "libvirtd/virtlogd are not installed (.ci/install-deps installs libvirt-daemon-system)";
        }
        if (!Files.isExecutable(Path.of(EMULATOR))) {
            return EMULATOR + " is not installed (.ci/install-deps installs qemu-system-x86)";
        }
        if (!isRoot() && !answers(LIBVIRT_SOCK)) {
            return "libvirtd does not run and only root can start the system daemon";
        }
        return null;
    }

    /** For a test's {@code @BeforeAll}/{@code @BeforeEach}: skips unless {@link #available()}, then {@link #ensureRunning()}. */
    public static void assumeAvailable() {
        String why = whyUnavailable();
        Assumptions.assumeTrue(why == null, () -> "libvirt tests skipped: " + why);
        ensureRunning();
    }

    /**
     * Starts {@code virtlogd -d} and {@code libvirtd -d} when their sockets do not answer, then waits (bounded) until
     * {@code virsh -c qemu:///system version} works. Once per JVM; safe from several test classes (and several JVMs:
     * a daemon that is already running makes the second start fail harmlessly).
     */
    public static synchronized void ensureRunning() {
        if (running) {
            return;
        }
        StringBuilder started = new StringBuilder();
        for (String[] d : new String[][] {{"virtlogd", VIRTLOGD_SOCK.toString()}, {"libvirtd", LIBVIRT_SOCK.toString()}}) {
            if (!answers(Path.of(d[1]))) {
                Path exe = daemon(d[0]);
                if (exe == null) {
                    throw new AssertionError(d[0] + " is not installed; run .ci/install-deps");
                }
                Proc.Result r = Proc.exec(Duration.ofSeconds(60), exe.toString(), "-d");
                started.append("\n").append(exe).append(" -d: exit ").append(r.exitCode()).append(" ")
                    .append(r.stdout()).append(r.stderr());
            }
        }
        long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
        Proc.Result last = null;
        while (true) {
            if (answers(LIBVIRT_SOCK) && answers(VIRTLOGD_SOCK)) {
                last = Proc.exec(Duration.ofSeconds(90), "virsh", "-c", URI, "version");
                if (last.exitCode() == 0) {
                    running = true;
                    warnAboutKvmDevice();
                    return;
                }
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("libvirt did not come up within " + START_TIMEOUT.toSeconds() + " s ("
                    + LIBVIRT_SOCK + (answers(LIBVIRT_SOCK) ? " answers" : " does not answer") + ", "
                    + VIRTLOGD_SOCK + (answers(VIRTLOGD_SOCK) ? " answers" : " does not answer") + ")"
                    + (last == null ? "" : "; virsh version: exit " + last.exitCode() + " " + last.stderr().strip())
                    + (started.length() == 0 ? "" : "; started:" + started));
            }
            Proc.sleep(200);
        }
    }

    /** Starts libvirtd again after a test stopped it ({@link #ensureRunning} once more). */
    public static synchronized void restart() {
        running = false;
        ensureRunning();
    }

    /**
     * A {@code /dev/kvm} that root may open but libvirt-qemu may not (mode 0600, as without udev) makes libvirtd probe
     * QEMU again on every capability look-up: each define then takes 30-50 s. Says so once, with the fix (what udev
     * would have done); changes nothing.
     */
    private static void warnAboutKvmDevice() {
        Path kvm = Path.of("/dev/kvm");
        try {
            if (Files.exists(kvm) && !Files.getPosixFilePermissions(kvm).contains(PosixFilePermission.GROUP_WRITE)) {
                System.err.println("Libvirt: " + kvm + " is " + PosixFilePermissions.toString(
                    Files.getPosixFilePermissions(kvm)) + ": libvirtd re-probes QEMU on every look-up (\"KVM was "
                    + "enabled when probing ..., but it is not available now\") and each virsh define takes 30-50 s; "
                    + "`chgrp kvm /dev/kvm && chmod 0660 /dev/kvm` (as udev does) should avoid it");
            }
        } catch (IOException | UnsupportedOperationException e) {
            // only a hint
        }
    }

    /** {@code virsh -c qemu:///system ARGS...}; requires success and returns stdout. */
    public static String virsh(String... args) {
        return virshResult(args).requireSuccess(virshCommand(args)).stdout();
    }

    /** {@code virsh -c qemu:///system ARGS...}, whatever its exit code (2 minutes at most: a define can take ~50 s here). */
    public static Proc.Result virshResult(String... args) {
        return Proc.exec(Duration.ofSeconds(120), virshCommand(args).toArray(String[]::new));
    }

    private static List<String> virshCommand(String... args) {
        List<String> cmd = new ArrayList<>(List.of("virsh", "-c", URI));
        cmd.addAll(List.of(args));
        return cmd;
    }

    /**
     * Makes {@code dir} (created if missing) usable by QEMU, which runs as {@code libvirt-qemu}: mode 0777 on it and
     * o+x added to every parent that lacks it. Disks, NBD sockets of pull-mode backups and their scratch files must
     * live in such a directory. A JUnit {@code @TempDir} (0700 under /tmp) works once passed through here. Keep the
     * path short: unix socket paths allow 107 bytes.
     */
    public static Path shareWithQemu(Path dir) {
        try {
            Files.createDirectories(dir);
            Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxrwxrwx"));
            for (Path p = dir.toAbsolutePath().getParent(); p != null; p = p.getParent()) {
                Set<PosixFilePermission> perms = Files.getPosixFilePermissions(p);
                if (!perms.contains(PosixFilePermission.OTHERS_EXECUTE)) {
                    Set<PosixFilePermission> more = EnumSet.copyOf(perms);
                    more.add(PosixFilePermission.OTHERS_EXECUTE);
                    Files.setPosixFilePermissions(p, more);
                }
            }
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot make " + dir + " usable by libvirt-qemu (chmod 0777, o+x on "
                + "parents)", e);
        }
    }

    /** Chmod 0666: a file QEMU (user libvirt-qemu) may read and write. */
    public static Path shareFileWithQemu(Path file) {
        try {
            Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-rw-rw-"));
            return file;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** {@code PREFIX-} and 8 random hex digits: domains of parallel runs on one machine never collide. */
    public static String uniqueName(String prefix) {
        byte[] b = new byte[4];
        ThreadLocalRandom.current().nextBytes(b);
        return prefix + "-" + HexFormat.of().formatHex(b);
    }

    /** A builder of a TCG domain whose disks and files go to {@code dir} (made usable by QEMU). */
    public static Domain.Builder domain(Path dir) {
        return Domain.builder(dir);
    }

    /** SHA-256 of a file, in hex. */
    public static String sha256(Path file) {
        return Proc.sha256(file);
    }

    /** Whether a domain of that name is defined (any state). */
    public static boolean isDefined(String name) {
        return virshResult("domid", name).exitCode() == 0;
    }

    static boolean answers(Path socket) {
        if (!Files.exists(socket)) {
            return false;
        }
        try (SocketChannel ch = SocketChannel.open(UnixDomainSocketAddress.of(socket))) {
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static Path daemon(String name) {
        for (String dir : (System.getenv().getOrDefault("PATH", "") + ":/usr/sbin:/sbin").split(":")) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, name))) {
                return Path.of(dir, name);
            }
        }
        return null;
    }

    private static boolean isRoot() {
        try {
            return Integer.valueOf(0).equals(Files.getAttribute(Path.of("/proc/self"), "unix:uid"));
        } catch (IOException | UnsupportedOperationException e) {
            return "root".equals(System.getProperty("user.name"));
        }
    }
}
