package io.jbackup.libvirt;

import io.jbackup.engine.BackupEngine;
import io.jbackup.engine.BackupMode;
import io.jbackup.engine.BackupRefusedException;
import io.jbackup.engine.Cancellation;
import io.jbackup.engine.CommitCheck;
import io.jbackup.engine.DiskJob;
import io.jbackup.engine.DiskResult;
import io.jbackup.engine.EngineOptions;
import io.jbackup.engine.FallbackReason;
import io.jbackup.engine.ProgressListener;
import io.jbackup.error.UsageException;
import io.jbackup.model.BackupInfo;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdUri;
import io.jbackup.store.FileMutex;
import io.jbackup.store.Owner;
import io.jbackup.store.Repository;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Backs up the disks of a libvirt domain by its name.
 *
 * <p><b>Running domain</b> (libvirt's backup API in pull mode): decide each disk (full, or the changes since the
 * checkpoint of its newest backup); freeze the guest's filesystems when the guest agent answers; {@code
 * backup-begin} with a new checkpoint; thaw; read every disk over NBD from the job's private unix socket
 * ({@code qemu:dirty-bitmap:backup-DISK} for an incremental disk, {@code base:allocation} for a full one); end the
 * job ({@code domjobabort}); remove the scratch directory; delete the checkpoints no incremental needs any more.
 *
 * <p><b>Shut-off domain</b>: each disk's qcow2 is served read-only with {@code qemu-nbd -r -A}, with {@code -B
 * CHECKPOINT} when the image still holds the recording bitmap libvirt keeps for the checkpoint of the disk's newest
 * backup. No checkpoint is created (libvirt cannot create one for an inactive domain): the backup records the
 * checkpoint it read from, whose bitmap still holds every write since, so the next backup builds on it.
 *
 * <p><b>Checkpoints</b> are named {@code jbackup-REPO8-SET}: REPO8 is the start of the repository's id (two
 * repositories backing up one domain never touch each other's checkpoints), SET the id shared by the disks' backups
 * of one run (label {@code set}). Each backup records its checkpoint in label {@value #LABEL_CHECKPOINT}.
 */
public final class DomainBackup {
    private static final Logger LOG = LoggerFactory.getLogger(DomainBackup.class);
    /** Label naming the checkpoint whose bitmap holds every write since the backup. */
    public static final String LABEL_CHECKPOINT = "jbackup.checkpoint";
    /** Label naming the libvirt domain a backup was taken from. */
    public static final String LABEL_DOMAIN = "jbackup.domain";
    private static final DateTimeFormatter SET_TIME = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss")
        .withZone(ZoneOffset.UTC);

    /** Whether to freeze the guest's filesystems: when the agent answers, always (fail without one), never. */
    public enum Quiesce { AUTO, ON, OFF }

    /**
     * What to back up.
     *
     * @param domain       the domain's name
     * @param vm           the VM name in the repository (default: the domain's name)
     * @param excluded     disk targets left out
     * @param quiesce      freeze the guest's filesystems
     * @param scratchDir   parent of the private directory for the NBD socket and scratch files (QEMU's user must be
     *                     able to write there), or null for {@code /var/tmp}
     */
    public record Options(String domain, String vm, Set<String> excluded, Quiesce quiesce, Path scratchDir) {
        public Options {
            if (domain == null || domain.isBlank()) {
                throw new UsageException("name the domain: --domain NAME");
            }
            excluded = excluded == null ? Set.of() : Set.copyOf(excluded);
            quiesce = quiesce == null ? Quiesce.AUTO : quiesce;
            vm = vm == null ? domain : vm;
        }
    }

    /** One disk's plan. */
    record Plan(DomainXml.Disk disk, String label, String from, String fullReason, FallbackReason fallback) {
        boolean incremental() {
            return from != null;
        }
    }

    private final Repository repo;
    private final Virsh virsh;
    private final EngineOptions options;
    private final ProgressListener progress;
    private final Cancellation cancel;

    public DomainBackup(Repository repo, Virsh virsh, EngineOptions options, ProgressListener progress,
                        Cancellation cancel) {
        this.repo = repo;
        this.virsh = virsh;
        this.options = options;
        this.progress = progress;
        this.cancel = cancel;
    }

    /** The checkpoint-name prefix of this repository. */
    String checkpointPrefix() {
        String id = repo.config().id().replace("-", "");
        return "jbackup-" + id.substring(0, Math.min(8, id.length())) + "-";
    }

    /**
     * Backs up the domain's disks as one set. Returns each disk's result (a disk that fails does not stop the
     * others); throws when nothing could start (no such domain, libvirt unreachable, a job running, a refused
     * incremental).
     */
    public List<DiskResult> run(Options given, BackupMode mode, ClientOptions client, Map<String, String> labels,
                                String note) throws IOException, InterruptedException {
        String state = virsh.state(given.domain());
        boolean running = state.equals("running") || state.equals("paused") || state.equals("pmsuspended");
        String inactiveXml = virsh.dumpXml(given.domain(), true);
        Options o = byName(given, DomainXml.parse(inactiveXml).name());
        DomainXml live = DomainXml.parse(running ? virsh.dumpXml(o.domain(), false) : inactiveXml);
        List<DomainXml.Disk> chosen = new ArrayList<>();
        List<String> others = new ArrayList<>();
        List<DiskResult> skipped = new ArrayList<>(); // data disks it cannot back up: the run is partial (exit 3)
        for (DomainXml.Disk d : live.disks()) {
            if (d.target() == null) {
                continue;
            }
            if (o.excluded().contains(d.target())) {
                progress.message(o.vm() + "/" + d.target(), "left out (--exclude-disk)");
                others.add(d.target());
                continue;
            }
            Optional<String> why = d.unsupported();
            if (why.isPresent()) {
                if ("disk".equals(d.device())) {
                    // a disk of the guest's data that is not backed up must not pass as a success (cron, -q)
                    skipped.add(DiskResult.notBackedUp(o.vm(), d.target(), DiskResult.SKIPPED, "skipped: " + why.get()
                        + "; it is not in this backup (leave it out knowingly with --exclude-disk " + d.target()
                        + ", in a job file libvirt: {excludeDisks: [" + d.target() + "]})", null));
                } else {
                    progress.message(o.vm() + "/" + d.target(), "skipped: " + why.get());
                }
                others.add(d.target());
                continue;
            }
            chosen.add(d);
        }
        for (String x : o.excluded()) {
            if (live.disks().stream().noneMatch(d -> x.equals(d.target()))) {
                throw new UsageException("--exclude-disk " + x + ": domain " + o.domain() + " has no disk " + x
                    + " (its disks: " + String.join(", ", live.disks().stream().map(DomainXml.Disk::target)
                    .toList()) + ")");
            }
        }
        if (chosen.isEmpty()) {
            throw new UsageException("domain " + o.domain() + " has no disk jbackup can back up (qcow2 file or "
                + "block disks)" + (skipped.isEmpty() ? "; see the messages above" : ": " + String.join("; ",
                skipped.stream().map(s -> s.disk() + " " + s.reason()).toList())));
        }
        String set = SET_TIME.format(Instant.now()) + "-" + HexFormat.of().formatHex(randomBytes());
        String description = note == null ? (running ? "live" : "offline") + " backup of domain " + o.domain()
            : note;
        List<FileMutex> locks = BackupEngine.lockDisks(repo, options, cancel, chosen.stream()
            .map(d -> new BackupEngine.DiskKey(o.vm(), d.target())).toList(), mode.name().toLowerCase(Locale.ROOT)
            + " backup of domain " + o.domain(), description);
        try {
            if (running) {
                checkNoJob(o);
            }
            Map<String, byte[]> attachments = attachments(live, inactiveXml, o);
            Map<String, String> l = new LinkedHashMap<>(labels);
            l.put("set", set);
            l.put(LABEL_DOMAIN, o.domain());
            List<DiskResult> results = new ArrayList<>();
            if (running) {
                List<String> checkpoints = virsh.checkpoints(o.domain());
                Map<String, Set<String>> intact = new HashMap<>();
                List<Plan> plans = new ArrayList<>();
                for (DomainXml.Disk d : chosen) {
                    plans.add(plan(o, d, mode, checkpoints, intact));
                }
                results.addAll(new LiveDomainBackup(this, o, set, plans, others, mode).run(client, l, note,
                    attachments));
            } else {
                results.addAll(new OfflineDomainBackup(this, o).run(chosen, mode, client, l, note, attachments));
            }
            results.addAll(skipped);
            return results;
        } finally {
            locks.forEach(FileMutex::close);
        }
    }

    /**
     * {@code o} with the domain's name in place of the id or UUID it was given by (virsh takes all three): the VM name
     * in the repository, and the checkpoints this run keeps or deletes, follow the name, so a run by id or UUID
     * continues the chain of the runs by name instead of starting one under another VM (and deleting the checkpoint
     * that chain needs). A {@code --vm} given stays.
     */
    private Options byName(Options o, String name) {
        if (name == null || name.isEmpty() || name.equals(o.domain())) {
            return o;
        }
        Options named = new Options(name, o.vm().equals(o.domain()) ? null : o.vm(), o.excluded(), o.quiesce(),
            o.scratchDir());
        progress.message(named.vm(), "domain " + o.domain() + " is " + name);
        return named;
    }

    /**
     * Refuses when a job runs on the domain, except a backup job that a killed jbackup run left behind (its socket
     * is in a jbackup scratch directory that no longer exists, or whose owner process is gone): that one is ended,
     * its scratch directory removed, and the run goes on.
     */
    private void checkNoJob(Options o) throws IOException {
        String job = virsh.activeJob(o.domain());
        if (job == null) {
            return;
        }
        if (job.toLowerCase(Locale.ROOT).contains("backup")) {
            String socket = virsh.backupSocket(o.domain());
            Path dir = socket == null ? null : Path.of(socket).getParent();
            if (dir != null && dir.getFileName().toString().startsWith(LiveDomainBackup.SCRATCH_PREFIX)) {
                Optional<Owner> dead = LiveDomainBackup.deadOwner(dir);
                if (java.nio.file.Files.exists(dir) && dead.isEmpty()) {
                    throw busy(o, job);
                }
                progress.warning(o.vm(), "ending the backup job that an interrupted jbackup run left on domain "
                    + o.domain() + (dead.isPresent() ? " (the process that began it, " + dead.get().pid() + " on "
                    + dead.get().host() + ", no longer runs)" : " (its socket " + socket + " is gone)"));
                try {
                    virsh.abortJobAndWait(o.domain());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new java.io.InterruptedIOException("interrupted while domain " + o.domain()
                        + "'s stale backup job ended");
                }
                LiveDomainBackup.deleteTree(dir);
                return;
            }
        }
        throw busy(o, job);
    }

    private static DomainBusyException busy(Options o, String job) {
        return new DomainBusyException("domain " + o.domain() + " has a job running (" + job + "): is another "
            + "backup of it under way (jbackup with another repository, or another tool), or a migration? Nothing "
            + "was changed; run again when it has ended ('virsh domjobinfo " + o.domain() + "'). Only if nothing "
            + "runs it any more, end it with 'virsh domjobabort " + o.domain() + "' (that also ends a running "
            + "backup)");
    }

    /**
     * What every disk's backup stores beside its image: the domain's persistent definition ({@value
     * DomainRestore#XML}) and its NVRAM file ({@value DomainRestore#NVRAM}) when it has one.
     */
    private Map<String, byte[]> attachments(DomainXml live, String inactiveXml, Options o) throws IOException {
        Map<String, byte[]> m = new LinkedHashMap<>();
        m.put(DomainRestore.XML, inactiveXml.getBytes(java.nio.charset.StandardCharsets.UTF_8));
        String nvram = live.nvram();
        if (nvram != null) {
            Path p = Path.of(nvram);
            if (java.nio.file.Files.isReadable(p)) {
                m.put(DomainRestore.NVRAM, java.nio.file.Files.readAllBytes(p));
            } else {
                progress.warning(o.vm(), "the NVRAM file " + nvram + " of domain " + o.domain() + " cannot be read; "
                    + "the backup holds the domain's XML without it");
            }
        }
        return m;
    }

    private static byte[] randomBytes() {
        byte[] b = new byte[3];
        ThreadLocalRandom.current().nextBytes(b);
        return b;
    }

    /**
     * Full or incremental for one disk of a running domain, and why. {@code intact} caches, per checkpoint, the disks
     * whose bitmap libvirt reports intact ({@link Virsh#checkpointIntactDisks}).
     */
    Plan plan(Options o, DomainXml.Disk d, BackupMode mode, List<String> checkpoints,
              Map<String, Set<String>> intact) throws IOException {
        String label = o.vm() + "/" + d.target();
        if (mode == BackupMode.FULL) {
            return new Plan(d, label, null, null, null);
        }
        Optional<BackupInfo> latest = repo.latestComplete(o.vm(), d.target());
        String why;
        FallbackReason fallback;
        String from = null;
        if (latest.isEmpty()) {
            why = "there is no complete backup of " + label + " to build on";
            fallback = FallbackReason.NO_PARENT;
        } else {
            String cp = latest.get().labels().get(LABEL_CHECKPOINT);
            if (cp == null) {
                why = "the newest backup " + latest.get().id() + " of " + label + (latest.get().labels()
                    .containsKey(LABEL_DOMAIN) ? " records no checkpoint (it was read from the shut-off domain's "
                    + "image, which held no bitmap of a checkpoint of this repository)"
                    : " was not taken through libvirt (it records no checkpoint)");
                fallback = FallbackReason.CHECKPOINT_LOST;
            } else if (!checkpoints.contains(cp)) {
                why = "domain " + o.domain() + " has lost checkpoint " + cp + " of backup " + latest.get().id()
                    + " (the domain was redefined or migrated, or the host crashed), so no bitmap holds the writes "
                    + "since";
                fallback = FallbackReason.CHECKPOINT_LOST;
            } else if (!intactDisks(o, cp, intact).contains(d.target())) {
                why = "the bitmap of checkpoint " + cp + " (backup " + latest.get().id() + ") on disk " + d.target()
                    + " is missing or inconsistent (QEMU was killed or the host crashed before it saved the bitmap, "
                    + "or it was removed from the image), so no bitmap holds the writes since";
                fallback = FallbackReason.CHECKPOINT_LOST;
            } else {
                return new Plan(d, label, cp, null, null);
            }
        }
        if (mode == BackupMode.INCREMENTAL) {
            throw new BackupRefusedException("cannot back up " + label + " incrementally: " + why
                + "; run 'jbackup full --domain " + o.domain() + "' (or 'jbackup auto', which makes a full backup "
                + "then)");
        }
        return new Plan(d, label, from, why, fallback);
    }

    private Set<String> intactDisks(Options o, String checkpoint, Map<String, Set<String>> intact)
        throws IOException {
        Set<String> disks = intact.get(checkpoint);
        if (disks == null) {
            disks = virsh.checkpointIntactDisks(o.domain(), checkpoint);
            intact.put(checkpoint, disks);
        }
        return disks;
    }

    /**
     * Deletes this repository's checkpoints of the domain that no incremental needs any more: all but those
     * recorded with the newest complete backup of each disk of the VM, or of another VM's disk backed up from the
     * domain (label {@value #LABEL_DOMAIN}; an earlier {@code --vm}), and {@code keep}. Deleting a checkpoint
     * merges its bitmap into the one before, so no write is lost. Failures are reported, not fatal.
     */
    void retireCheckpoints(Options o, String keep) {
        try {
            List<String> ours = virsh.checkpoints(o.domain()).stream().filter(c -> c.startsWith(checkpointPrefix()))
                .toList();
            if (ours.isEmpty()) {
                return;
            }
            java.util.Set<String> needed = new java.util.HashSet<>();
            if (keep != null) {
                needed.add(keep);
            }
            // every chain on this domain: this VM's, and another VM's taken from the domain (an earlier --vm)
            Map<String, BackupInfo> newest = new HashMap<>();
            for (BackupInfo b : repo.listBackups()) {
                if ((o.vm().equals(b.vm()) || o.domain().equals(b.labels().get(LABEL_DOMAIN)))
                    && BackupInfo.COMPLETE.equals(b.state())) {
                    newest.merge(b.vm() + "/" + b.disk(), b, (x, y) -> x.created().isAfter(y.created()) ? x : y);
                }
            }
            for (BackupInfo b : newest.values()) {
                String cp = b.labels().get(LABEL_CHECKPOINT);
                if (cp != null) {
                    needed.add(cp);
                }
            }
            List<String> deleted = new ArrayList<>();
            for (String c : ours) {
                if (!needed.contains(c)) {
                    try {
                        virsh.deleteCheckpoint(o.domain(), c, false);
                        deleted.add(c);
                    } catch (LibvirtConnectionException e) {
                        throw e;
                    } catch (IOException | RuntimeException e) {
                        // one that cannot be deleted (e.g. its bitmap was removed from an image by hand) must not
                        // keep the others: each would cost a bitmap on every disk, one more every run
                        LOG.debug("deleting checkpoint {} of {} failed", c, o.domain(), e);
                        if (deleteBroken(o, c)) {
                            deleted.add(c);
                            continue;
                        }
                        progress.warning(o.vm(), "could not delete old checkpoint " + c + " of domain "
                            + o.domain() + ": " + e.getMessage() + "; no incremental needs it: if this repeats, "
                            + "remove it by hand ('virsh checkpoint-delete " + o.domain() + " " + c + " --metadata'"
                            + ", then 'qemu-img bitmap --remove IMAGE " + c + "' on the shut-off domain's images "
                            + "that still hold the bitmap)");
                    }
                }
            }
            if (!deleted.isEmpty()) {
                progress.message(o.vm(), "deleted checkpoint" + (deleted.size() == 1 ? " " : "s ")
                    + String.join(", ", deleted) + " of domain " + o.domain() + " (no incremental needs "
                    + (deleted.size() == 1 ? "it" : "them") + ")");
            }
        } catch (IOException | RuntimeException e) {
            LOG.debug("retiring checkpoints of {} failed", o.domain(), e);
            progress.warning(o.vm(), "could not delete old checkpoints of domain " + o.domain() + ": "
                + e.getMessage() + "; they cost a bitmap each until the next run deletes them");
        }
    }

    /**
     * Deletes the metadata of checkpoint {@code c} that libvirt could not delete, when none of its disks has an intact
     * bitmap (QEMU never saved them, or they were removed): there is then nothing to merge and no bitmap to leave
     * behind. Returns whether it did; a checkpoint with an intact bitmap on some disk is left alone.
     */
    private boolean deleteBroken(Options o, String c) {
        try {
            if (!virsh.checkpointIntactDisks(o.domain(), c).isEmpty()) {
                return false;
            }
            virsh.deleteCheckpoint(o.domain(), c, true);
            return true;
        } catch (IOException | RuntimeException e) {
            LOG.debug("deleting the metadata of checkpoint {} of {} failed", c, o.domain(), e);
            return false;
        }
    }

    /** Runs the jobs with the disks' locks held; {@code check} before each disk commits. */
    List<DiskResult> backUp(List<DiskJob> jobs, CommitCheck check) throws InterruptedException {
        return new BackupEngine(repo, options, progress, cancel, check).runLocked(jobs);
    }

    /** {@code r} with the reason a full backup was made instead of an incremental. */
    static DiskResult annotate(DiskResult r, String why, FallbackReason fallback) {
        if (!r.ok() || why == null || !"full".equals(r.type())) {
            return r;
        }
        return new DiskResult(r.vm(), r.disk(), r.status(), r.backupId(), r.type(), r.parentId(),
            "full backup: " + why, fallback, r.bitmapsOffered(), r.imageSize(), r.bytesRead(), r.bytesNew(),
            r.bytesDedup(), r.bytesZero(), r.bytesStored(), r.seconds(), r.readMBps(), r.retries(), r.error());
    }

    static NbdUri exportOf(Path socket, String target) {
        return NbdUri.unix(socket, target, false);
    }

    Repository repo() {
        return repo;
    }

    Virsh virsh() {
        return virsh;
    }

    ProgressListener progress() {
        return progress;
    }

    Cancellation cancel() {
        return cancel;
    }

    static Map<String, String> labelsWith(Map<String, String> labels, String checkpoint) {
        Map<String, String> l = new HashMap<>(labels);
        if (checkpoint != null) {
            l.put(LABEL_CHECKPOINT, checkpoint);
        }
        return l;
    }
}
