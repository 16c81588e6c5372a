package io.jbackup.cli;

import com.fasterxml.jackson.annotation.JsonInclude;
import io.jbackup.catalog.Catalog;
import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.model.AttachmentInfo;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;
import io.jbackup.store.LockMode;
import io.jbackup.store.Repository;
import io.jbackup.text.Human;
import io.jbackup.text.TextTable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TimeZone;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;

/** {@code jbackup list | show | stats}: what the repository holds. */
public final class ListCommands {
    static final DateTimeFormatter LOCAL = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss", Locale.ROOT);

    private ListCommands() {
    }

    /** A backup as {@code list}/{@code show} print it (and as their JSON). */
    record BackupView(String id, String vm, String disk, String type, String parent, Instant created,
                      Instant completed, String state, String stateReason, boolean isProtected, String protectReason,
                      Instant verified, Double verifiedSamplePercent, long imageSize, int chunkSize, long chunks,
                      Map<String, String> labels, String note, Map<String, String> source, BackupStats stats,
                      @JsonInclude(JsonInclude.Include.NON_NULL) List<AttachmentInfo> attachments) {

        static BackupView of(BackupInfo b, Map<String, String> prot, Map<String, Catalog.Verification> ver,
                             String stateReason) {
            return of(b, prot, ver, stateReason, null);
        }

        /** {@code attachments}: null leaves them out ({@code list}); {@code show} gives them, maybe empty. */
        static BackupView of(BackupInfo b, Map<String, String> prot, Map<String, Catalog.Verification> ver,
                             String stateReason, List<AttachmentInfo> attachments) {
            Catalog.Verification v = ver.get(b.id());
            return new BackupView(b.id(), b.vm(), b.disk(), b.type(), b.parentId(), b.created(), b.completed(),
                b.state(), stateReason, prot.containsKey(b.id()), prot.get(b.id()), v == null ? null : v.when(),
                v == null ? null : v.samplePercent(), b.imageSize(), b.chunkSize(), b.chunkCount(), b.labels(),
                b.note(), b.source(), b.stats(), attachments);
        }

        String diskLabel() {
            return vm == null ? disk : vm + "/" + disk;
        }

        /** complete / bad / incomplete, verification and protection in a few characters. */
        String stateText() {
            String s = switch (state) {
                case BackupInfo.COMPLETE -> verified == null ? "unverified"
                    : "verified " + local(verified).substring(0, 10)
                    + (verifiedSamplePercent != null && verifiedSamplePercent < 100
                    ? String.format(Locale.ROOT, " (%.0f%%)", verifiedSamplePercent) : "");
                default -> state;
            };
            return isProtected ? s + ", protected" : s;
        }
    }

    /** {@code t} as local date and time ({@code yyyy-MM-dd HH:mm:ss}) in the JVM's default time zone, or "-". */
    static String local(Instant t) {
        return local(t, TimeZone.getDefault());
    }

    /**
     * {@code t} as date and time in {@code zone}. The offset comes from {@link TimeZone}, which reads the JDK's time
     * zone data directly: {@code ZoneId.systemDefault()} would first look for zone-rule providers in
     * {@code META-INF/services} of every jar on the class path (40 ms of {@code list}; bench/README.md).
     */
    static String local(Instant t, TimeZone zone) {
        if (t == null) {
            return "-";
        }
        int offsetSeconds = zone.getOffset(t.toEpochMilli()) / 1000;
        return LOCAL.format(LocalDateTime.ofEpochSecond(t.getEpochSecond(), t.getNano(),
            ZoneOffset.ofTotalSeconds(offsetSeconds)));
    }

    @Command(name = "list", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"List backups per VM and disk, oldest first: time (local), type, disk size, new and "
            + "deduplicated bytes, stored bytes, labels and state (verified, bad, protected).",
            "Reads only the catalog: an encrypted repository is listed without its passphrase (see docs/security.md "
                + "for what that shows)."})
    static final class ListCommand implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        RepoOptions repo;
        @Mixin
        JsonMixin json;
        @Mixin
        LoggingMixin logging;

        @Option(names = "--vm", paramLabel = "NAME", description = "Only backups of this VM.")
        String vm;

        @Option(names = "--disk", paramLabel = "NAME", description = "Only backups of this disk.")
        String disk;

        @Option(names = "--label", paramLabel = "KEY=VALUE", description = "Only backups with this label (repeatable).")
        Map<String, String> labels = new LinkedHashMap<>();

        @Override
        public Integer call() throws Exception {
            List<BackupView> views = new ArrayList<>();
            try (Repository r = repo.openCatalog()) {
                Map<String, String> prot = r.protectedBackups();
                Map<String, Catalog.Verification> ver = r.verifications();
                java.util.SortedSet<String> disks = new java.util.TreeSet<>();
                boolean known = false; // a backup of the VM and disk asked for, whatever its labels
                for (BackupInfo b : r.listBackups()) {
                    disks.add(b.vm() == null ? b.disk() : b.vm() + "/" + b.disk());
                    if (vm != null && !vm.equals(b.vm()) || disk != null && !disk.equals(b.disk())) {
                        continue;
                    }
                    known = true;
                    if (b.labels().entrySet().containsAll(labels.entrySet())) {
                        views.add(BackupView.of(b, prot, ver, BackupInfo.BAD.equals(b.state()) ? r.badReason(b.id())
                            : null));
                    }
                }
                // a disk or VM the repository has never seen is a mistake (a typo), not an empty result
                if (!known && !disks.isEmpty()) {
                    throw new NotFoundException("repository " + repo.display() + " has no backup of "
                        + (vm == null ? "" : "VM " + vm + (disk == null ? "" : " ")) + (disk == null ? "" : "disk " + disk)
                        + "; its disks: " + String.join(", ", disks));
                }
            }
            if (json.enabled()) {
                json.print(views);
                return ExitCodes.OK;
            }
            PrintWriter out = spec.commandLine().getOut();
            if (views.isEmpty()) {
                out.println("No backups" + (vm != null || disk != null || !labels.isEmpty() ? " match." : " yet."));
                out.flush();
                return ExitCodes.OK;
            }
            Map<String, List<BackupView>> byDisk = new TreeMap<>();
            for (BackupView v : views) {
                byDisk.computeIfAbsent(v.diskLabel(), k -> new ArrayList<>()).add(v);
            }
            for (Map.Entry<String, List<BackupView>> e : byDisk.entrySet()) {
                out.printf("%s (%s)%n", e.getKey(), Human.count(e.getValue().size(), "backup"));
                TextTable table = new TextTable("  ",
                    List.of("ID", "CREATED", "TYPE", "SIZE", "NEW", "DEDUP", "STORED", "STATE / LABELS"), 3, 4, 5, 6);
                for (BackupView v : e.getValue()) {
                    String lbl = v.labels().isEmpty() ? "" : "  " + v.labels().entrySet().stream()
                        .map(x -> x.getKey() + "=" + x.getValue()).collect(Collectors.joining(","));
                    table.row(v.id(), local(v.created()), v.type(), Sizes.format(v.imageSize()),
                        Sizes.format(v.stats().bytesNew()), Sizes.format(v.stats().bytesDedup()),
                        Sizes.format(v.stats().bytesStored()), v.stateText() + lbl);
                }
                table.print(out);
            }
            out.flush();
            return ExitCodes.OK;
        }
    }

    @Command(name = "show", mixinStandardHelpOptions = true,
        description = {"Show one backup in full: times, parent, sizes, counters, labels, note, source, state and "
            + "attachments (name and size).",
            "Reads only the catalog: needs no passphrase, also for an encrypted repository.",
            "With --attachment NAME, writes that attachment's content to standard output instead, as it is (this "
                + "reads and checks its chunks: an encrypted repository needs its passphrase)."})
    static final class ShowCommand implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        RepoOptions repo;
        @Mixin
        JsonMixin json;
        @Mixin
        LoggingMixin logging;

        @Parameters(paramLabel = "ID", description = "Backup id, unique id prefix, 'latest' or '@TIME' (the last two "
            + "with --disk).")
        String ref;

        @Option(names = "--vm", paramLabel = "NAME", description = "VM of the disk (for latest, @TIME).")
        String vm;

        @Option(names = "--disk", paramLabel = "NAME", description = "Disk (for latest, @TIME).")
        String disk;

        @Option(names = "--attachment", paramLabel = "NAME", description = "Write this attachment of the backup "
            + "to standard output, raw (redirect it to a file).")
        String attachment;

        @Override
        public Integer call() throws Exception {
            if (attachment != null) {
                return writeAttachment();
            }
            BackupView v;
            try (Repository r = repo.openCatalog()) {
                BackupInfo b = r.resolve(vm, disk, ref);
                v = BackupView.of(b, r.protectedBackups(), r.verifications(),
                    BackupInfo.BAD.equals(b.state()) ? r.badReason(b.id()) : null, r.attachments(b.id()));
            }
            if (json.enabled()) {
                json.print(v);
                return ExitCodes.OK;
            }
            PrintWriter out = spec.commandLine().getOut();
            // label: value lines, the values aligned after the longest label (source.exportSize: and the like)
            Map<String, String> lines = new LinkedHashMap<>();
            lines.put("backup:", v.id());
            lines.put("disk:", v.diskLabel());
            lines.put("type:", v.type() + (v.parent() == null ? "" : " (parent " + v.parent() + ")"));
            lines.put("created:", local(v.created()) + " (" + v.created() + ")");
            lines.put("completed:", v.completed() == null ? "-" : local(v.completed()) + " (took "
                + ConsoleProgress.duration(Duration.between(v.created(), v.completed()).toMillis() / 1000.0) + ")");
            lines.put("state:", v.state() + (v.stateReason() == null ? "" : ": " + v.stateReason()));
            lines.put("verified:", v.verified() == null ? "never" : local(v.verified())
                + String.format(Locale.ROOT, " (sample %.0f%%)", v.verifiedSamplePercent()));
            lines.put("protected:", v.isProtected() ? "yes" + (v.protectReason() == null || v.protectReason().isEmpty()
                ? "" : " (" + v.protectReason() + ")") : "no");
            lines.put("size:", Human.exact(v.imageSize()) + ", " + Human.count(v.chunks(), "chunk") + " of "
                + Sizes.format(v.chunkSize()));
            BackupStats s = v.stats();
            lines.put("written:", Human.count(s.chunksTotal(), "chunk") + ": " + s.chunksNew() + " new (" + Sizes.format(s.bytesNew())
                + "), " + s.chunksDedup() + " deduplicated (" + Sizes.format(s.bytesDedup()) + "), " + s.chunksZero()
                + " zero (" + Sizes.format(s.bytesZero()) + ")");
            lines.put("stored:", Sizes.format(s.bytesStored()) + " added to packs");
            if (!v.labels().isEmpty()) {
                lines.put("labels:", v.labels().entrySet().stream().map(x -> x.getKey() + "=" + x.getValue())
                    .collect(Collectors.joining(", ")));
            }
            if (v.note() != null && !v.note().isBlank()) {
                lines.put("note:", v.note());
            }
            for (Map.Entry<String, String> e : new TreeMap<>(v.source()).entrySet()) {
                if (e.getValue() != null && !e.getValue().isBlank()) { // e.g. the default export "": nothing to show
                    lines.put("source." + e.getKey() + ":", e.getValue());
                }
            }
            if (!v.attachments().isEmpty()) {
                lines.put("attachments:", Human.count(v.attachments().size(), "file")
                    + " (jbackup show " + v.id() + " --attachment NAME > FILE)");
            }
            int w = lines.keySet().stream().mapToInt(String::length).max().orElse(0);
            lines.forEach((label, value) -> out.printf("%-" + w + "s %s%n", label, value));
            if (!v.attachments().isEmpty()) {
                int aw = v.attachments().stream().mapToInt(a -> a.name().length()).max().orElse(1);
                for (AttachmentInfo a : v.attachments()) {
                    out.printf("  %-" + aw + "s  %s%n", a.name(), Human.exact(a.size()));
                }
            }
            out.flush();
            return ExitCodes.OK;
        }

        /** {@code --attachment NAME}: the raw content on standard output, nothing else. */
        private int writeAttachment() throws Exception {
            if (json.enabled()) {
                throw new UsageException("--attachment writes the attachment's raw content; drop --json");
            }
            byte[] content;
            try (Repository r = repo.open(LockMode.SHARED)) {
                BackupInfo b = r.resolve(vm, disk, ref);
                content = r.readAttachment(b.id(), attachment);
            }
            System.out.write(content);
            System.out.flush();
            return ExitCodes.OK;
        }
    }

    /** Repository totals as printed by {@code stats}. */
    record StatsView(String repository, String id, long disks, long backups, long completeBackups, long badBackups,
                     long logicalBytes, long bytesNew, long bytesDedup, long bytesZero, long chunks,
                     long chunkRawBytes, long chunkStoredBytes, long packs, long packBytes, double dedupRatio,
                     double compressionRatio, double spaceSavingPercent) {
    }

    @Command(name = "stats", mixinStandardHelpOptions = true,
        description = {"Repository totals: backups, disks, logical size, unique data, stored bytes, and the dedup "
            + "and compression ratios.",
            "dedup ratio = logical size of all backups (every byte a restore of each would write) / unique chunk "
                + "data; compression ratio = unique chunk data / its stored records.",
            "Reads only the catalog: needs no passphrase, also for an encrypted repository."})
    static final class StatsCommand implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        RepoOptions repo;
        @Mixin
        JsonMixin json;
        @Mixin
        LoggingMixin logging;

        @Override
        public Integer call() throws Exception {
            StatsView v;
            try (Repository r = repo.openCatalog()) {
                Catalog.Totals t = r.totals();
                double dedup = t.chunkRawBytes() == 0 ? 0 : (double) t.logicalBytes() / t.chunkRawBytes();
                double comp = t.chunkStoredBytes() == 0 ? 0 : (double) t.chunkRawBytes() / t.chunkStoredBytes();
                double saving = t.logicalBytes() == 0 ? 0 : 100.0 * (1 - (double) t.packBytes() / t.logicalBytes());
                v = new StatsView(r.location(), r.config().id(), t.disks(), t.backups(), t.completeBackups(),
                    t.badBackups(), t.logicalBytes(), t.bytesNew(), t.bytesDedup(), t.bytesZero(), t.chunks(),
                    t.chunkRawBytes(), t.chunkStoredBytes(), t.packs(), t.packBytes(), round(dedup), round(comp),
                    round(saving));
            }
            if (json.enabled()) {
                json.print(v);
                return ExitCodes.OK;
            }
            PrintWriter out = spec.commandLine().getOut();
            String f = "%-22s %s%n";
            out.printf(f, "repository:", v.repository() + " (id " + v.id() + ")");
            out.printf(f, "backups:", v.backups() + " (" + v.completeBackups() + " complete, " + v.badBackups()
                + " bad) of " + Human.count(v.disks(), "disk"));
            out.printf(f, "logical size:", Sizes.format(v.logicalBytes()) + " (sum of the backups' disk sizes)");
            out.printf(f, "read by backups:", Sizes.format(v.bytesNew()) + " new, " + Sizes.format(v.bytesDedup())
                + " deduplicated, " + Sizes.format(v.bytesZero()) + " zero");
            out.printf(f, "unique chunks:", v.chunks() + " holding " + Sizes.format(v.chunkRawBytes()));
            out.printf(f, "stored:", Sizes.format(v.chunkStoredBytes()) + " in records, " + Sizes.format(v.packBytes())
                + " in " + Human.count(v.packs(), "pack file"));
            out.printf(Locale.ROOT, "%-22s %.2fx%n", "dedup ratio:", v.dedupRatio());
            out.printf(Locale.ROOT, "%-22s %.2fx%n", "compression ratio:", v.compressionRatio());
            out.printf(Locale.ROOT, "%-22s %.1f%%%n", "space saved:", v.spaceSavingPercent());
            out.flush();
            return ExitCodes.OK;
        }

        private static double round(double d) {
            return Math.round(d * 100) / 100.0;
        }
    }
}
