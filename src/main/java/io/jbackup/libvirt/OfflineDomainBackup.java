package io.jbackup.libvirt;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.engine.BackupMode;
import io.jbackup.engine.BackupRefusedException;
import io.jbackup.engine.DiskJob;
import io.jbackup.engine.DiskResult;
import io.jbackup.engine.FallbackReason;
import io.jbackup.engine.QemuImg;
import io.jbackup.engine.QemuNbdProcess;
import io.jbackup.model.BackupInfo;
import io.jbackup.nbd.client.ClientOptions;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The backup of a shut-off domain: each disk's qcow2 is served read-only by {@code qemu-nbd -r -A}, with {@code -B
 * CHECKPOINT} when the image holds the bitmap libvirt keeps for the checkpoint of the disk's newest backup, enabled
 * and not in use (then the backup is incremental, and records that checkpoint again: its bitmap still holds every
 * write since). Without such a bitmap the disk gets a full backup. While jbackup reads, qemu-nbd holds a shared lock
 * on each image, so the domain cannot start until the backup ends.
 */
final class OfflineDomainBackup {
    private final DomainBackup owner;
    private final DomainBackup.Options o;

    OfflineDomainBackup(DomainBackup owner, DomainBackup.Options o) {
        this.owner = owner;
        this.o = o;
    }

    /**
     * @param bitmap     the checkpoint bitmap to read the changes from, or null for a full read
     * @param carry      the checkpoint recorded with the backup: {@code bitmap}, or for a full read the newest
     *                   recording bitmap of this repository's checkpoints in the image (any bitmap that records since
     *                   before the backup holds every write after it), or null
     */
    private record Plan(DomainXml.Disk disk, String label, String bitmap, String carry, String fullReason) {
    }

    List<DiskResult> run(List<DomainXml.Disk> disks, BackupMode mode, ClientOptions client,
                         Map<String, String> labels, String note, Map<String, byte[]> attachments)
        throws IOException, InterruptedException {
        List<Plan> plans = new ArrayList<>();
        for (DomainXml.Disk d : disks) {
            plans.add(plan(d, mode));
        }
        owner.progress().message(o.vm(), "domain " + o.domain() + " is shut off: reading its disk images with "
            + "qemu-nbd (the domain cannot start until this backup ends)");
        List<QemuNbdProcess> served = new ArrayList<>();
        try {
            List<DiskJob> jobs = new ArrayList<>();
            for (Plan p : plans) {
                List<String> args = new ArrayList<>(List.of("-r", "-A", "-t", "-f", "qcow2"));
                if (p.bitmap() != null) {
                    args.addAll(List.of("-B", p.bitmap()));
                }
                args.add(p.disk().source());
                QemuNbdProcess q = QemuNbdProcess.start(QemuNbdProcess.locate(), null, "jbackup-offline-", args,
                    "qemu-nbd did not start serving " + p.disk().source() + " of domain " + o.domain(), true);
                served.add(q);
                jobs.add(new DiskJob(o.vm(), p.disk().target(), q.uri(), client, p.bitmap() == null
                    ? BackupMode.FULL : mode == BackupMode.AUTO ? BackupMode.AUTO : BackupMode.INCREMENTAL,
                    p.bitmap(), DomainBackup.labelsWith(labels, p.carry()), note).withAttachments(attachments));
                owner.progress().message(p.label(), p.bitmap() == null ? "full read" + (p.fullReason() == null
                    ? "" : ": " + p.fullReason()) : "reading the writes since checkpoint " + p.bitmap()
                    + " (bitmap " + p.bitmap() + " of " + p.disk().source() + ")");
            }
            List<DiskResult> results = new ArrayList<>();
            for (DiskResult r : owner.backUp(jobs, io.jbackup.engine.CommitCheck.NONE)) {
                Plan p = plans.stream().filter(x -> x.disk().target().equals(r.disk())).findFirst().orElseThrow();
                results.add(DomainBackup.annotate(r, p.fullReason(), p.fullReason() == null ? null
                    : FallbackReason.CHECKPOINT_LOST));
            }
            return results;
        } finally {
            served.forEach(QemuNbdProcess::close);
        }
    }

    private Plan plan(DomainXml.Disk d, BackupMode mode) throws IOException {
        String label = o.vm() + "/" + d.target();
        if (mode == BackupMode.FULL) {
            return new Plan(d, label, null, newestRecording(Path.of(d.source())), null);
        }
        Optional<BackupInfo> latest = owner.repo().latestComplete(o.vm(), d.target());
        String why;
        if (latest.isEmpty()) {
            why = "there is no complete backup of " + label + " to build on";
        } else {
            String cp = latest.get().labels().get(DomainBackup.LABEL_CHECKPOINT);
            if (cp == null) {
                why = "the newest backup " + latest.get().id() + " of " + label + " records no checkpoint";
            } else {
                why = bitmapProblem(Path.of(d.source()), cp);
                if (why == null) {
                    return new Plan(d, label, cp, cp, null);
                }
            }
        }
        if (mode == BackupMode.INCREMENTAL) {
            throw new BackupRefusedException("cannot back up " + label + " of shut-off domain " + o.domain()
                + " incrementally: " + why + "; run 'jbackup full --domain " + o.domain() + "' (or 'jbackup auto')");
        }
        return new Plan(d, label, null, newestRecording(Path.of(d.source())), why);
    }

    private static List<JsonNode> bitmaps(Path image) throws IOException {
        JsonNode info = new ObjectMapper().readTree(QemuImg.check(image, "info", "--output=json", "--force-share",
            image.toString()));
        List<JsonNode> out = new ArrayList<>();
        info.path("format-specific").path("data").path("bitmaps").forEach(out::add);
        return out;
    }

    /** The newest of this repository's checkpoint bitmaps in {@code image} that records and is not in use. */
    private String newestRecording(Path image) throws IOException {
        String best = null;
        for (JsonNode b : bitmaps(image)) {
            String n = b.path("name").asText();
            List<String> flags = new ArrayList<>();
            b.path("flags").forEach(f -> flags.add(f.asText()));
            if (n.startsWith(owner.checkpointPrefix()) && flags.contains("auto") && !flags.contains("in-use")
                && (best == null || n.compareTo(best) > 0)) {
                best = n;
            }
        }
        return best;
    }

    /** Null when {@code image} holds bitmap {@code name}, recording and not in use; otherwise why not. */
    static String bitmapProblem(Path image, String name) throws IOException {
        for (JsonNode b : bitmaps(image)) {
            if (!name.equals(b.path("name").asText())) {
                continue;
            }
            List<String> flags = new ArrayList<>();
            b.path("flags").forEach(f -> flags.add(f.asText()));
            if (flags.contains("in-use")) {
                return "bitmap " + name + " of " + image + " is marked in-use (QEMU did not close the image "
                    + "cleanly), so it may miss writes";
            }
            if (!flags.contains("auto")) {
                return "bitmap " + name + " of " + image + " is disabled, so it may miss writes";
            }
            return null;
        }
        return "image " + image + " has no bitmap " + name + " (the checkpoint of the newest backup is gone)";
    }
}
