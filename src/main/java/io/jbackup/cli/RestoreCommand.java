package io.jbackup.cli;

import io.jbackup.engine.Cancellation;
import io.jbackup.engine.DiskRestore;
import io.jbackup.engine.FileTarget;
import io.jbackup.engine.NbdTarget;
import io.jbackup.engine.ProgressListener;
import io.jbackup.engine.RestoreResult;
import io.jbackup.engine.RestoreTarget;
import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdClient;
import io.jbackup.nbd.client.NbdUri;
import io.jbackup.store.BackupInfo;
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
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code jbackup restore}: write the image of a backup to a file, a block device or an NBD export. */
@Command(name = "restore", mixinStandardHelpOptions = true,
    description = "Write the image of a backup to a raw file (created sparse), an existing file or block device, "
        + "or an NBD export (e.g. qemu-nbd serving a new qcow2). Every chunk is verified as it is read.")
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

    @Option(names = "--backup", paramLabel = "ID|latest|@TIME", defaultValue = "latest",
        description = "Backup id (or unique prefix), 'latest', or '@' + ISO-8601 time for the newest backup at or "
            + "before it (default: ${DEFAULT-VALUE}).")
    String backup;

    @Option(names = "--to", required = true, paramLabel = "TARGET",
        description = "Raw file, block device or NBD URI. With --vm and several disks: a directory (DIR/DISK.raw) "
            + "or DISK=TARGET, repeated.")
    List<String> targets;

    @Option(names = "--zero", description = "Write zero chunks into an existing file or device (they may hold old "
        + "data); new files get holes instead.")
    boolean zero;

    @Option(names = "--force", description = "Overwrite an existing regular file.")
    boolean force;

    @Option(names = "--ignore-errors", description = "Write zeros where a chunk is damaged, list each range, and "
        + "continue (exit 3).")
    boolean ignoreErrors;

    @Option(names = "--read-ahead", paramLabel = "N", defaultValue = "32",
        description = "Chunks fetched and decompressed ahead of the writer (default: ${DEFAULT-VALUE}).")
    int readAhead;

    @Override
    public Integer call() throws Exception {
        if (disk == null && vm == null) {
            throw new UsageException("name what to restore: --disk NAME, or --vm NAME for a whole backup set");
        }
        ProgressListener progress = ConsoleProgress.forConsole(json.enabled() || logging.quiet);
        Cancellation cancel = new Cancellation();
        List<RestoreResult> results = new ArrayList<>();
        try (Repository r = repo.open(LockMode.SHARED)) {
            List<BackupInfo> selected = select(r);
            Map<String, String> targetByDisk = targets(selected);
            Interrupts.run(cancel, () -> {
                for (BackupInfo b : selected) {
                    try (BackupReader reader = r.openBackup(b.id(), ignoreErrors);
                         RestoreTarget target = openTarget(targetByDisk.get(b.disk()), b.imageSize())) {
                        results.add(new DiskRestore(reader, target, ignoreErrors, readAhead, progress, cancel).run());
                    }
                }
                return null;
            });
        }
        boolean damaged = results.stream().anyMatch(x -> !x.damaged().isEmpty());
        if (json.enabled()) {
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("status", damaged ? "partial" : "ok");
            out.put("disks", results);
            json.print(out);
        } else if (damaged || !logging.quiet) { // damaged ranges are always listed
            for (RestoreResult x : results) {
                System.out.println(String.format(Locale.ROOT,
                    "%s: restored backup %s to %s: %s image, %s written, %s zero, %.1f s (%.0f MB/s)",
                    x.disk(), x.backupId(), x.target(), ConsoleProgress.bytes(x.imageSize()),
                    ConsoleProgress.bytes(x.bytesWritten()), ConsoleProgress.bytes(x.bytesZero()), x.seconds(), x.mbps()));
                for (RestoreResult.DamagedRange d : x.damaged()) {
                    System.out.println("  damaged, written as zeros: offset " + d.offset() + " length " + d.length()
                        + ": " + d.error());
                }
            }
        }
        return damaged ? ExitCodes.PARTIAL : ExitCodes.OK;
    }

    private List<BackupInfo> select(Repository r) throws IOException {
        if (disk != null) {
            return List.of(r.resolve(vm, disk, backup));
        }
        // a whole set: resolve the reference against any disk of the VM, then take every disk with the same set label
        List<BackupInfo> ofVm = new ArrayList<>();
        for (BackupInfo b : r.listBackups()) {
            if (vm.equals(b.vm()) && "complete".equals(b.state())) {
                ofVm.add(b);
            }
        }
        if (ofVm.isEmpty()) {
            throw new NotFoundException("no complete backups of VM " + vm + " in the repository; "
                + "'jbackup list' shows what there is");
        }
        BackupInfo anchor = r.resolve(vm, ofVm.get(0).disk(), backup);
        if (backup.equals("latest") || backup.startsWith("@")) {
            ofVm.sort(Comparator.comparing(BackupInfo::created));
            BackupInfo newest = null;
            for (BackupInfo b : ofVm) {
                if (backup.equals("latest") || !b.created().isAfter(anchor.created())) {
                    newest = b;
                }
            }
            anchor = newest == null ? anchor : newest;
        }
        String set = anchor.labels().get("set");
        List<BackupInfo> out = new ArrayList<>();
        for (BackupInfo b : ofVm) {
            if (set == null ? b.id().equals(anchor.id()) : set.equals(b.labels().get("set"))) {
                out.add(b);
            }
        }
        out.sort(Comparator.comparing(BackupInfo::disk));
        return out;
    }

    private Map<String, String> targets(List<BackupInfo> selected) {
        Map<String, String> m = new LinkedHashMap<>();
        if (selected.size() == 1 && targets.size() == 1 && !looksNamed(targets.get(0))) {
            m.put(selected.get(0).disk(), targets.get(0));
            return m;
        }
        for (String t : targets) {
            if (looksNamed(t)) {
                int eq = t.indexOf('=');
                m.put(t.substring(0, eq), t.substring(eq + 1));
            }
        }
        for (BackupInfo b : selected) {
            if (!m.containsKey(b.disk())) {
                if (targets.size() == 1 && Files.isDirectory(Path.of(targets.get(0)))) {
                    m.put(b.disk(), Path.of(targets.get(0)).resolve(b.disk() + ".raw").toString());
                } else {
                    throw new UsageException("no target for disk " + b.disk() + ": give --to DIR (an "
                        + "existing directory) or --to " + b.disk() + "=TARGET");
                }
            }
        }
        return m;
    }

    private static boolean looksNamed(String t) {
        int eq = t.indexOf('=');
        int scheme = t.indexOf("://");
        int slash = t.indexOf('/');
        return eq > 0 && (scheme < 0 || eq < scheme) && (slash < 0 || eq < slash);
    }

    private RestoreTarget openTarget(String target, long size) throws IOException {
        if (target.startsWith("nbd://") || target.startsWith("nbds://") || target.startsWith("nbd+unix://")
            || target.startsWith("nbds+unix://")) {
            NbdUri u = NbdUri.parse(target);
            NbdClient c = NbdClient.connect(u, ClientOptions.defaults().withTls(tls.toConfig(u.tls())));
            try {
                return new NbdTarget(c, size, 64);
            } catch (RuntimeException e) {
                c.close();
                throw e;
            }
        }
        return FileTarget.open(Path.of(target), size, force, zero);
    }
}
