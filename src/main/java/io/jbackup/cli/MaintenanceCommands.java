package io.jbackup.cli;

import io.jbackup.error.UsageException;
import io.jbackup.store.GcOptions;
import io.jbackup.store.GcReport;
import io.jbackup.store.LockMode;
import io.jbackup.store.PruneReport;
import io.jbackup.store.Repository;
import io.jbackup.store.Retention;
import io.jbackup.store.RetentionPolicy;
import io.jbackup.text.Human;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.time.Duration;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code jbackup prune | protect | unprotect | gc}: retention and space. */
public final class MaintenanceCommands {
    private MaintenanceCommands() {
    }

    /** The retention options of {@code prune} (also used by job files). */
    static final class RetentionOptions {
        @Option(names = "--keep-last", paramLabel = "N", description = "Keep the N newest backups of each disk.")
        int last;
        @Option(names = "--keep-hourly", paramLabel = "N", description = "Keep the newest backup of each of the last "
            + "N hours that have backups.")
        int hourly;
        @Option(names = "--keep-daily", paramLabel = "N", description = "... of each of the last N days.")
        int daily;
        @Option(names = "--keep-weekly", paramLabel = "N", description = "... of each of the last N ISO weeks.")
        int weekly;
        @Option(names = "--keep-monthly", paramLabel = "N", description = "... of each of the last N months.")
        int monthly;
        @Option(names = "--keep-yearly", paramLabel = "N", description = "... of each of the last N years.")
        int yearly;
        @Option(names = "--keep-within", paramLabel = "SPAN", description = "Keep every backup created within SPAN "
            + "before the disk's newest backup: e.g. 36h, 14d, 2w, 6m, 1y, 1y6m, P14D.")
        String within;
        @Option(names = "--zone", paramLabel = "ZONE", description = "Time zone in which hours, days, weeks, months "
            + "and years are counted, e.g. Europe/Berlin (default: the system's).")
        String zone;

        RetentionPolicy policy() {
            ZoneId z;
            try {
                z = zone == null ? ZoneId.systemDefault() : ZoneId.of(zone);
            } catch (java.time.DateTimeException e) {
                throw new UsageException("--zone " + zone + " is not a time zone (e.g. UTC, Europe/Berlin)");
            }
            return new RetentionPolicy(last, hourly, daily, weekly, monthly, yearly,
                within == null ? null : RetentionPolicy.Span.parse(within), z);
        }
    }

    @Command(name = "prune", mixinStandardHelpOptions = true, sortOptions = false, description = {
        "Delete the backups that the retention rules do not keep, per disk (restic/borg semantics: the newest "
            + "backup in each hour, day, ISO week, month or year bucket is kept).",
        "Protected backups (jbackup protect) and bad ones are never removed. A deleted backup's index and catalog "
            + "row go; its chunks stay until jbackup gc. Use --dry-run first: it shows which rule keeps each backup."})
    static final class Prune implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        RepoOptions repo;
        @Mixin
        RetentionOptions retention;
        @Mixin
        JsonMixin json;
        @Mixin
        LoggingMixin logging;

        @Option(names = "--vm", paramLabel = "NAME", description = "Only the disks of this VM.")
        String vm;
        @Option(names = "--disk", paramLabel = "NAME", description = "Only this disk.")
        String disk;
        @Option(names = {"-n", "--dry-run"}, description = "Only print what would be kept and removed, and why.")
        boolean dryRun;

        @Override
        public Integer call() throws Exception {
            RetentionPolicy p = retention.policy(); // validated before the repository is opened
            PruneReport r;
            try (Repository repository = repo.open(LockMode.SHARED)) {
                long run = repository.startRun("prune " + p.describe() + (dryRun ? " --dry-run" : ""));
                try {
                    r = repository.prune(p, vm, disk, dryRun, repo.waitLock());
                } catch (Exception e) {
                    repository.finishRun(run, "failed", e.getMessage());
                    throw e;
                }
                repository.finishRun(run, "ok", r.kept() + " kept, " + r.removed() + " removed");
            }
            if (json.enabled()) {
                json.print(toJson(r));
            } else if (dryRun || !logging.quiet) {
                print(spec.commandLine().getOut(), r);
            }
            return ExitCodes.OK;
        }

        static Map<String, Object> toJson(PruneReport r) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("policy", r.policy());
            m.put("dryRun", r.dryRun());
            m.put("kept", r.kept());
            m.put("removed", r.removed());
            m.put("disks", r.disks().stream().map(d -> {
                Map<String, Object> dm = new LinkedHashMap<>();
                dm.put("vm", d.vm());
                dm.put("disk", d.disk());
                dm.put("backups", d.decisions().stream().map(x -> {
                    Map<String, Object> b = new LinkedHashMap<>();
                    b.put("id", x.backup().id());
                    b.put("created", x.backup().created());
                    b.put("action", x.keep() ? "keep" : "remove");
                    b.put("reasons", x.reasons());
                    return b;
                }).toList());
                return dm;
            }).toList());
            return m;
        }

        static void print(PrintWriter out, PruneReport r) {
            out.printf("Policy: %s%s%n", r.policy(), r.dryRun() ? " (dry run: nothing is removed)" : "");
            for (PruneReport.Disk d : r.disks()) {
                out.printf("%s%n", d.vm() == null ? d.disk() : d.vm() + "/" + d.disk());
                for (Retention.Decision x : d.decisions()) {
                    out.printf("%s%n", String.format("  %-6s  %-22s  %s  %s", x.keep() ? "keep" : "remove",
                        x.backup().id(), ListCommands.local(x.backup().created()), String.join(", ", x.reasons()))
                        .stripTrailing());
                }
            }
            out.printf("%d kept, %d %s.%s%n", r.kept(), r.removed(), r.dryRun() ? "would be removed" : "removed",
                !r.dryRun() && r.removed() > 0 ? " Run jbackup gc to reclaim their space." : "");
            out.flush();
        }
    }

    /** protect / unprotect. */
    abstract static class ProtectBase implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        RepoOptions repo;
        @Mixin
        JsonMixin json;
        @Mixin
        LoggingMixin logging;

        @Parameters(paramLabel = "ID", arity = "1..*", description = "Backup ids (or unique prefixes).")
        List<String> ids;

        abstract boolean protect();

        String reason() {
            return null;
        }

        @Override
        public Integer call() throws Exception {
            List<String> resolved = new ArrayList<>();
            try (Repository r = repo.open(LockMode.SHARED)) {
                for (String ref : ids) { // every id first: a typo changes nothing
                    resolved.add(r.resolve(null, null, ref).id());
                }
                for (String id : resolved) {
                    r.setProtected(id, protect(), reason());
                }
            }
            if (json.enabled()) {
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("status", "ok");
                out.put(protect() ? "protected" : "unprotected", resolved);
                json.print(out);
            } else if (!logging.quiet) {
                for (String id : resolved) {
                    spec.commandLine().getOut().printf("%s backup %s%n", protect() ? "Protected" : "Unprotected", id);
                }
                spec.commandLine().getOut().flush();
            }
            return ExitCodes.OK;
        }
    }

    @Command(name = "protect", mixinStandardHelpOptions = true,
        description = "Protect backups from prune (and deletion) until jbackup unprotect.")
    static final class Protect extends ProtectBase {
        @Option(names = "--reason", paramLabel = "TEXT", description = "Why (shown by jbackup show).")
        String why;

        @Override
        boolean protect() {
            return true;
        }

        @Override
        String reason() {
            return why;
        }
    }

    @Command(name = "unprotect", mixinStandardHelpOptions = true, description = "Lift the protection of backups.")
    static final class Unprotect extends ProtectBase {
        @Override
        boolean protect() {
            return false;
        }
    }

    @Command(name = "forget", aliases = "delete", mixinStandardHelpOptions = true, sortOptions = false,
        description = {
            "Delete the given backups: their indexes and catalog rows. No other backup depends on them (every "
                + "backup has a complete index), so every other backup still restores. Their chunks stay until "
                + "jbackup gc. Bad backups can be deleted this way; protected ones cannot (jbackup unprotect first).",
            "Every id is checked before anything is deleted: if one is unknown or protected, nothing is deleted."})
    static final class Forget implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        RepoOptions repo;
        @Mixin
        JsonMixin json;
        @Mixin
        LoggingMixin logging;

        @Option(names = "--vm", paramLabel = "NAME", description = "The VM of the disk that 'latest' or @TIME refer to.")
        String vm;
        @Option(names = "--disk", paramLabel = "NAME",
            description = "The disk that 'latest' or @TIME refer to (and that ids must belong to).")
        String disk;
        @Option(names = {"-n", "--dry-run"}, description = "Only print what would be deleted.")
        boolean dryRun;
        @Parameters(paramLabel = "ID", arity = "1..*",
            description = "Backup ids (or unique prefixes), or 'latest' / @TIME with --disk.")
        List<String> refs;

        @Override
        public Integer call() throws Exception {
            List<io.jbackup.model.BackupInfo> backups = new java.util.ArrayList<>();
            try (Repository repository = repo.open(LockMode.SHARED)) {
                for (String ref : refs) {
                    io.jbackup.model.BackupInfo b = repository.resolve(vm, disk, ref);
                    if (backups.stream().noneMatch(x -> x.id().equals(b.id()))) {
                        backups.add(b);
                    }
                }
                if (!dryRun) {
                    List<String> ids = backups.stream().map(io.jbackup.model.BackupInfo::id).toList();
                    long run = repository.startRun("forget " + String.join(" ", ids));
                    try {
                        repository.deleteBackups(ids, repo.waitLock());
                    } catch (Exception e) {
                        repository.finishRun(run, "failed", e.getMessage());
                        throw e;
                    }
                    repository.finishRun(run, "ok", ids.size() + " deleted");
                }
            }
            if (json.enabled()) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("dryRun", dryRun);
                m.put("backups", backups.stream().map(b -> {
                    Map<String, Object> bm = new LinkedHashMap<>();
                    bm.put("id", b.id());
                    bm.put("vm", b.vm());
                    bm.put("disk", b.disk());
                    bm.put("created", b.created());
                    bm.put("action", dryRun ? "would delete" : "deleted");
                    return bm;
                }).toList());
                json.print(m);
            } else if (dryRun || !logging.quiet) {
                PrintWriter out = spec.commandLine().getOut();
                for (io.jbackup.model.BackupInfo b : backups) {
                    out.printf("%s backup %s of %s from %s%n", dryRun ? "Would delete" : "Deleted", b.id(),
                        b.diskLabel(), ListCommands.local(b.created()));
                }
                if (!dryRun) {
                    out.printf("Run jbackup gc to reclaim the space of chunks no other backup uses.%n");
                }
                out.flush();
            }
            return ExitCodes.OK;
        }
    }

    @Command(name = "gc", mixinStandardHelpOptions = true, sortOptions = false, description = {
        "Reclaim space: delete chunks no backup uses and rewrite packs that are mostly garbage.",
        "Safe while backups run: chunks a running backup may use are decided only after it finishes. One gc or "
            + "prune at a time (lock file gc.lock)."})
    static final class Gc implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        RepoOptions repo;
        @Mixin
        JsonMixin json;
        @Mixin
        LoggingMixin logging;

        @Option(names = "--repack-threshold", paramLabel = "PCT", defaultValue = "50",
            description = "Rewrite packs whose live bytes are below PCT percent (0: never; default: ${DEFAULT-VALUE}).")
        int threshold;

        @Option(names = "--max-wait", paramLabel = "SECONDS", defaultValue = "86400",
            description = "Wait at most this long for running backups before giving up without deleting anything "
                + "(default: ${DEFAULT-VALUE}).")
        long maxWaitSeconds;

        @Option(names = {"-n", "--dry-run"}, description = "Only report what would be reclaimed.")
        boolean dryRun;

        @Option(names = "--grace", paramLabel = "DURATION", defaultValue = "24h", converter = WaitDuration.class,
            description = "In an s3:// repository, never delete or repack packs (and index objects without a "
                + "manifest) younger than DURATION: they may belong to a backup still running on another host "
                + "(default: ${DEFAULT-VALUE}; give more than your longest backup takes).")
        Duration grace;

        @Override
        public Integer call() throws Exception {
            if (maxWaitSeconds < 0) {
                throw new UsageException("--max-wait " + maxWaitSeconds + " is negative");
            }
            PrintWriter err = spec.commandLine().getErr();
            boolean chatty = !json.enabled() && !logging.quiet;
            GcOptions o = new GcOptions(threshold, Duration.ofSeconds(maxWaitSeconds), repo.waitLock(), dryRun,
                chatty ? line -> {
                    err.println("gc: " + line);
                    err.flush();
                } : null, grace);
            GcReport r;
            try (Repository repository = repo.open(LockMode.SHARED)) {
                long run = repository.startRun("gc" + (dryRun ? " --dry-run" : ""));
                try {
                    r = repository.gc(o);
                } catch (Exception e) {
                    repository.finishRun(run, "failed", e.getMessage());
                    throw e;
                }
                repository.finishRun(run, r.deferred() ? "deferred" : "ok", Sizes.format(r.bytesReclaimed())
                    + " reclaimed");
            }
            if (json.enabled()) {
                json.print(r);
            } else if (dryRun || !logging.quiet) {
                PrintWriter out = spec.commandLine().getOut();
                out.printf("%s%d of %s unused (%d kept for backups that finished meanwhile); %s deleted, "
                        + "%d of them repacked into %s (%s copied).%n", dryRun ? "Dry run: " : "",
                    r.chunksCondemned(), Human.count(r.chunksBefore(), "chunk"), r.chunksResurrected(),
                    Human.count(r.packsDeleted(), "pack"), r.packsRepacked(), Human.count(r.packsWritten(), "new pack"),
                    Sizes.format(r.bytesCopied()));
                if (r.duplicatesDeleted() > 0) {
                    // else "0 of N chunks unused" and "M chunks deleted" (-v, --json) read as a contradiction
                    out.printf("%s %s of chunks stored twice (by backups that ran at once); one copy of each "
                            + "stays.%n", dryRun ? "Would remove" : "Removed",
                        Human.count(r.duplicatesDeleted(), "duplicate copy", "duplicate copies"));
                }
                out.printf("%s %s (pack files: %s before, %s after).%n", dryRun ? "Would reclaim about" : "Reclaimed",
                    Sizes.format(r.bytesReclaimed()), Sizes.format(r.packBytesBefore()), Sizes.format(r.packBytesAfter()));
                if (r.deferred()) {
                    out.println("Deferred: running backups did not finish within --max-wait; nothing was deleted.");
                }
                out.flush();
            }
            return ExitCodes.OK;
        }
    }
}
