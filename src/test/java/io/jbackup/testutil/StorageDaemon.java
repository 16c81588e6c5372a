package io.jbackup.testutil;

import io.jbackup.nbd.client.NbdUri;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A qemu-storage-daemon serving a qcow2 image as node {@code disk0} (file node {@code file0}), with two QMP monitors
 * ({@code qmp.sock} for jbackup, {@code qmp2.sock} for the test) and, optionally, a writable NBD export
 * {@code guest} of the same node on {@code guest.sock} standing in for the running guest. Close to stop it
 * (SIGTERM: the daemon closes the image cleanly and stores persistent bitmaps).
 */
public final class StorageDaemon implements AutoCloseable {
    private final Path dir;
    private final Proc.Background process;
    private final boolean guest;

    private StorageDaemon(Path dir, Proc.Background process, boolean guest) {
        this.dir = dir;
        this.process = process;
        this.guest = guest;
    }

    /** Starts the daemon on {@code image}; sockets go to {@code dir} (short paths: unix sockets allow 107 bytes). */
    public static StorageDaemon start(Path dir, Path image, boolean guestExport) {
        return start(dir, guestExport, image);
    }

    /**
     * Starts the daemon on several images: nodes {@code disk0}, {@code disk1}, ... (file nodes {@code file0}, ...);
     * with {@code guestExport}, each is exported writable as {@code guest}, {@code guest1}, ...
     */
    public static StorageDaemon start(Path dir, boolean guestExport, Path... images) {
        Path qmp = dir.resolve("qmp.sock");
        Path qmp2 = dir.resolve("qmp2.sock");
        Path guestSock = dir.resolve("guest.sock");
        List<String> cmd = new ArrayList<>(List.of("qemu-storage-daemon",
            "--chardev", "socket,path=" + qmp + ",server=on,wait=off,id=qmp0", "--monitor", "chardev=qmp0",
            "--chardev", "socket,path=" + qmp2 + ",server=on,wait=off,id=qmp1", "--monitor", "chardev=qmp1"));
        for (int i = 0; i < images.length; i++) {
            cmd.addAll(List.of("--blockdev", "driver=file,node-name=file" + i + ",filename=" + images[i],
                "--blockdev", "driver=qcow2,node-name=disk" + i + ",file=file" + i));
        }
        if (guestExport) {
            cmd.addAll(List.of("--nbd-server", "addr.type=unix,addr.path=" + guestSock));
            for (int i = 0; i < images.length; i++) {
                String name = guestName(i);
                cmd.addAll(List.of("--export", "type=nbd,id=" + name + ",node-name=disk" + i + ",name=" + name
                    + ",writable=on"));
            }
        }
        Proc.Background bg = Proc.start(dir.resolve("qsd-" + System.nanoTime() + ".log"), cmd.toArray(String[]::new));
        bg.awaitPath(qmp).awaitPath(qmp2);
        if (guestExport) {
            bg.awaitPath(guestSock);
        }
        return new StorageDaemon(dir, bg, guestExport);
    }

    /** jbackup's QMP monitor. */
    public Path qmp() {
        return dir.resolve("qmp.sock");
    }

    /** The test's own QMP monitor. */
    public Path testQmp() {
        return dir.resolve("qmp2.sock");
    }

    /** The daemon's NBD server socket (with the {@code guest} export). */
    public Path nbdServer() {
        if (!guest) {
            throw new IllegalStateException("started without the guest export");
        }
        return dir.resolve("guest.sock");
    }

    /** The guest's writable export of {@code disk0}. */
    public NbdUri guestUri() {
        return guestUri(0);
    }

    /** The guest's writable export of disk {@code i}. */
    public NbdUri guestUri(int i) {
        return NbdUri.unix(nbdServer(), guestName(i), false);
    }

    private static String guestName(int i) {
        return i == 0 ? "guest" : "guest" + i;
    }

    public Proc.Background process() {
        return process;
    }

    @Override
    public void close() {
        process.close();
        java.io.File[] left = {qmp().toFile(), testQmp().toFile(), dir.resolve("guest.sock").toFile()};
        for (java.io.File f : left) {
            f.delete();
        }
    }
}
