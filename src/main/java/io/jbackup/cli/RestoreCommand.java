package io.jbackup.cli;

import io.jbackup.engine.Cancellation;
import io.jbackup.engine.DiskRestore;
import io.jbackup.engine.FileTarget;
import io.jbackup.engine.ProgressListener;
import io.jbackup.engine.RestoreResult;
import io.jbackup.engine.RestoreTarget;
import io.jbackup.engine.RestoreTargetException;
import io.jbackup.error.Causes;
import io.jbackup.error.UsageException;
import io.jbackup.model.BackupInfo;
import io.jbackup.store.BackupReader;
import io.jbackup.store.LockMode;
import io.jbackup.store.Repository;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code jbackup restore}: write the image of a backup to a file, a block device or an NBD export. */
@Command(name = "restore", mixinStandardHelpOptions = true,
    description = "Write the image of a backup to a new raw or qcow2 file (created sparse), an existing file or "
        + "block device, or an NBD export. Every chunk is verified as it is read.")
public final class RestoreCommand implements Callable<Integer> {
    @Mixin
    RepoOptions repo;
    @Mixin
    TlsOptions tls;
    @Mixin
    JsonMixin json;
    @Mixin
    LoggingMixin logging;

    @Option(names = "--disk", paramLabel = "NAME", description = "Disk to restore (all disks of the set with --vm).")
    String disk;

    @Option(names = "--vm", paramLabel = "NAME", description = "VM whose backup set to restore.")
    String vm;

    @Option(names = "--domain", paramLabel = "NAME",
        description = "libvirt domain backed up with --domain: restore every disk of the set into the directory --to "
            + "(DISK.qcow2, or DISK.raw with --format raw) with the domain's XML (NAME.xml) rewritten to point at them, "
            + "and its NVRAM file (NAME_VARS.fd) if it had one.")
    String domain;

    @Option(names = "--define", paramLabel = "NEWNAME",
        description = "With --domain: define the restored domain in libvirt as NEWNAME (new UUID and MAC addresses). "
            + "It is not started unless --start is given.")
    String define;

    @Option(names = "--instant", paramLabel = "SOCKET",
        description = "With --domain: instant recovery. Restore no disk; write the domain XML with each disk an NBD "
            + "source on SOCKET (a 'jbackup serve --writable --socket SOCKET'), export VM/DISK@BACKUP.")
    String instant;

    @Option(names = "--start", description = "With --define: start the restored domain.")
    boolean start;

    @Option(names = "--connect", paramLabel = "URI",
        description = "With --define: libvirt connection URI (default: LIBVIRT_DEFAULT_URI, else qemu:///system).")
    String connect;

    @Option(names = "--backup", paramLabel = "ID|latest|@TIME", defaultValue = "latest",
        description = "Backup id (or unique prefix), 'latest', or '@' + ISO-8601 time for the newest backup at or "
            + "before it (default: ${DEFAULT-VALUE}).")
    String backup;

    @Option(names = "--to", required = true, paramLabel = "TARGET",
        description = "Image file (raw, or qcow2 for a .qcow2 name), block device or NBD URI. With --vm and no "
            + "--disk: a directory, created when missing, that gets DIR/DISK.raw (DISK.qcow2 with --format qcow2) "
            + "per disk, and/or DISK=TARGET, repeated.")
    List<String> targets;

    @Option(names = "--format", paramLabel = "raw|qcow2",
        description = "Image format of a file target (default: qcow2 for a .qcow2 name, else raw). qcow2 is written "
            + "sparse through qemu-img and qemu-nbd (package qemu-utils).")
    String format;

    @Option(names = "--zero", description = "Write zero chunks into a device (it may hold old data there), or into "
        + "an existing file written in place (its blocks stay allocated); without it an existing file is emptied "
        + "first and new files get holes.")
    boolean zero;

    @Option(names = "--force", description = "Replace an existing regular file: the restore goes to a temporary "
        + "file beside it, which takes its place (and its permissions and owner) once complete, so a failed restore "
        + "leaves it as it was; this needs room for the restored data beside it.")
    boolean force;

    @Option(names = "--in-place", description = "With --force: empty the existing file and restore into it (no "
        + "room needed for a second copy; a failed restore leaves it half-written).")
    boolean inPlace;

    @Option(names = "--ignore-errors", description = "Write zeros where a chunk is damaged, list each range, and "
        + "continue (exit 3).")
    boolean ignoreErrors;

    @Option(names = "--read-ahead", paramLabel = "N", defaultValue = "32",
        description = "Chunks fetched and decompressed ahead of the writer (default: ${DEFAULT-VALUE}).")
    int readAhead;

    @Override
    public Integer call() throws Exception {
        RestoreTargets.Format fmt0 = RestoreTargets.Format.parse(format);
        if (domain != null) {
            if (disk != null) {
                throw new UsageException("--domain restores every disk of the backup set: drop --disk (restore one "
                    + "disk with --vm " + domain + " --disk NAME)");
            }
            if (targets.size() != 1 || targets.get(0).contains("=") || targets.get(0).contains("://")) {
                throw new UsageException("--domain needs --to DIR: the directory for the disks and the domain XML");
            }
            vm = vm == null ? domain : vm;
            if (fmt0 == null) {
                format = "qcow2";
            }
        } else if (define != null || start || connect != null || instant != null) {
            throw new UsageException("--define, --start, --connect and --instant need --domain NAME");
        }
        if (start && define == null) {
            throw new UsageException("--start needs --define NEWNAME (the restored domain is defined under a new "
                + "name beside the original)");
        }
        if (disk == null && vm == null) {
            throw new UsageException("name what to restore: --disk NAME, or --vm NAME for a whole backup set");
        }
        if (inPlace && !force) {
            throw new UsageException("--in-place says how --force overwrites an existing file: add --force");
        }
        RestoreTargets.Format fmt = RestoreTargets.Format.parse(format);
        io.jbackup.libvirt.DomainRestore.Result domainResult = null;
        ProgressListener progress = ConsoleProgress.forConsole(json.enabled() || logging.quiet);
        Cancellation cancel = new Cancellation();
        List<RestoreResult> results = new ArrayList<>();
        try (Repository r = repo.open(LockMode.SHARED)) {
            List<BackupInfo> selected = select(r);
            Map<String, RestoreTargets.Plan> plans = RestoreTargets.plan(selected.stream().map(BackupInfo::disk)
                .toList(), targets, disk == null, fmt, this::note);
            io.jbackup.libvirt.Virsh virsh = define == null ? null
                : new io.jbackup.libvirt.Virsh(connect, java.time.Duration.ofSeconds(120));
            if (virsh != null && virsh.exists(define)) {
                // before any disk is written: with --force the files of that domain would be replaced under it
                throw new UsageException("--define " + define + ": domain " + define + " already exists"
                    + (connect == null ? "" : " at " + connect) + "; choose another name, or remove it first ('virsh "
                    + "undefine " + define + "'); nothing was restored");
            }
            if (!zero && instant == null) {
                noteOldDataKept(plans.values());
            }
            Interrupts.run(cancel, "stopping the restore (a new file or qcow2 being written is removed, a file "
                + "being replaced with --force is kept as it was; a device, an NBD export, or a file written with "
                + "--in-place or --zero is left half-written: restore it again)", () -> {
                List<BackupInfo> todo = instant != null ? List.<BackupInfo>of() : selected;
                for (BackupInfo b : todo) {
                    RestoreTargets.Plan plan = plans.get(b.disk());
                    // a device, or an existing raw file with --in-place or --zero, is written in place: a failure
                    // leaves it neither old nor new; an existing file replaced with --force is kept as it was
                    FileTarget.Write how = plan.nbd() || plan.format() != RestoreTargets.Format.RAW
                        ? FileTarget.Write.NEW : FileTarget.how(Path.of(plan.target()), zero, inPlace);
                    int before = results.size();
                    try (BackupReader reader = r.openBackup(b.id(), ignoreErrors);
                         RestoreTarget target = RestoreTargets.open(plan, b.imageSize(), force, zero, inPlace,
                             tls)) {
                        results.add(new DiskRestore(reader, target, ignoreErrors, readAhead, progress, cancel).run());
                    } catch (Exception e) {
                        if (results.size() == before && !(e instanceof io.jbackup.error.UsageException)) {
                            if (how == FileTarget.Write.IN_PLACE) {
                                note(plan.target() + " was being written in place and is now neither its old "
                                    + "content nor the backup; restore again before using it");
                            } else if (how == FileTarget.Write.REPLACED) {
                                note(plan.target() + " is unchanged: the restore went to a temporary file beside "
                                    + "it, now removed" + (Causes.find(e, RestoreTargetException.class).isPresent()
                                    ? " (without room there for a second "
                                    + "copy, --in-place restores into the file itself)" : ""));
                            }
                        }
                        noteDoneBeforeFailure(results, b, todo);
                        throw e;
                    }
                }
                return null;
            });
            if (domain != null) {
                Map<String, io.jbackup.libvirt.DomainXml.RestoredDisk> files = new LinkedHashMap<>();
                for (BackupInfo b : selected) {
                    RestoreTargets.Plan p = plans.get(b.disk());
                    files.put(b.disk(), instant != null
                        ? io.jbackup.libvirt.DomainXml.RestoredDisk.nbd(Path.of(instant)
                            .toAbsolutePath().toString(), b.disk() + "@" + b.id())
                        : new io.jbackup.libvirt.DomainXml.RestoredDisk(Path.of(p.target())
                            .toAbsolutePath().toString(), p.format().text()));
                }
                Files.createDirectories(Path.of(targets.get(0)));
                domainResult = io.jbackup.libvirt.DomainRestore.finish(r, selected, files,
                    Path.of(targets.get(0)), define, virsh, start, this::note);
            }
        }
        boolean damaged = results.stream().anyMatch(x -> !x.damaged().isEmpty());
        if (json.enabled()) {
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("status", damaged ? "partial" : "ok");
            out.put("disks", results);
            if (domainResult != null) {
                out.put("domain", domainResult);
            }
            json.print(out);
        } else if (damaged || !logging.quiet) { // damaged ranges are always listed
            for (RestoreResult x : results) {
                System.out.println(String.format(Locale.ROOT,
                    "%s: restored backup %s to %s (%s): %s image, %s written, %s zero, %.1f s (%.0f MB/s)",
                    x.disk(), x.backupId(), x.target(), x.format(), Sizes.format(x.imageSize()),
                    Sizes.format(x.bytesWritten()), Sizes.format(x.bytesZero()), x.seconds(), x.mbps()));
                for (RestoreResult.DamagedRange d : x.damaged()) {
                    System.out.println("  damaged, written as zeros: offset " + d.offset() + " length " + d.length()
                        + ": " + d.error());
                }
            }
            if (domainResult != null) {
                System.out.println("domain definition: " + domainResult.xml()
                    + (domainResult.nvram() == null ? "" : ", NVRAM: " + domainResult.nvram())
                    + (domainResult.definedAs() == null ? "" : "; defined as " + domainResult.definedAs()
                    + (domainResult.started() ? " and started" : " (start it with: virsh start "
                    + domainResult.definedAs() + ")")));
            }
        }
        return damaged ? ExitCodes.PARTIAL : ExitCodes.OK;
    }

    private List<BackupInfo> select(Repository r) throws IOException {
        return BackupSelection.select(r, vm, disk, backup);
    }

    /**
     * Without {@code --zero}, zero chunks are not written into a block device: whatever it held there stays, and
     * the result differs from the backup unless it read as zeros. Said before anything is written, so a reused
     * device does not silently end up as a mix of the backup and its old content. (An existing regular file is
     * emptied first, {@link io.jbackup.engine.FileTarget}: it needs no note.)
     */
    private void noteOldDataKept(java.util.Collection<RestoreTargets.Plan> plans) throws IOException {
        for (RestoreTargets.Plan p : plans) {
            if (p.nbd() || p.format() != RestoreTargets.Format.RAW) {
                continue;
            }
            Path t = Path.of(p.target());
            boolean device = Files.exists(t) && !Files.isRegularFile(t)
                && !Files.isDirectory(t) && FileTarget.isBlockDevice(t);
            if (device) {
                note(p.target() + " exists: zero chunks of the backup are not written into it, so what it holds "
                    + "there stays; unless it reads as zeros there, pass --zero to get exactly the backup");
            }
        }
    }

    /**
     * A set restore stopped at disk {@code failed}: the disks before it are complete and stay where they are, the
     * ones after it were not started. The error names only the failure, so this says what is where.
     */
    private void noteDoneBeforeFailure(List<RestoreResult> done, BackupInfo failed, List<BackupInfo> all) {
        if (done.isEmpty()) {
            return;
        }
        for (RestoreResult x : done) {
            note(x.disk() + ": restored completely to " + x.target() + " (backup " + x.backupId() + ") before "
                + failed.disk() + " failed");
        }
        List<String> notDone = all.subList(all.indexOf(failed), all.size()).stream().map(BackupInfo::disk).toList();
        note("not restored: " + String.join(", ", notDone) + "; to restore only these, run restore --vm " + vm
            + " --disk NAME for each");
    }

    private void note(String text) {
        if (!logging.quiet) {
            System.err.println("jbackup: note: " + text);
        }
    }
}
