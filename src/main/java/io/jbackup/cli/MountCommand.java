package io.jbackup.cli;

import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.model.BackupInfo;
import io.jbackup.mount.MountSession;
import io.jbackup.mount.MountState;
import io.jbackup.mount.MountedFilesystem;
import io.jbackup.store.LockMode;
import io.jbackup.store.Repository;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;

/**
 * {@code jbackup mount}: every filesystem of a backup mounted read-only under a directory, until Ctrl-C, SIGTERM
 * or {@code jbackup umount}. See docs/file-restore.md.
 */
@Command(name = "mount", mixinStandardHelpOptions = true,
    description = {"Mount every filesystem of a backup read-only under MOUNTPOINT: MOUNTPOINT/1, MOUNTPOINT/2, ... "
        + "for partitions (MBR or GPT), MOUNTPOINT/disk for a filesystem on the whole disk, MOUNTPOINT/DISK/N with "
        + "--vm. Filesystems that cannot be mounted are listed with the reason.",
        "The backup is served on a private Unix socket, presented as a file by nbdfuse (or as the kernel's nbd "
            + "device, see --via) and mounted through read-only loop devices (needs root and loop devices). Logical "
            + "volumes are activated read-only: MOUNTPOINT/N/VG-LV. Only the chunks read are fetched.",
        "Runs until Ctrl-C, SIGTERM or 'jbackup umount MOUNTPOINT' (then everything is unmounted); --daemon "
            + "returns once mounted."})
public final class MountCommand implements Callable<Integer> {
    @Mixin
    RepoOptions repo;
    @Mixin
    JsonMixin json;
    @Mixin
    LoggingMixin logging;
    @Mixin
    KernelPathMixin kernelPath;

    @Option(names = "--disk", paramLabel = "NAME", description = "Disk to mount (every disk of the set with --vm).")
    String disk;

    @Option(names = "--vm", paramLabel = "NAME", description = "VM whose backup set to mount: MOUNTPOINT/DISK/N.")
    String vm;

    @Option(names = "--backup", paramLabel = "ID|latest|@TIME", defaultValue = "latest",
        description = "Backup id (or unique prefix), 'latest', or '@' + ISO-8601 time (default: ${DEFAULT-VALUE}).")
    String backup;

    @Option(names = "--daemon", description = "Return once everything is mounted; the mount stays until "
        + "'jbackup umount MOUNTPOINT'.")
    boolean daemon;

    @Option(names = "--cache-size", paramLabel = "MiB", defaultValue = "128",
        description = "Memory for decompressed chunks (default: ${DEFAULT-VALUE}).")
    long cacheMiB;

    @Option(names = "--read-ahead", paramLabel = "CHUNKS", defaultValue = "8",
        description = "Chunks prefetched after sequential reads (default: ${DEFAULT-VALUE}).")
    int readAhead;

    @Parameters(index = "0", paramLabel = "MOUNTPOINT", description = "An empty or new directory.")
    Path mountpoint;

    @Override
    public Integer call() throws Exception {
        if (disk == null && vm == null) {
            throw new UsageException("name what to mount: --disk NAME, or --vm NAME for a whole backup set");
        }
        if (cacheMiB < 0 || cacheMiB > (1L << 24)) {
            throw new UsageException("--cache-size " + cacheMiB + " (expected: 0 .. 16777216 MiB)");
        }
        if (daemon) {
            return Daemon.detach(mountpoint, logging.quiet);
        }
        Path mp = mountpoint.toAbsolutePath().normalize();
        try (StopSignal stop = StopSignal.install("jbackup-mount-shutdown");
             Repository r = repo.open(LockMode.SHARED)) {
            List<BackupInfo> selected = BackupSelection.select(r, vm, disk, backup);
            List<MountSession.Target> targets = new ArrayList<>();
            for (BackupInfo b : selected) {
                targets.add(new MountSession.Target(b, disk == null ? mp.resolve(b.disk()) : mp));
            }
            MountSession session = MountSession.open(r, targets, mp, cacheMiB << 20, readAhead,
                kernelPath.via, this::verbose);
            if (session.filesystems().stream().noneMatch(f -> f.path() != null)) {
                // else it reported success and ran on (with --daemon, in the background) with nothing mounted
                String why = session.filesystems().stream().map(f -> f.disk() + " " + ("disk".equals(f.name())
                    ? "(whole disk)" : "partition " + f.name()) + ": " + f.problem())
                    .collect(java.util.stream.Collectors.joining("; "));
                List<String> problems = session.closeAndReport();
                throw new NotFoundException("nothing of backup " + selected.stream().map(BackupInfo::id)
                    .collect(java.util.stream.Collectors.joining(", ")) + " can be mounted"
                    + (why.isEmpty() ? "" : ": " + why) + "; restore the disk instead ('jbackup restore') and "
                    + "examine the image" + (problems.isEmpty() ? "" : "; left behind: " + String.join("; ",
                    problems) + " ('jbackup umount " + mp + "' when no longer busy)"));
            }
            try {
                print(mp, session.filesystems());
                session.markReady(); // after the output: --daemon prints it then
                stop.await();
            } finally {
                List<String> problems = session.closeAndReport();
                if (!problems.isEmpty()) {
                    System.err.println("jbackup: left behind: " + String.join("; ", problems)
                        + "; run 'jbackup umount " + mp + "' when they are no longer busy");
                } else if (!logging.quiet && !json.enabled()) {
                    System.out.println("jbackup: unmounted " + mp);
                }
            }
        }
        return ExitCodes.OK;
    }

    private void print(Path mp, List<MountedFilesystem> fs) {
        if (json.enabled()) {
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("status", "ok");
            out.put("mountpoint", mp.toString());
            out.put("pid", ProcessHandle.current().pid());
            out.put("filesystems", fs);
            json.print(out);
            return;
        }
        if (logging.quiet) {
            return;
        }
        for (MountedFilesystem f : fs) {
            System.out.println((f.path() != null ? f.path() : mp + ": " + f.disk() + " partition " + f.name()) + "  "
                + (f.type() == null ? "-" : f.type()) + "  " + Sizes.format(f.size())
                + (f.problem() == null ? "" : "  not mounted: " + f.problem()));
        }
        System.out.println("jbackup: mounted " + fs.stream().filter(f -> f.path() != null).count() + " of "
            + fs.size() + " filesystems of " + repo.display() + " read-only under " + mp
            + ("1".equals(System.getenv(Daemon.DETACHED)) ? "; 'jbackup umount " : "; Ctrl-C or 'jbackup umount ")
            + mp + "' to unmount");
        System.out.flush();
    }

    private void verbose(String text) {
        org.slf4j.LoggerFactory.getLogger(MountCommand.class).info(text);
    }

    /** {@code --daemon}: the same command line without it, in a new session, and waiting until it has mounted. */
    static final class Daemon {
        /** Set in the environment of the detached mount (it prints no "Ctrl-C" hint). */
        static final String DETACHED = "JBACKUP_MOUNT_DETACHED";

        private Daemon() {
        }

        static int detach(Path mountpoint, boolean quiet) throws IOException, InterruptedException {
            // this process's command line as the kernel has it (ProcessHandle.Info drops long ones)
            String[] me = new String(Files.readAllBytes(Path.of("/proc/self/cmdline")),
                java.nio.charset.StandardCharsets.UTF_8).split("\0");
            if (me.length < 2) {
                throw new UsageException("--daemon: cannot read this process's command line from /proc/self/cmdline; "
                    + "run without --daemon, e.g. under systemd-run or nohup");
            }
            // setsid -w: a new session (no SIGHUP from the terminal); it waits for the mount: its exit is the mount's
            List<String> cmd = new ArrayList<>(List.of("setsid", "-w"));
            for (String a : me) {
                if (!a.equals("--daemon")) {
                    cmd.add(a);
                }
            }
            Path mp = mountpoint.toAbsolutePath().normalize();
            Path dir = MountState.dirOf(mp);
            MountState running = MountState.load(dir);
            if (running != null && running.ownerAlive()) {
                // else the running mount's state reads as this one's success, and its log is overwritten
                throw MountSession.inUse(mp, running);
            }
            Files.createDirectories(MountState.ROOT);
            Path log = Path.of(dir + ".log");
            // the mount's standard output (its table, or --json's document) is passed on to ours; its standard error
            // (messages, warnings, the error of a failed mount) to ours, and stays in the log while it runs
            Path output = Path.of(dir + ".out");
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(output.toFile()).redirectError(log.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
            pb.environment().put(DETACHED, "1");
            Process p = pb.start();
            // read through descriptors opened now: a mount that fails after it made its state directory removes
            // the log with it, and its error message then goes only to the open file
            try (java.io.InputStream out = Files.newInputStream(output);
                 java.io.InputStream err = Files.newInputStream(log)) {
                Files.deleteIfExists(output);
                long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(10);
                while (System.nanoTime() < deadline) {
                    MountState s = MountState.load(dir);
                    if (s != null && s.data().ready && isOurs(p, s.data().pid)) {
                        passOn(out, err);
                        if (!quiet) {
                            System.err.println("jbackup: mount runs as process " + s.data().pid + " (log: " + log
                                + ")");
                        }
                        return ExitCodes.OK;
                    }
                    if (p.waitFor(100, TimeUnit.MILLISECONDS)) {
                        passOn(out, err);
                        if (!Files.exists(dir)) {
                            Files.deleteIfExists(log); // the mount failed, and no other runs on that mount point
                        }
                        return p.exitValue();
                    }
                }
            }
            p.destroy();
            throw new UsageException("--daemon: the mount did not finish within 10 minutes (log: " + log + ")");
        }

        /** Whether {@code pid} is the mount process started (setsid may fork it) rather than another mount's. */
        private static boolean isOurs(Process p, long pid) {
            return p.pid() == pid || p.descendants().anyMatch(h -> h.pid() == pid);
        }

        /** What the mount process printed so far: its standard output to ours, its standard error to ours. */
        private static void passOn(java.io.InputStream out, java.io.InputStream err) throws IOException {
            System.err.write(err.readAllBytes());
            System.err.flush();
            System.out.write(out.readAllBytes());
            System.out.flush();
        }
    }
}
