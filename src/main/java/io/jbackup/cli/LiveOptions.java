package io.jbackup.cli;

import io.jbackup.engine.LiveSource;
import io.jbackup.error.UsageException;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * Options of the live source mode of {@code full}, {@code incremental} and {@code auto}: back up a running QEMU's
 * disks through QMP instead of an NBD export someone else made.
 */
public final class LiveOptions {
    @Option(names = "--qmp", paramLabel = "SOCKET",
        description = "QMP monitor socket of the running VM (or qemu-storage-daemon). jbackup makes a point-in-time "
            + "export with image fleecing and manages the dirty bitmaps itself; use with --node or --device.")
    Path qmp;

    @Option(names = "--node", paramLabel = "[DISK=]NODE",
        description = "Block node to back up (e.g. the qcow2 node); repeat as DISK=NODE for several disks, which "
            + "share one point in time.")
    List<String> nodes = new ArrayList<>();

    @Option(names = "--device", paramLabel = "[DISK=]DEV",
        description = "Guest device whose node to back up (query-block device or qdev id, e.g. virtio-disk0); "
            + "repeatable like --node.")
    List<String> devices = new ArrayList<>();

    @Option(names = "--qga", paramLabel = "SOCKET",
        description = "Guest agent socket: freeze the guest's filesystems around the point in time (thaw is "
            + "guaranteed).")
    Path qga;

    @Option(names = "--qga-timeout", paramLabel = "SECONDS", defaultValue = "30",
        description = "Limit of each guest agent command (default: ${DEFAULT-VALUE}).")
    long qgaTimeout;

    @Option(names = "--nbd-server", paramLabel = "SOCKET",
        description = "Unix socket of an NBD server QEMU already runs (QEMU runs at most one); jbackup adds its "
            + "export there instead of starting a private server.")
    Path nbdServer;

    @Option(names = "--scratch-dir", paramLabel = "DIR",
        description = "Directory QEMU can write to, for the temporary fleecing image and the private NBD socket "
            + "(default: a new private temporary directory; give one when QEMU runs as another user).")
    Path scratchDir;

    @Option(names = "--qmp-timeout", paramLabel = "SECONDS", defaultValue = "30",
        description = "Limit of each QMP command (default: ${DEFAULT-VALUE}).")
    long qmpTimeout;

    /** Whether the live mode was asked for. */
    boolean enabled() {
        return qmp != null;
    }

    /** Rejects live-only options without {@code --qmp}. */
    void checkUnused() {
        if (!nodes.isEmpty() || !devices.isEmpty() || qga != null || nbdServer != null || scratchDir != null) {
            throw new UsageException("--node, --device, --qga, --nbd-server and --scratch-dir need --qmp "
                + "SOCKET");
        }
    }

    /** The source; {@code disk} names a single unnamed node or device. */
    LiveSource source(String disk) {
        if (qgaTimeout < 1 || qgaTimeout > 3600 || qmpTimeout < 1 || qmpTimeout > 3600) {
            throw new UsageException("--qga-timeout and --qmp-timeout are seconds in 1 .. 3600");
        }
        int count = nodes.size() + devices.size();
        if (count == 0) {
            throw new UsageException("--qmp needs the disks to back up: --node [DISK=]NODE or "
                + "--device [DISK=]DEV");
        }
        List<LiveSource.Disk> disks = new ArrayList<>();
        for (String n : nodes) {
            String[] kv = split(n, disk, count, "--node");
            disks.add(new LiveSource.Disk(kv[0], kv[1], null));
        }
        for (String d : devices) {
            String[] kv = split(d, disk, count, "--device");
            disks.add(new LiveSource.Disk(kv[0], null, kv[1]));
        }
        return new LiveSource(qmp, disks, qga, Duration.ofSeconds(qgaTimeout), nbdServer, scratchDir,
            Duration.ofSeconds(qmpTimeout));
    }

    private static String[] split(String arg, String disk, int count, String option) {
        int eq = arg.indexOf('=');
        if (eq > 0) {
            return new String[] {arg.substring(0, eq), arg.substring(eq + 1)};
        }
        if (count > 1) {
            throw new UsageException("with several disks, write each as " + option + " DISK=NAME");
        }
        return new String[] {disk != null ? disk : arg, arg};
    }
}
