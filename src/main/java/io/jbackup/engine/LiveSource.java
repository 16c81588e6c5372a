package io.jbackup.engine;

import io.jbackup.text.Human;
import io.jbackup.error.UsageException;

import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * A running QEMU (a VM, or qemu-storage-daemon) whose disks {@link LiveBackup} backs up through QMP.
 *
 * @param qmpSocket  the QMP monitor's unix socket
 * @param disks      the disks: each a block node, or a guest device whose node is looked up
 * @param qgaSocket  the guest agent's socket for fsfreeze around the point in time, or null
 * @param qgaTimeout bound of each guest-agent command (freeze, thaw)
 * @param nbdServer  the unix socket of an NBD server QEMU already runs, to add the exports to; null to start a
 *                   private one (QEMU runs at most one NBD server)
 * @param scratchDir directory QEMU can write to for the temporary fleecing images and the private NBD socket;
 *                   null for a new private temporary directory
 * @param qmpTimeout bound of each QMP command and awaited event
 */
public record LiveSource(Path qmpSocket, List<Disk> disks, Path qgaSocket, Duration qgaTimeout, Path nbdServer,
                         Path scratchDir, Duration qmpTimeout) {

    /**
     * One disk.
     *
     * @param disk   the disk's name in the repository
     * @param node   the block node (e.g. the qcow2 node), or null when {@code device} is given
     * @param device the guest device ({@code query-block} device or qdev id), or null when {@code node} is given
     */
    public record Disk(String disk, String node, String device) {
        public Disk {
            if ((node == null) == (device == null)) {
                throw new UsageException("disk " + disk + ": give either a block node or a device");
            }
        }
    }

    public LiveSource {
        if (qmpSocket == null) {
            throw new UsageException("no QMP socket (--qmp SOCKET)");
        }
        if (disks == null || disks.isEmpty()) {
            throw new UsageException("no disks: give --node [DISK=]NODE or --device [DISK=]DEV");
        }
        disks = List.copyOf(disks);
        Set<String> names = new HashSet<>();
        for (Disk d : disks) {
            if (!names.add(d.disk())) {
                throw new UsageException("disk name " + d.disk() + " is given twice");
            }
        }
        if (qmpTimeout == null || qmpTimeout.isNegative() || qmpTimeout.isZero()) {
            throw new UsageException("QMP timeout " + Human.duration(qmpTimeout) + " (expected: > 0)");
        }
        if (qgaSocket != null && (qgaTimeout == null || qgaTimeout.isNegative() || qgaTimeout.isZero())) {
            throw new UsageException("guest agent timeout " + Human.duration(qgaTimeout) + " (expected: > 0)");
        }
    }

    /** A source with the defaults: private NBD server and scratch directory, no guest agent, 30 s timeouts. */
    public static LiveSource of(Path qmpSocket, List<Disk> disks) {
        return new LiveSource(qmpSocket, disks, null, Duration.ofSeconds(30), null, null, Duration.ofSeconds(30));
    }

    public LiveSource withNbdServer(Path socket) {
        return new LiveSource(qmpSocket, disks, qgaSocket, qgaTimeout, socket, scratchDir, qmpTimeout);
    }

    public LiveSource withGuestAgent(Path socket, Duration timeout) {
        return new LiveSource(qmpSocket, disks, socket, timeout, nbdServer, scratchDir, qmpTimeout);
    }

    public LiveSource withScratchDir(Path dir) {
        return new LiveSource(qmpSocket, disks, qgaSocket, qgaTimeout, nbdServer, dir, qmpTimeout);
    }
}
