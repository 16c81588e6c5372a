package io.jbackup.cli;

import io.jbackup.engine.ExternalToolException;
import io.jbackup.engine.QemuNbdProcess;
import io.jbackup.engine.QemuImg;
import io.jbackup.error.UsageException;
import io.jbackup.engine.FileTarget;
import io.jbackup.engine.NbdTarget;
import io.jbackup.engine.RestoreTarget;
import io.jbackup.engine.RestoreTargetException;
import io.jbackup.error.Causes;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdClient;
import io.jbackup.nbd.client.NbdCommandException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * A new qcow2 image as restore target: {@code qemu-img create -f qcow2} makes it (under a temporary name next to the
 * target), {@code qemu-nbd -f qcow2} serves it on a private Unix socket ({@link QemuNbdProcess}), and the restore
 * writes through an {@link NbdTarget}. Zero chunks are not written at all (a new qcow2 reads as zeros), so only the
 * data is allocated; no raw copy is needed, so it takes no more space than the qcow2 itself. When the restore has
 * flushed, closing stops qemu-nbd (which writes the qcow2's metadata) and renames the image into place; a failed or
 * interrupted restore deletes it, and an existing target is only replaced at that point.
 */
final class Qcow2Target implements RestoreTarget {
    private static final Duration STOP_WAIT = Duration.ofSeconds(60);

    private final Path target;
    private final Path temp;
    private final QemuNbdProcess server;
    private final NbdTarget nbd;
    private boolean flushed;

    private Qcow2Target(Path target, Path temp, QemuNbdProcess server, NbdTarget nbd) {
        this.target = target;
        this.temp = temp;
        this.server = server;
        this.nbd = nbd;
    }

    /**
     * Creates a qcow2 of {@code size} bytes for {@code target} and serves it.
     *
     * @param overwrite replace an existing file (only once the restore succeeded)
     * @throws ExternalToolException qemu-img or qemu-nbd is missing or fails
     */
    static Qcow2Target create(Path target, long size, boolean overwrite) throws IOException {
        if (Files.isDirectory(target)) {
            throw new UsageException("restore target " + target + " is a directory; name a file in it "
                + "(e.g. " + target.resolve("DISK.qcow2") + ")");
        }
        if (Files.exists(target) && !Files.isRegularFile(target)) {
            throw new UsageException("restore target " + target + " is not a regular file; a qcow2 is "
                + "written to a file (use --format raw to write the image to a device)");
        }
        if (Files.exists(target) && !overwrite && Files.size(target) > 0) {
            throw new UsageException("restore target " + target + " exists; pass --force to replace it, "
                + "or choose a new file name");
        }
        if (size % 512 != 0) {
            throw new UsageException("the image has " + size + " bytes, not a multiple of 512, which a "
                + "qcow2 cannot hold exactly; restore it with --format raw");
        }
        FileTarget.requireDirectoryOf(target);
        Path parent = target.toAbsolutePath().getParent();
        String path = System.getenv().getOrDefault("PATH", "/usr/bin:/bin");
        Path qemuNbd;
        try {
            QemuImg.locate("qemu-img", path);
            qemuNbd = QemuImg.locate("qemu-nbd", path);
        } catch (ExternalToolException e) {
            throw new ExternalToolException(e.getMessage() + "; or restore a raw image with --format raw");
        }
        Path temp = parent.resolve("." + target.getFileName() + ".jbackup-tmp");
        QemuNbdProcess server = null;
        try {
            Files.deleteIfExists(temp); // left by a killed restore
            QemuImg.check(temp, "create", "-q", "-f", "qcow2", temp.toString(), Long.toString(size));
            // no -t: qemu-nbd exits (after writing the qcow2 metadata) when the restore disconnects
            server = QemuNbdProcess.start(qemuNbd, null, "jbackup-restore-", List.of("-f", "qcow2", temp.toString()),
                "qemu-nbd did not start serving the new qcow2 for " + target);
            NbdClient c = NbdClient.connect(server.uri(), ClientOptions.defaults());
            try {
                return new Qcow2Target(target, temp, server, new NbdTarget(c, size, 16));
            } catch (RuntimeException e) {
                c.close();
                throw e;
            }
        } catch (IOException | RuntimeException e) {
            if (server != null) {
                server.close();
            }
            Files.deleteIfExists(temp);
            throw e;
        }
    }

    @Override
    public void write(long offset, byte[] data, int length) throws IOException {
        try {
            nbd.write(offset, data, length);
        } catch (IOException e) {
            throw asTargetError(e);
        }
    }

    @Override
    public void writeZeroes(long offset, long length) throws IOException {
        try {
            nbd.writeZeroes(offset, length);
        } catch (IOException e) {
            throw asTargetError(e);
        }
    }

    /**
     * qemu-nbd answering a write or flush with an error (ENOSPC, EIO) means the qcow2 file could not be written: a
     * target error naming the file the user gave (exit 4, {@code target-error}), not an error of an NBD server the
     * user never started. Anything else (an interrupt, qemu-nbd gone) is passed on as the NBD client reported it,
     * without the wording of a user's own NBD target ({@link io.jbackup.engine.NbdTargetException}).
     */
    private IOException asTargetError(IOException e) {
        Optional<NbdCommandException> nc = Causes.find(e, NbdCommandException.class);
        if (nc.isPresent()) {
            return new RestoreTargetException(target.toString(), new IOException("qemu-nbd: " + nc.get().getMessage(),
                e));
        }
        return e instanceof io.jbackup.engine.NbdTargetException && e.getCause() instanceof IOException io ? io : e;
    }

    /** A new qcow2 reads as zeros: zero chunks need not be written. */
    @Override
    public boolean needsZeroes() {
        return false;
    }

    /** Flushes through qemu-nbd; a restore flushes once, at its end, so the image is then complete. */
    @Override
    public void flush() throws IOException {
        try {
            nbd.flush();
        } catch (IOException e) {
            throw asTargetError(e);
        }
        flushed = true;
    }

    @Override
    public void close() throws IOException {
        try {
            nbd.close();
            int exit = awaitExit();
            if (flushed && exit != 0) {
                throw new ExternalToolException("qemu-nbd exited with code " + exit + " after the restore to "
                    + target + ": " + server.log());
            }
            if (flushed) {
                Files.move(temp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            }
        } finally {
            server.close();
            Files.deleteIfExists(temp);
        }
    }

    private int awaitExit() throws IOException {
        OptionalInt exit = server.awaitExit(STOP_WAIT);
        if (exit.isEmpty()) {
            server.stop();
            throw new ExternalToolException("qemu-nbd serving " + temp + " did not exit within " + STOP_WAIT.toSeconds()
                + " s after the restore; the image was not kept");
        }
        return exit.getAsInt();
    }

    @Override
    public String description() {
        return target.toString();
    }

    @Override
    public String format() {
        return "qcow2";
    }

    @Override
    public String toString() {
        return description();
    }
}
