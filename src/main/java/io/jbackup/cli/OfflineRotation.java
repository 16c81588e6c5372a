package io.jbackup.cli;

import io.jbackup.engine.QemuNbdProcess;
import io.jbackup.engine.QemuImg;
import io.jbackup.engine.ProgressListener;
import io.jbackup.model.BackupInfo;
import io.jbackup.nbd.client.NbdUri;
import io.jbackup.store.Repository;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * {@code jbackup auto|incremental --image FILE --rotate-bitmap}: the dirty bitmaps of an offline qcow2 image, kept in
 * step with the repository so that each incremental reads only what changed since the previous backup.
 *
 * <p>One run: {@link #plan} finds the <em>current</em> bitmap (recorded as label {@value #LABEL} with the disk's
 * newest complete backup, else the {@code --bitmap} given to start a chain) and names the <em>next</em> one
 * {@code jbackup-REPO8-DISK-N}; {@link #serve} adds the next bitmap with {@code qemu-img bitmap --add} (nothing
 * holds the image yet) and serves the image read-only with {@code qemu-nbd -r -A -B CURRENT} on a private socket;
 * the backup records the next bitmap's name; only after it committed does {@link #retire} remove the current bitmap
 * (and next bitmaps that failed runs of this chain left behind). A failed run leaves both bitmaps: the next run
 * still starts from the current one, which holds every write since the parent backup.
 *
 * <p>The image must not be open elsewhere (a running VM, another qemu-nbd): qemu-img cannot write its bitmaps then.
 */
final class OfflineRotation {
    /** The label that names the bitmap holding the writes since a backup (shared with the QMP mode). */
    static final String LABEL = "jbackup.bitmap";

    private OfflineRotation() {
    }

    /**
     * The bitmaps of one run.
     *
     * @param current the bitmap holding the writes since the parent backup, or null when none is known
     * @param usable  whether {@code current} is on the image and trustworthy, so it is exported
     * @param next    the bitmap added before serving, recorded with this backup
     * @param stale   next bitmaps that failed runs of this chain left behind (removed after a commit)
     */
    record Plan(String current, boolean usable, String next, List<String> stale) {
    }

    /** Works out the current and next bitmaps from the repository and the image ({@code qemu-img info -U}). */
    static Plan plan(Repository repo, Path image, String vm, String disk, String seed, ProgressListener progress)
        throws IOException {
        List<BitmapCommand.Bitmap> bitmaps = BitmapCommand.bitmaps(image);
        Optional<BackupInfo> parent = repo.latestComplete(vm, disk);
        String recorded = parent.map(p -> p.labels().get(LABEL)).orElse(null);
        String current = recorded != null ? recorded : seed;
        String repoId = repo.config().id().replace("-", "");
        String prefix = "jbackup-" + repoId.substring(0, Math.min(8, repoId.length())) + "-" + disk + "-";
        long last = 0;
        List<String> stale = new ArrayList<>();
        boolean usable = false;
        for (BitmapCommand.Bitmap b : bitmaps) {
            String n = b.name();
            if (n.startsWith(prefix) && n.substring(prefix.length()).matches("[0-9]{1,18}")) {
                last = Math.max(last, Long.parseLong(n.substring(prefix.length())));
                if (!n.equals(current)) {
                    stale.add(n);
                }
            }
            if (n.equals(current)) {
                usable = !b.inUse() && b.recording();
                if (!usable) {
                    progress.warning(disk, "bitmap " + n + " of " + image + " is " + (b.inUse() ? "in-use (the image "
                        + "was not closed cleanly)" : "disabled") + ": its content cannot be trusted, so it is not "
                        + "used");
                }
            }
        }
        if (current != null && bitmaps.stream().noneMatch(b -> b.name().equals(current))) {
            progress.warning(disk, "bitmap " + current + (recorded != null ? " (recorded with backup "
                + parent.get().id() + ")" : "") + " is not on " + image + " (it has: " + (bitmaps.isEmpty() ? "none"
                : String.join(", ", bitmaps.stream().map(BitmapCommand.Bitmap::name).toList())) + ")");
        }
        return new Plan(current, usable, prefix + (last + 1), List.copyOf(stale));
    }

    /** A running {@code qemu-nbd -r} serving the image on a socket in a private directory. */
    static final class Served implements AutoCloseable {
        private final QemuNbdProcess server;

        private Served(QemuNbdProcess server) {
            this.server = server;
        }

        NbdUri uri() {
            return server.uri();
        }

        @Override
        public void close() {
            server.close();
        }
    }

    /**
     * Adds the next bitmap, then serves the image read-only with {@code qemu-nbd -r -A -t} and, when the current
     * bitmap is usable, {@code -B CURRENT}. Waits until qemu-nbd answers on the socket.
     */
    static Served serve(Path image, Plan plan) throws IOException {
        QemuImg.check(image, "bitmap", "--add", "-f", "qcow2", image.toString(), plan.next());
        List<String> args = new ArrayList<>(List.of("-r", "-A", "-t", "-f", "qcow2"));
        if (plan.usable()) {
            args.addAll(List.of("-B", plan.current()));
        }
        args.add(image.toString());
        return new Served(QemuNbdProcess.start(QemuNbdProcess.locate(), null, "jbackup-image-", args,
            "qemu-nbd did not start serving " + image));
    }

    /**
     * After the backup committed (and qemu-nbd stopped): removes the current bitmap and stale next bitmaps of this
     * chain, so that only the next one records. A bitmap that cannot be removed is reported, not fatal: the backup
     * is safe, and the next run uses the next bitmap whatever else the image holds.
     */
    static void retire(Path image, Plan plan, ProgressListener progress, String label) {
        List<String> old = new ArrayList<>(plan.stale());
        if (plan.current() != null && !plan.current().equals(plan.next())) {
            old.add(0, plan.current());
        }
        List<String> removed = new ArrayList<>();
        try {
            List<String> present = BitmapCommand.bitmaps(image).stream().map(BitmapCommand.Bitmap::name).toList();
            for (String b : old) {
                if (present.contains(b)) {
                    QemuImg.check(image, "bitmap", "--remove", "-f", "qcow2", image.toString(), b);
                    removed.add(b);
                }
            }
            progress.message(label, "bitmap " + plan.next() + " of " + image + " records the changes from now on"
                + (removed.isEmpty() ? "" : "; removed " + String.join(", ", removed)));
        } catch (IOException | RuntimeException e) {
            progress.warning(label, "the backup is committed, but retiring the old bitmaps of " + image + " failed ("
                + e.getMessage() + "); the next run uses " + plan.next() + "; remove the others with: jbackup "
                + "bitmap remove --image " + image + " --name NAME");
        }
    }
}
