package io.jbackup.engine;

import io.jbackup.error.UsageException;
import io.jbackup.model.BackupInfo;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.store.Repository;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Offline qcow2 images backed up with their dirty bitmaps kept in step with the repository ({@code jbackup
 * auto|incremental --image FILE --rotate-bitmap}, and {@code image:} disks of a job file), so that each incremental
 * reads only what changed since the previous backup.
 *
 * <p>One run, per image: {@link #plan} finds the <em>current</em> bitmap (recorded as label {@value #LABEL} with the
 * disk's newest complete backup, else the seed bitmap given to start a chain) and names the <em>next</em> one
 * {@code jbackup-REPO8-DISK-N}; {@link #backUp} adds the next bitmap with {@code qemu-img bitmap --add} (nothing
 * holds the image yet) and serves the image read-only with {@code qemu-nbd -r -A -B CURRENT} on a private socket;
 * the backup records the next bitmap's name; only after it committed are the current bitmap and the next bitmaps
 * that failed runs of this chain left behind removed. A failed run leaves both bitmaps: the next run still starts
 * from the current one, which holds every write since the parent backup.
 *
 * <p>The image must not be open elsewhere (a running VM, another qemu-nbd): qemu-img cannot write its bitmaps then.
 */
public final class OfflineRotation {
    /** The label that names the bitmap holding the writes since a backup (shared with the QMP mode). */
    public static final String LABEL = LiveBackup.LABEL_BITMAP;

    private OfflineRotation() {
    }

    /**
     * One offline image of a backup set.
     *
     * @param disk  the disk's name in the repository
     * @param image the qcow2 image
     * @param seed  the bitmap to start from when the disk's last backup records none, or null
     */
    public record Image(String disk, Path image, String seed) {
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

    /**
     * Backs up {@code images} (and {@code others}, NBD exports served by someone else) as one set of {@code vm}:
     * plans each image's bitmaps, serves every image, runs the engine once over all the disks, then retires the old
     * bitmaps of each image whose backup committed. A disk that fails keeps its bitmaps and is reported in its
     * result like any other.
     *
     * @throws UsageException when an incremental is asked for and an image has no bitmap to start from
     */
    public static List<DiskResult> backUp(Repository repo, String vm, List<Image> images, List<DiskJob> others,
                                          BackupMode mode, ClientOptions client, Map<String, String> labels,
                                          String note, EngineOptions options, ProgressListener progress,
                                          Cancellation cancel) throws IOException, InterruptedException {
        List<Plan> plans = new ArrayList<>();
        for (Image im : images) {
            Plan plan = plan(repo, im.image(), vm, im.disk(), im.seed(), progress);
            if (mode == BackupMode.INCREMENTAL && plan.current() == null) {
                throw new UsageException("no bitmap is recorded with the last backup of " + label(vm, im.disk())
                    + " and no bitmap was given to start from (--bitmap, or bitmap: in a job file): start the chain "
                    + "with 'jbackup auto --rotate-bitmap' or a job's mode: auto (a full backup the first time)");
            }
            plans.add(plan);
        }
        List<QemuNbdProcess> servers = new ArrayList<>();
        List<DiskResult> results;
        try {
            List<DiskJob> jobs = new ArrayList<>();
            for (int i = 0; i < images.size(); i++) {
                Image im = images.get(i);
                Plan plan = plans.get(i);
                QemuNbdProcess server = serve(im.image(), plan);
                servers.add(server);
                Map<String, String> l = new LinkedHashMap<>(labels);
                l.put(LABEL, plan.next());
                jobs.add(new DiskJob(vm, im.disk(), server.uri(), client, mode, plan.current(), l, note));
            }
            jobs.addAll(others);
            results = new BackupEngine(repo, options, progress, cancel).run(jobs);
        } finally {
            servers.forEach(QemuNbdProcess::close);
        }
        for (int i = 0; i < images.size(); i++) {
            Image im = images.get(i);
            String label = label(vm, im.disk());
            Plan plan = plans.get(i);
            if (results.get(i).ok()) {
                retire(im.image(), plan, progress, label);
            } else {
                progress.warning(label, "kept the bitmaps of " + im.image() + ": the next run starts again from "
                    + (plan.current() == null ? "a full backup" : plan.current()));
            }
        }
        return results;
    }

    private static String label(String vm, String disk) {
        return vm == null ? disk : vm + "/" + disk;
    }

    /** Works out the current and next bitmaps from the repository and the image ({@code qemu-img info -U}). */
    static Plan plan(Repository repo, Path image, String vm, String disk, String seed, ProgressListener progress)
        throws IOException {
        List<QemuImg.Bitmap> bitmaps = QemuImg.bitmaps(image);
        Optional<BackupInfo> parent = repo.latestComplete(vm, disk);
        String recorded = parent.map(p -> p.labels().get(LABEL)).orElse(null);
        String current = recorded != null ? recorded : seed;
        String repoId = repo.config().id().replace("-", "");
        String prefix = "jbackup-" + repoId.substring(0, Math.min(8, repoId.length())) + "-" + disk + "-";
        long last = 0;
        List<String> stale = new ArrayList<>();
        boolean usable = false;
        for (QemuImg.Bitmap b : bitmaps) {
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
                : String.join(", ", bitmaps.stream().map(QemuImg.Bitmap::name).toList())) + ")");
        }
        return new Plan(current, usable, prefix + (last + 1), List.copyOf(stale));
    }

    /**
     * Adds the next bitmap, then serves the image read-only with {@code qemu-nbd -r -A -t} and, when the current
     * bitmap is usable, {@code -B CURRENT}. Waits until qemu-nbd answers on the socket.
     */
    private static QemuNbdProcess serve(Path image, Plan plan) throws IOException {
        QemuImg.check(image, "bitmap", "--add", "-f", "qcow2", image.toString(), plan.next());
        List<String> args = new ArrayList<>(List.of("-r", "-A", "-t", "-f", "qcow2"));
        if (plan.usable()) {
            args.addAll(List.of("-B", plan.current()));
        }
        args.add(image.toString());
        return QemuNbdProcess.start(QemuNbdProcess.locate(), null, "jbackup-image-", args,
            "qemu-nbd did not start serving " + image, true);
    }

    /**
     * After the backup committed (and qemu-nbd stopped): removes the current bitmap and stale next bitmaps of this
     * chain, so that only the next one records. A bitmap that cannot be removed is reported, not fatal: the backup
     * is safe, and the next run uses the next bitmap whatever else the image holds.
     */
    private static void retire(Path image, Plan plan, ProgressListener progress, String label) {
        List<String> old = new ArrayList<>(plan.stale());
        if (plan.current() != null && !plan.current().equals(plan.next())) {
            old.add(0, plan.current());
        }
        List<String> removed = new ArrayList<>();
        try {
            List<String> present = QemuImg.bitmaps(image).stream().map(QemuImg.Bitmap::name).toList();
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
