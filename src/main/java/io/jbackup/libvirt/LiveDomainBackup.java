package io.jbackup.libvirt;

import io.jbackup.engine.BackupMode;
import io.jbackup.engine.DiskJob;
import io.jbackup.engine.DiskResult;
import io.jbackup.error.UsageException;
import io.jbackup.model.BackupInfo;
import io.jbackup.store.Owner;
import io.jbackup.nbd.client.ClientOptions;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.Map;
import java.util.stream.Stream;

/**
 * One pull-mode backup of a running domain ({@link DomainBackup} decides the disks). Order of events: private
 * scratch directory; freeze (when asked and the agent answers); {@code backup-begin} with the new checkpoint; thaw
 * (always, on every path); read the exports; {@code domjobabort}; remove the directory; if no disk committed, delete
 * the new checkpoint again (its bitmap merges into the previous one: no write is lost); otherwise delete the
 * checkpoints no incremental needs.
 */
final class LiveDomainBackup {
    private static final Logger LOG = LoggerFactory.getLogger(LiveDomainBackup.class);
    /** Bound of the guest agent's ping in {@link DomainBackup.Quiesce#AUTO}. */
    private static final int AGENT_PING_SECONDS = 2;
    /** Name prefix of the scratch directories. */
    static final String SCRATCH_PREFIX = "jbackup-libvirt-";

    private final DomainBackup owner;
    private final DomainBackup.Options o;
    private final String checkpoint;
    private final List<DomainBackup.Plan> plans;
    private final List<String> others;
    private final BackupMode mode;

    LiveDomainBackup(DomainBackup owner, DomainBackup.Options o, String set, List<DomainBackup.Plan> plans,
                     List<String> others, BackupMode mode) {
        this.mode = mode;
        this.owner = owner;
        this.o = o;
        this.checkpoint = owner.checkpointPrefix() + set;
        this.plans = plans;
        this.others = others;
    }

    List<DiskResult> run(ClientOptions client, Map<String, String> labels, String note,
                         Map<String, byte[]> attachments)
        throws IOException, InterruptedException {
        Virsh virsh = owner.virsh();
        Path dir = scratchDirectory(o.scratchDir());
        boolean begun = false;
        List<DiskResult> results = new ArrayList<>();
        try {
            Path socket = dir.resolve("nbd.sock");
            String backupXml = PullBackupXml.backup(socket, dir, plans.stream()
                .map(p -> new PullBackupXml.Disk(p.disk().target(), p.from())).toList(), others);
            String checkpointXml = PullBackupXml.checkpoint(checkpoint, "jbackup repository "
                + owner.repo().config().id(), plans.stream().map(p -> p.disk().target()).toList(), others);
            boolean freeze = switch (o.quiesce()) {
                case OFF -> false;
                case ON -> {
                    if (!virsh.agentAnswers(o.domain(), 10)) {
                        throw new LibvirtException("--quiesce: the QEMU guest agent of domain " + o.domain()
                            + " does not answer; install and start qemu-guest-agent in the guest (with a "
                            + "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
                            + " in the domain), or run without --quiesce for a crash-consistent backup");
                    }
                    yield true;
                }
                case AUTO -> {
                    boolean answers = virsh.agentAnswers(o.domain(), AGENT_PING_SECONDS);
                    if (!answers) {
                        owner.progress().message(o.vm(), "no guest agent answers: the backup is crash-consistent "
                            + "(the guest's filesystems are not frozen)");
                    }
                    yield answers;
                }
            };
            if (freeze) {
                virsh.freeze(o.domain());
                try {
                    begin(virsh, backupXml, checkpointXml, dir);
                } finally {
                    thaw(virsh);
                }
            } else {
                begin(virsh, backupXml, checkpointXml, dir);
            }
            begun = true;
            for (DomainBackup.Plan p : plans) {
                owner.progress().message(p.label(), "point in time taken: checkpoint " + checkpoint
                    + (freeze ? " (filesystems frozen)" : "") + (p.incremental() ? ", reading the writes since "
                    + p.from() : ", full read" + (p.fullReason() == null ? "" : ": " + p.fullReason())));
            }
            List<DiskJob> jobs = new ArrayList<>();
            for (DomainBackup.Plan p : plans) {
                String t = p.disk().target();
                jobs.add(new DiskJob(o.vm(), t, DomainBackup.exportOf(socket, t), client,
                    !p.incremental() ? BackupMode.FULL
                        : mode == BackupMode.AUTO ? BackupMode.AUTO : BackupMode.INCREMENTAL,
                    p.incremental() ? PullBackupXml.bitmapOf(t) : null,
                    DomainBackup.labelsWith(labels, checkpoint), note).withAttachments(attachments));
            }
            for (DiskResult r : owner.backUp(jobs, this::checkJob)) {
                DomainBackup.Plan p = plans.stream().filter(x -> x.disk().target().equals(r.disk())).findFirst()
                    .orElseThrow();
                results.add(DomainBackup.annotate(r, p.fullReason(), p.fallback()));
            }
        } finally {
            if (begun) {
                endJob(virsh);
            }
            deleteTree(dir);
            // also when interrupted (Ctrl-C, SIGTERM) or failed: results is then empty
            if (begun && results.stream().noneMatch(DiskResult::ok) && !committedWithCheckpoint()) {
                try {
                    virsh.deleteCheckpoint(o.domain(), checkpoint, false);
                } catch (IOException | RuntimeException e) {
                    owner.progress().warning(o.vm(), "no disk was backed up, and deleting the new checkpoint "
                        + checkpoint + " failed: " + e.getMessage() + "; the next run deletes it");
                }
            }
        }
        if (begun && results.stream().anyMatch(DiskResult::ok)) {
            owner.retireCheckpoints(o, checkpoint);
        }
        return results;
    }

    /**
     * {@code backup-begin}. When libvirt refuses it and a directory on the way to the scratch directory is closed to
     * others (QEMU runs as another user, {@code libvirt-qemu} on Debian, and cannot create the socket and scratch
     * files there), the message says so and names the way out.
     */
    private void begin(Virsh virsh, String backupXml, String checkpointXml, Path dir) throws IOException {
        try {
            virsh.backupBegin(o.domain(), backupXml, checkpointXml, dir);
        } catch (LibvirtException e) {
            if (e.getClass() != LibvirtException.class) {
                throw e; // busy, unreachable: their own messages
            }
            Optional<Path> closed = closedToOthers(dir.getParent());
            if (closed.isEmpty()) {
                throw e;
            }
            throw new LibvirtException(e.getMessage() + "; " + closed.get() + " is closed to other users, so QEMU "
                + "(which runs as its own user, libvirt-qemu on Debian) may not reach the scratch directory under it: "
                + "give --scratch-dir a directory it can enter (the default /var/tmp is)", e);
        }
    }

    /** The first directory from the root down to {@code dir} that others cannot enter (no {@code o+x}), if any. */
    static Optional<Path> closedToOthers(Path dir) {
        Path p = dir.toAbsolutePath();
        for (int i = 0; i <= p.getNameCount(); i++) {
            Path d = i == 0 ? p.getRoot() : p.getRoot().resolve(p.subpath(0, i));
            try {
                if (!Files.getPosixFilePermissions(d).contains(java.nio.file.attribute.PosixFilePermission
                    .OTHERS_EXECUTE)) {
                    return Optional.of(d);
                }
            } catch (IOException | UnsupportedOperationException e) {
                return Optional.empty();
            }
        }
        return Optional.empty();
    }

    /** Whether some disk committed a backup that records the new checkpoint (an interruption after its commit). */
    private boolean committedWithCheckpoint() {
        try {
            return owner.repo().listBackups().stream().anyMatch(b -> BackupInfo.COMPLETE.equals(b.state())
                && checkpoint.equals(b.labels().get(DomainBackup.LABEL_CHECKPOINT)));
        } catch (IOException | RuntimeException e) {
            LOG.debug("listing the backups of {} failed", o.vm(), e);
            return true; // keep the checkpoint: a committed backup may need it
        }
    }

    /**
     * Before a disk commits: libvirt must still report the backup job, so the export held the point in time for the
     * whole read (libvirtd gone, or the job ended by someone else: the disk is not committed).
     */
    private void checkJob(DiskJob job) throws IOException {
        String what = "disk " + job.disk() + " of domain " + o.domain() + " was not committed";
        String active;
        try {
            active = owner.virsh().activeJob(o.domain());
        } catch (LibvirtException e) {
            throw new LibvirtException(what + ": libvirt cannot confirm that the backup job still held the point in "
                + "time (" + e.getMessage() + "); run the backup again once libvirt is back", e);
        }
        if (active == null || !active.toLowerCase(java.util.Locale.ROOT).contains("backup")) {
            throw new LibvirtException(what + ": the backup job of the domain ended before the disk was read "
                + "completely (" + (active == null ? "no job" : active) + "); run the backup again");
        }
    }

    private void thaw(Virsh virsh) {
        for (int attempt = 1; ; attempt++) {
            try {
                virsh.thaw(o.domain());
                return;
            } catch (IOException | RuntimeException e) {
                if (attempt >= 3) {
                    owner.progress().warning(o.vm(), "THAWING THE GUEST'S FILESYSTEMS FAILED: " + e.getMessage()
                        + "; run 'virsh domfsthaw " + o.domain() + "' now");
                    return;
                }
                LOG.warn("thawing {} failed (attempt {}): {}", o.domain(), attempt, e.getMessage());
            }
        }
    }

    private void endJob(Virsh virsh) {
        try {
            if (virsh.activeJob(o.domain()) != null) {
                virsh.abortJobAndWait(o.domain());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (IOException | RuntimeException e) {
            owner.progress().warning(o.vm(), "ending the backup job of domain " + o.domain() + " failed: "
                + e.getMessage() + "; end it with 'virsh domjobabort " + o.domain() + "'");
        }
    }

    /**
     * A new private directory for the NBD socket and the scratch files: QEMU (user {@code libvirt-qemu} on Debian)
     * creates them, so it may write and enter it (mode 0733: others cannot list it).
     */
    static Path scratchDirectory(Path parent) throws IOException {
        Path base = parent != null ? parent : Path.of("/var/tmp");
        if (!Files.isDirectory(base)) {
            throw new UsageException("--scratch-dir " + base + " is not a directory");
        }
        Path dir = Files.createTempDirectory(base, SCRATCH_PREFIX);
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx-wx-wx"));
        Files.writeString(dir.resolve(OWNER), Owner.current().id());
        return dir;
    }

    /** The file in a scratch directory that names the jbackup process that made it ({@link Owner#id()}). */
    static final String OWNER = "jbackup.owner";

    /**
     * The jbackup process that made scratch directory {@code dir}, if it is known to be gone: it was killed
     * (SIGKILL, the OOM killer) and left its backup job running. A directory without a readable owner file is not
     * judged: it may be another program's.
     */
    static Optional<Owner> deadOwner(Path dir) {
        try {
            return Owner.parse(Files.readString(dir.resolve(OWNER)).strip()).filter(Owner::knownDead);
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    /**
     * Removes the scratch directory. libvirt deletes its scratch files itself when the job ends, possibly while this
     * walks the directory: a file that vanishes is fine, and the walk is tried again.
     */
    static void deleteTree(Path dir) {
        for (int attempt = 1; ; attempt++) {
            try (Stream<Path> s = Files.walk(dir)) {
                for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
                return;
            } catch (java.nio.file.NoSuchFileException e) {
                if (!Files.exists(dir)) {
                    return;
                }
            } catch (IOException | java.io.UncheckedIOException e) {
                if (attempt >= 5) {
                    LOG.warn("could not remove {}: {}", dir, e.getMessage());
                    return;
                }
            }
            if (attempt >= 5) {
                LOG.warn("could not remove {}", dir);
                return;
            }
            try {
                Thread.sleep(100L * attempt);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
