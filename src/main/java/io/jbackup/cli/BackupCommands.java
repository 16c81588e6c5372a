package io.jbackup.cli;

import io.jbackup.engine.BackupEngine;
import io.jbackup.engine.BackupMode;
import io.jbackup.engine.Cancellation;
import io.jbackup.engine.DiskJob;
import io.jbackup.engine.DiskResult;
import io.jbackup.engine.EngineOptions;
import io.jbackup.engine.LiveBackup;
import io.jbackup.engine.LiveSource;
import io.jbackup.engine.OfflineRotation;
import io.jbackup.engine.ProgressListener;
import io.jbackup.libvirt.DomainBackup;
import io.jbackup.error.UsageException;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdUri;
import io.jbackup.store.LockMode;
import io.jbackup.store.Repository;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code jbackup full | incremental | auto}: back up disks from NBD exports. */
public final class BackupCommands {
    private BackupCommands() {
    }

    /** Options and behaviour shared by the three backup commands. */
    abstract static class Base implements Callable<Integer> {
        @Mixin
        RepoOptions repo;
        @Mixin
        TlsOptions tls;
        @Mixin
        JsonMixin json;
        @Mixin
        LoggingMixin logging;
        @Mixin
        LiveOptions live;
        @Mixin
        DomainOptions domain;

        @Option(names = "--source", paramLabel = "[DISK=]URI",
            description = "NBD export to back up: nbd://host[:port]/export, nbd+unix:///export?socket=PATH, nbds://..."
                + " Repeat as DISK=URI for several disks of one VM (backed up in parallel as one set).")
        List<String> sources;

        @Option(names = "--disk", paramLabel = "NAME", description = "Disk name when one --source is given without DISK=.")
        String disk;

        @Option(names = "--vm", paramLabel = "NAME", description = "VM (backup set) the disks belong to.")
        String vm;

        @Option(names = "--label", paramLabel = "KEY=VALUE", description = "Label recorded with the backup (repeatable).")
        Map<String, String> labels = new LinkedHashMap<>();

        @Option(names = "--note", paramLabel = "TEXT", description = "Free-text note recorded with the backup.")
        String note;

        @Option(names = "--connections", paramLabel = "N",
            description = "NBD connections per disk, used when the server advertises multi-conn (default: half the "
                + "cores, 1 to 4; on 2 cores one connection is as fast as four).")
        Integer connections;

        @Option(names = "--buffer-size", paramLabel = "MiB", defaultValue = "32",
            description = "Memory for chunk data in flight per disk, in MiB (default: ${DEFAULT-VALUE}).")
        int bufferMiB;

        @Option(names = "--retries", paramLabel = "N", defaultValue = "5",
            description = "Reconnect attempts after a dropped or silent NBD connection, counted since the backup last "
                + "made progress; then the backup fails with exit code 4 (default: ${DEFAULT-VALUE}).")
        int retries;

        @Option(names = "--timeout", paramLabel = "SECONDS", defaultValue = "120",
            description = "Longest wait for the NBD server's reply to one request (and for its handshake, at most "
                + "30 s); a server silent that long counts as a dropped connection: jbackup reconnects (see "
                + "--retries) and then fails with exit code 4 (default: ${DEFAULT-VALUE}).")
        long timeoutSeconds;

        abstract BackupMode mode();

        /**
         * {@code co} with {@code --timeout} as the request timeout, and as the connect and handshake timeouts when
         * shorter than their defaults (10 s, 30 s).
         */
        ClientOptions withTimeout(ClientOptions co) {
            if (timeoutSeconds < 1 || timeoutSeconds > 86_400) {
                throw new UsageException("--timeout " + timeoutSeconds + " (expected: 1 .. 86400 seconds)");
            }
            return co.withTimeout(Duration.ofSeconds(timeoutSeconds));
        }

        abstract Map<String, String> bitmaps();

        @Override
        public Integer call() throws Exception {
            if (domain.enabled()) {
                return callDomain();
            }
            domain.checkUnused();
            if (live.enabled()) {
                return callLive();
            }
            live.checkUnused();
            List<DiskJob> jobs = jobs();
            EngineOptions eo = engineOptions();
            ProgressListener progress = progress();
            Cancellation cancel = new Cancellation();
            // the repository closes inside Interrupts.run: after Ctrl-C it is closed (its lock record and tmp/
            // removed) before the process exits
            List<DiskResult> results = Interrupts.run(cancel, () -> {
                try (Repository r = repo.open(LockMode.SHARED)) {
                    return backUp(r, jobs, eo, progress, cancel);
                }
            });
            return report(results);
        }

        /** Runs the jobs (with the repository open); {@code --rotate-bitmap} runs its own. */
        List<DiskResult> backUp(Repository r, List<DiskJob> jobs, EngineOptions eo, ProgressListener progress,
                                Cancellation cancel) throws Exception {
            return new BackupEngine(r, eo, progress, cancel).run(jobs);
        }

        /** {@code --qmp}: jbackup makes the export and manages the bitmaps ({@link LiveBackup}). */
        private int callLive() throws Exception {
            if (sources != null && !sources.isEmpty()) {
                throw new UsageException("--source and --qmp exclude each other: with --qmp, jbackup makes "
                    + "the NBD export itself (give the disks with --node or --device)");
            }
            if (!bitmaps().isEmpty()) {
                throw new UsageException("--bitmap is not used with --qmp: jbackup adds, exports and retires "
                    + "its own dirty bitmaps");
            }
            LiveSource src = live.source(disk);
            ClientOptions co = withTimeout(ClientOptions.defaults().withTls(tls.toConfig(false))
                .withConnections(connections()));
            EngineOptions eo = engineOptions();
            ProgressListener progress = progress();
            Cancellation cancel = new Cancellation();
            List<DiskResult> results = Interrupts.run(cancel, () -> {
                try (Repository r = repo.open(LockMode.SHARED)) {
                    return new LiveBackup(r, eo, progress, cancel).run(src, vm, mode(), co, labels, note);
                }
            });
            return report(results);
        }

        /** {@code --domain}: a libvirt domain by its name ({@link DomainBackup}). */
        private int callDomain() throws Exception {
            if (live.enabled() || (sources != null && !sources.isEmpty()) || !bitmaps().isEmpty() || disk != null) {
                throw new UsageException("--domain backs up the domain's disks itself: drop --source, --qmp, "
                    + "--bitmap and --disk (leave disks out with --exclude-disk)");
            }
            rejectImage();
            DomainBackup.Options o = domain.options(vm, live.scratchDir);
            io.jbackup.libvirt.Virsh virsh = domain.virsh();
            ClientOptions co = withTimeout(ClientOptions.defaults().withConnections(connections()));
            EngineOptions eo = engineOptions();
            ProgressListener progress = progress();
            Cancellation cancel = new Cancellation();
            List<DiskResult> results = Interrupts.run(cancel, () -> {
                try (Repository r = repo.open(LockMode.SHARED)) {
                    return new DomainBackup(r, virsh, eo, progress, cancel).run(o, mode(), co, labels, note);
                }
            });
            return report(results);
        }

        /** Refuses the options of another source mode ({@code --image} of the offline rotation). */
        void rejectImage() {
        }

        /** --buffer-size, --retries and --wait-lock. */
        EngineOptions engineOptions() {
            return EngineOptions.defaults().withBufferBytes((long) bufferMiB << 20)
                .withRetries(retries, Duration.ofSeconds(1)).withDiskLockWait(repo.waitLock());
        }

        /** The notes of this command's jobs for its JSON document, with --json. */
        private JsonProgress jsonNotes;

        /** A progress bar on a TTY, nothing with -q; with --json, the notes for the document ({@link JsonProgress}). */
        ProgressListener progress() {
            if (json.enabled()) {
                jsonNotes = new JsonProgress(System.err);
                return jsonNotes;
            }
            return ConsoleProgress.forConsole(logging.quiet);
        }

        /** --connections, defaulting to half the cores (1 to 4), validated. */
        int connections() {
            int n = connections != null ? connections
                : Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors() / 2));
            if (n < 1 || n > 16) {
                throw new UsageException("--connections " + n + " (expected: 1 .. 16)");
            }
            return n;
        }

        List<DiskJob> jobs() {
            if (sources == null || sources.isEmpty()) {
                throw new UsageException("nothing to back up: give --source [DISK=]URI (an NBD export), "
                    + "or --qmp SOCKET with --node/--device (a running VM)");
            }
            int connections = connections();
            List<DiskJob> jobs = new ArrayList<>();
            for (String s : sources) {
                String name = disk;
                String uri = s;
                int eq = s.indexOf('=');
                int scheme = s.indexOf("://");
                if (eq > 0 && (scheme < 0 || eq < scheme)) {
                    name = s.substring(0, eq);
                    uri = s.substring(eq + 1);
                } else if (sources.size() > 1) {
                    throw new UsageException("with several --source options, write each as DISK=URI");
                }
                if (name == null) {
                    throw new UsageException("name the disk: --disk NAME, or --source NAME=URI");
                }
                NbdUri u = NbdUri.parse(uri);
                ClientOptions co = withTimeout(ClientOptions.defaults().withTls(tls.toConfig(u.tls()))
                    .withConnections(connections));
                Map<String, String> bm = bitmaps();
                String bitmap = bm.containsKey(name) ? bm.get(name) : bm.get("");
                jobs.add(new DiskJob(vm, name, u, co, mode(), bitmap, labels, note));
            }
            return jobs;
        }

        int report(List<DiskResult> results) {
            int ok = 0;
            Throwable firstError = null;
            List<String> failures = new ArrayList<>();
            for (DiskResult r : results) {
                if (r.ok()) {
                    ok++;
                } else {
                    firstError = firstError == null ? r.error() : firstError;
                    failures.add(label(r) + ": " + r.reason());
                }
            }
            // auto made a full backup because the bitmap is missing though the disk has a parent: done, but not as
            // asked (every night would silently be a full one), so exit 3
            boolean notAsAsked = results.stream().anyMatch(r -> r.ok() && r.fallbackReason() != null
                && r.fallbackReason().notAsAsked());
            for (DiskResult r : results) { // stderr, with or without --json
                if (!r.ok()) {
                    System.err.println("jbackup: " + (DiskResult.SKIPPED.equals(r.status()) ? "warning" : "error")
                        + ": " + label(r) + ": " + r.reason());
                }
            }
            if (json.enabled()) {
                Map<String, Object> out = new LinkedHashMap<>();
                if (ok == 0) { // every disk failed: the error object of any failed command, plus the disks
                    out.putAll(ErrorHandler.errorJson(ExitCodes.classify(firstError), String.join("; ", failures)));
                } else {
                    out.put("status", ok == results.size() && !notAsAsked ? "ok" : "partial");
                }
                out.put("disks", results);
                if (jsonNotes != null && !jsonNotes.notes().isEmpty()) {
                    out.put("notes", jsonNotes.notes());
                }
                json.print(out);
            } else if (!logging.quiet) {
                for (DiskResult r : results) {
                    if (r.ok()) {
                        System.out.println(String.format(Locale.ROOT,
                            "%s: %s backup %s: %s disk, %s read, %s new, %s deduplicated, %s zero, %s stored, "
                                + "%.1f s (%.0f MB/s)%s",
                            label(r), r.type(), r.backupId(), ConsoleProgress.bytes(r.imageSize()),
                            ConsoleProgress.bytes(r.bytesRead()), ConsoleProgress.bytes(r.bytesNew()),
                            ConsoleProgress.bytes(r.bytesDedup()), ConsoleProgress.bytes(r.bytesZero()),
                            ConsoleProgress.bytes(r.bytesStored()), r.seconds(), r.readMBps(),
                            r.reason() == null ? "" : " [" + r.reason() + "]"));
                    }
                }
            }
            if (ok == results.size()) {
                return notAsAsked ? ExitCodes.PARTIAL : ExitCodes.OK;
            }
            if (ok > 0) {
                return ExitCodes.PARTIAL;
            }
            return ExitCodes.forException(firstError);
        }

        private static String label(DiskResult r) {
            return (r.vm() == null ? "" : r.vm() + "/") + r.disk();
        }
    }

    @Command(name = "full", description = "Full backup: read every allocated extent of the export(s).",
        mixinStandardHelpOptions = true)
    static final class Full extends Base {
        @Override
        BackupMode mode() {
            return BackupMode.FULL;
        }

        @Override
        Map<String, String> bitmaps() {
            return Map.of();
        }
    }

    /** Bitmap options shared by incremental and auto, and offline bitmap rotation ({@link OfflineRotation}). */
    abstract static class WithBitmap extends Base {
        @Option(names = "--bitmap", paramLabel = "[DISK=]NAME",
            description = "Dirty bitmap exported as qemu:dirty-bitmap:NAME (qemu-nbd -B NAME); DISK=NAME per disk. "
                + "With --rotate-bitmap: the bitmap to start from when the disk's last backup records none.")
        List<String> bitmapArgs = new ArrayList<>();

        @Option(names = "--rotate-bitmap",
            description = "Offline qcow2 image (--image): jbackup adds the next dirty bitmap, serves the image "
                + "read-only with qemu-nbd -r -A -B CURRENT, backs up, and removes the old bitmap only after the "
                + "backup committed. The current bitmap is recorded with each backup: the command line stays the "
                + "same every run.")
        boolean rotateBitmap;

        @Option(names = "--image", paramLabel = "FILE",
            description = "The offline qcow2 image for --rotate-bitmap (not open in a VM or another qemu-nbd).")
        java.nio.file.Path image;

        @Override
        List<DiskJob> jobs() {
            if (!rotateBitmap) {
                if (image != null) {
                    throw new UsageException("--image is used with --rotate-bitmap (jbackup then serves the "
                        + "image itself); for an export you serve, give --source URI");
                }
                return super.jobs();
            }
            if (image == null) {
                throw new UsageException("--rotate-bitmap needs --image FILE (the offline qcow2 image)");
            }
            if (sources != null && !sources.isEmpty()) {
                throw new UsageException("--rotate-bitmap serves --image itself with qemu-nbd: drop --source");
            }
            if (disk == null) {
                throw new UsageException("name the disk: --disk NAME");
            }
            if (bitmapArgs.size() > 1 || bitmapArgs.stream().anyMatch(b -> b.indexOf('=') > 0)) {
                throw new UsageException("--rotate-bitmap backs up one disk: give at most one --bitmap NAME");
            }
            withTimeout(ClientOptions.defaults()); // validates --timeout now
            return List.of();
        }

        @Override
        List<DiskResult> backUp(Repository r, List<DiskJob> jobs, EngineOptions eo, ProgressListener progress,
                                Cancellation cancel) throws Exception {
            if (!rotateBitmap) {
                return super.backUp(r, jobs, eo, progress, cancel);
            }
            ClientOptions co = withTimeout(ClientOptions.defaults().withConnections(connections()));
            return OfflineRotation.backUp(r, vm, List.of(new OfflineRotation.Image(disk, image, bitmaps().get(""))),
                List.of(), mode(), co, labels, note, eo, progress, cancel);
        }

        @Override
        void rejectImage() {
            if (rotateBitmap || image != null) {
                throw new UsageException("--domain finds the domain's images itself: drop --rotate-bitmap and --image");
            }
        }

        @Override
        Map<String, String> bitmaps() {
            Map<String, String> m = new LinkedHashMap<>();
            for (String b : bitmapArgs) {
                int eq = b.indexOf('=');
                if (eq > 0) {
                    m.put(b.substring(0, eq), b.substring(eq + 1));
                } else {
                    m.put("", b);
                }
            }
            return m;
        }
    }

    @Command(name = "incremental", mixinStandardHelpOptions = true,
        description = "Incremental backup: start from the newest complete backup of each disk and read only the "
            + "chunks its dirty bitmap marks. Refuses (exit 2) when that is not safe.")
    static final class Incremental extends WithBitmap {
        @Override
        BackupMode mode() {
            return BackupMode.INCREMENTAL;
        }

        @Override
        List<DiskJob> jobs() {
            if (bitmapArgs.isEmpty() && sources != null && !sources.isEmpty() && !rotateBitmap) {
                throw new UsageException("incremental needs --bitmap NAME (the dirty bitmap exported as "
                    + "qemu:dirty-bitmap:NAME, e.g. qemu-nbd -B NAME)");
            }
            return super.jobs();
        }
    }

    @Command(name = "auto", mixinStandardHelpOptions = true,
        description = "Incremental when it is safe, otherwise a full backup (deduplicated against the repository); "
            + "prints why.")
    static final class Auto extends WithBitmap {
        @Override
        BackupMode mode() {
            return BackupMode.AUTO;
        }
    }
}
