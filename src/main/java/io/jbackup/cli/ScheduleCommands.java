package io.jbackup.cli;

import io.jbackup.engine.Cancellation;
import io.jbackup.engine.EngineOptions;
import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.schedule.JobFile;
import io.jbackup.schedule.RunLog;
import io.jbackup.schedule.Scheduler;
import io.jbackup.store.LockMode;
import io.jbackup.store.NotARepositoryException;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.store.RepositoryLocation;
import io.jbackup.text.Human;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/** {@code jbackup run-due | daemon | schedule | log}: scheduled backups from a job file. */
public final class ScheduleCommands {
    static final DateTimeFormatter ZONED = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss xxx (EEE)", Locale.ROOT);

    private ScheduleCommands() {
    }

    static OpenOptions openOptions(JobFile jf) {
        OpenOptions o = OpenOptions.defaults();
        if (jf.passphraseFile() != null) {
            return o.withPassphrase(() -> RepoOptions.readPassphraseFile(jf.passphraseFile()));
        }
        return o.withPassphrase(() -> {
            String e = RepoOptions.env.get(RepoOptions.ENV_PASSPHRASE);
            return e == null || e.isEmpty() ? null : e.toCharArray();
        });
    }

    static Instant parseNow(String now) {
        if (now == null) {
            return Instant.now();
        }
        try {
            return Instant.parse(now);
        } catch (java.time.format.DateTimeParseException e) {
            throw new UsageException("--now " + now + " (expected an ISO-8601 instant, e.g. 2026-11-24T02:30:00Z)");
        }
    }

    /** Exit code of a run: 0, or the first failure's, or 3 when some tasks worked. */
    static int exitCode(Scheduler.RunResult r) {
        if (r.failedCount() == 0) {
            return ExitCodes.OK;
        }
        boolean someOk = r.tasks().stream().anyMatch(t -> "ok".equals(t.status()));
        if (someOk || r.tasks().stream().anyMatch(t -> "partial".equals(t.status()))) {
            return ExitCodes.PARTIAL;
        }
        for (Scheduler.TaskResult t : r.tasks()) {
            if (t.failed()) {
                if (Scheduler.VERIFY.equals(t.task()) && t.error() == null) {
                    return ExitCodes.DAMAGE;
                }
                return t.error() == null ? ExitCodes.PARTIAL : ExitCodes.forException(t.error());
            }
        }
        return ExitCodes.PARTIAL;
    }

    /** The one line cron mails: which tasks failed, why, and where the log is. */
    static String failureLine(Scheduler.RunResult r, JobFile jf) {
        List<String> parts = new ArrayList<>();
        for (Scheduler.TaskResult t : r.tasks()) {
            if (t.failed()) {
                parts.add(t.task() + ": " + t.message());
            }
        }
        return "jbackup: run " + r.runId() + ": " + r.failedCount() + " of " + Human.count(r.tasks().size(), "task") + " failed: "
            + String.join("; ", parts) + " (log: jbackup log --config " + jf.file() + " --run " + r.runId() + ")";
    }

    static Map<String, Object> toJson(Scheduler.RunResult r) {
        Map<String, Object> m = new LinkedHashMap<>();
        // status and exitCode as every --json document has them, so a script can branch on them (docs/operations.md)
        int exit = exitCode(r);
        m.put("status", exit == ExitCodes.OK ? "ok" : exit == ExitCodes.PARTIAL ? "partial" : "error");
        m.put("exitCode", exit);
        if (exit != ExitCodes.OK && exit != ExitCodes.PARTIAL) {
            r.tasks().stream().filter(Scheduler.TaskResult::failed).findFirst().ifPresent(t -> {
                Map<String, Object> e = new LinkedHashMap<>();
                e.put("code", t.error() != null ? ExitCodes.classify(t.error()).code()
                    : exit == ExitCodes.DAMAGE ? "damage" : "internal");
                e.put("message", t.task() + ": " + t.message());
                m.put("error", e);
            });
        }
        m.put("run", r.runId());
        m.put("log", r.log() == null ? null : r.log().toString());
        m.put("tasks", r.tasks().stream().map(t -> {
            Map<String, Object> x = new LinkedHashMap<>();
            x.put("task", t.task());
            x.put("status", t.status());
            x.put("message", t.message());
            x.put("disks", t.disks());
            return x;
        }).toList());
        return m;
    }

    @Command(name = "run-due", mixinStandardHelpOptions = true, sortOptions = false, description = {
        "Run whatever the job file says is due now (backups, then their retention; verify; gc), then exit. Meant "
            + "for one crontab line every few minutes: silent when all is well, one line on standard error and a "
            + "non-zero exit when something failed.",
        "A disk being backed up by another run is skipped with a message (or, with --wait-lock, waited for)."})
    static final class RunDue implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        JsonMixin json;
        @Mixin
        LoggingMixin logging;

        @Option(names = "--config", required = true, paramLabel = "FILE", description = "The job file (YAML or JSON).")
        Path config;

        @Option(names = "--wait-lock", paramLabel = "DURATION", arity = "0..1", defaultValue = "0",
            fallbackValue = WaitDuration.UNLIMITED, converter = WaitDuration.class,
            description = "Queue for tasks and disks another run is busy with, up to DURATION (30s, 10m, 1h, a number "
                + "of seconds; without a value: as long as it takes). Default: skip them.")
        Duration wait;

        @Option(names = "--now", hidden = true, paramLabel = "INSTANT", description = "Pretend it is this time (tests).")
        String now;

        @Override
        public Integer call() throws Exception {
            JobFile jf = JobFile.read(config);
            Instant at = parseNow(now);
            Scheduler s = new Scheduler(jf, openOptions(jf), EngineOptions.defaults());
            Cancellation cancel = new Cancellation();
            Scheduler.RunResult r = Interrupts.run(cancel, () -> s.runDue(at, cancel, wait));
            PrintWriter out = spec.commandLine().getOut();
            if (json.enabled()) {
                json.print(toJson(r));
            } else if (logging.verbose.length > 0) {
                if (r.runId() == null) {
                    out.println("Nothing is due.");
                }
                for (Scheduler.TaskResult t : r.tasks()) {
                    out.printf("%s: %s: %s%n", t.task(), t.status(), t.message());
                }
                out.flush();
            }
            if (r.failedCount() > 0) {
                PrintWriter err = spec.commandLine().getErr();
                err.println(failureLine(r, jf));
                err.flush();
            }
            return exitCode(r);
        }
    }

    @Command(name = "daemon", mixinStandardHelpOptions = true, description = {
        "Run the job file's schedule in this process until SIGTERM (or Ctrl-C): at each fire time, run what is "
            + "due, exactly like run-due. The job file is read again before each run, so edits apply without a "
            + "restart. SIGTERM stops a running backup cleanly (it is aborted, nothing half-written stays) and "
            + "exits 0."})
    static final class Daemon implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        LoggingMixin logging;

        @Option(names = "--config", required = true, paramLabel = "FILE", description = "The job file (YAML or JSON).")
        Path config;

        @Override
        public Integer call() throws Exception {
            JobFile jf = JobFile.read(config); // a broken file fails at start, not at 2 a.m.
            Cancellation cancel = new Cancellation();
            CountDownLatch stop = new CountDownLatch(1);
            CountDownLatch done = new CountDownLatch(1);
            Thread hook = new Thread(() -> {
                System.err.println("jbackup daemon: stopping (signal received)...");
                cancel.cancel("daemon stopping");
                stop.countDown();
                try {
                    done.await(60, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                System.err.println("jbackup daemon: stopped");
                System.err.flush();
                Runtime.getRuntime().halt(ExitCodes.OK);
            }, "jbackup-daemon-stop");
            Runtime.getRuntime().addShutdownHook(hook);
            PrintWriter err = spec.commandLine().getErr();
            err.println("jbackup daemon: " + Human.count(jf.jobs().size(), "job") + " from " + jf.file() + ", repository "
                + jf.repository().describe() + ", zone " + jf.zone());
            err.flush();
            try {
                while (stop.getCount() > 0) {
                    try {
                        jf = JobFile.read(config);
                    } catch (IOException | IllegalArgumentException e) {
                        err.println("jbackup daemon: keeping the previous job file: " + e.getMessage());
                        err.flush();
                    }
                    Scheduler s = new Scheduler(jf, openOptions(jf), EngineOptions.defaults());
                    try {
                        Scheduler.RunResult r = s.runDue(Instant.now(), cancel, Duration.ZERO);
                        for (Scheduler.TaskResult t : r.tasks()) {
                            err.println("jbackup daemon: run " + r.runId() + ": " + t.task() + ": " + t.status() + ": "
                                + t.message());
                        }
                        if (r.failedCount() > 0) {
                            err.println(failureLine(r, jf));
                        }
                    } catch (IOException | RuntimeException e) {
                        err.println("jbackup daemon: run failed: " + io.jbackup.error.ErrorText.describe(e));
                    }
                    err.flush();
                    if (cancel.isCancelled()) {
                        break;
                    }
                    Optional<ZonedDateTime> next = s.nextFire(Instant.now());
                    long waitMs = next.map(t -> Duration.between(Instant.now(), t.toInstant()).toMillis())
                        .orElse(3_600_000L);
                    // wake at least every minute: the job file may have changed
                    stop.await(Math.max(10, Math.min(waitMs, 60_000)), TimeUnit.MILLISECONDS);
                }
            } finally {
                done.countDown();
            }
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook halts the JVM
            }
            return ExitCodes.OK;
        }
    }

    @Command(name = "schedule", mixinStandardHelpOptions = true,
        description = "Print each task of a job file: its cron expression, when it last ran, whether it is due, and "
            + "its next run times.")
    static final class Schedule implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        JsonMixin json;
        @Mixin
        LoggingMixin logging;

        @Option(names = "--config", required = true, paramLabel = "FILE", description = "The job file (YAML or JSON).")
        Path config;

        @Option(names = "--count", paramLabel = "N", defaultValue = "3",
            description = "Next run times to print per task (default: ${DEFAULT-VALUE}).")
        int count;

        @Option(names = "--now", hidden = true, paramLabel = "INSTANT", description = "Pretend it is this time (tests).")
        String now;

        @Override
        public Integer call() throws Exception {
            if (count < 1 || count > 1000) {
                throw new UsageException("--count " + count + " (expected: 1 .. 1000)");
            }
            JobFile jf = JobFile.read(config);
            Instant at = parseNow(now);
            Scheduler s = new Scheduler(jf, OpenOptions.defaults(), EngineOptions.defaults());
            List<Map<String, Object>> tasks = new ArrayList<>();
            for (Scheduler.Planned p : s.plan(at)) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("task", p.task());
                m.put("schedule", p.schedule().toString());
                m.put("description", p.schedule().describe());
                jf.jobs().stream().filter(j -> p.task().equals("job:" + j.name())).findFirst().ifPresent(j -> {
                    m.put("vm", j.vm());
                    m.put("disks", j.disks().stream().map(JobFile.Disk::name).toList());
                    Map<String, String> images = new LinkedHashMap<>();
                    j.disks().stream().filter(d -> d.image() != null)
                        .forEach(d -> images.put(d.name(), d.image().toString()));
                    if (!images.isEmpty()) {
                        m.put("images", images); // the offline images jbackup serves itself, by disk
                    }
                    m.put("disksText", j.disks().stream().map(d -> d.image() == null ? d.name()
                        : d.name() + " (image " + d.image() + ")").toList());
                    m.put("mode", j.mode().name().toLowerCase(Locale.ROOT));
                    m.put("retention", j.retention() == null ? null : j.retention().describe());
                });
                m.put("lastRun", p.last() == null ? null : p.last().lastRun());
                m.put("lastStatus", p.last() == null ? null : p.last().status());
                m.put("due", p.due());
                List<ZonedDateTime> next = new ArrayList<>();
                ZonedDateTime t = at.atZone(jf.zone());
                for (int i = 0; i < count; i++) {
                    Optional<ZonedDateTime> n = p.schedule().nextFire(t);
                    if (n.isEmpty()) {
                        break;
                    }
                    next.add(n.get());
                    t = n.get();
                }
                m.put("next", next.stream().map(z -> z.toOffsetDateTime().toString()).toList());
                m.put("nextText", next.stream().map(ZONED::format).toList());
                tasks.add(m);
            }
            if (json.enabled()) {
                tasks.forEach(m -> {
                    m.remove("nextText");
                    m.remove("disksText");
                });
                Map<String, Object> root = new LinkedHashMap<>();
                root.put("config", jf.file().toString());
                root.put("repository", jf.repository().describe());
                root.put("zone", jf.zone().getId());
                root.put("state", jf.stateFile().toString());
                root.put("tasks", tasks);
                json.print(root);
                return ExitCodes.OK;
            }
            PrintWriter out = spec.commandLine().getOut();
            out.printf("Job file %s: repository %s, zone %s%n", jf.file(), jf.repository().describe(), jf.zone());
            for (Map<String, Object> m : tasks) {
                out.printf("%n%s  \"%s\"  (%s)%n", m.get("task"), m.get("schedule"), m.get("description"));
                if (m.containsKey("disks")) {
                    out.printf("  disks:     %s%s, %s%n", m.get("vm") == null ? "" : m.get("vm") + ": ",
                        m.get("disksText"), m.get("mode"));
                    if (m.get("retention") != null) {
                        out.printf("  retention: %s%n", m.get("retention"));
                    }
                }
                out.printf("  last run:  %s%n", m.get("lastRun") == null ? "never"
                    : ZONED.format(((Instant) m.get("lastRun")).atZone(jf.zone())) + " (" + m.get("lastStatus") + ")");
                out.printf("  due now:   %s%n", (Boolean) m.get("due") ? "yes" : "no");
                @SuppressWarnings("unchecked")
                List<String> next = (List<String>) m.get("nextText");
                for (String n : next) {
                    out.printf("  next:      %s%n", n);
                }
            }
            out.flush();
            return ExitCodes.OK;
        }
    }

    /**
     * Where the run logs of {@code location} are: the repository directory, or for an object store this host's cache
     * directory (found by opening the repository's catalog, without its key).
     */
    static Path hostDir(RepositoryLocation location) throws IOException {
        if (location instanceof RepositoryLocation.Local l) {
            return l.dir();
        }
        try (Repository r = Repository.open(location, OpenOptions.defaults().withLockMode(LockMode.SHARED)
                .withPassphrase(() -> null).withKeyOptional(true))) {
            return r.dir();
        }
    }

    /** {@code --config FILE} or {@code --repo DIR}: where the logs are. */
    static final class LogSource {
        @Option(names = "--config", paramLabel = "FILE", description = "The job file (its repository holds the logs).")
        Path config;

        @Option(names = "--repo", paramLabel = "DIR", description = "The repository (default: $JBACKUP_REPO).")
        Path repo;
    }

    @Command(name = "log", mixinStandardHelpOptions = true,
        description = "List the scheduled runs recorded in the repository (newest first), or print one run's log.")
    static final class Log implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        JsonMixin json;
        @Mixin
        LoggingMixin logging;

        @ArgGroup(exclusive = true)
        LogSource source;

        @Option(names = "--run", paramLabel = "ID", description = "Print this run's log ('latest' for the newest).")
        String run;

        @Option(names = "--last", paramLabel = "N", defaultValue = "20",
            description = "How many runs to list (default: ${DEFAULT-VALUE}).")
        int last;

        @Override
        public Integer call() throws Exception {
            Path repo;
            boolean remote = false;
            if (source != null && source.config != null) {
                RepositoryLocation location = JobFile.read(source.config).repository();
                remote = location instanceof RepositoryLocation.Remote;
                repo = hostDir(location);
            } else if (source != null && source.repo != null) {
                if (source.repo.toString().regionMatches(true, 0, "s3:", 0, 3)) {
                    throw new UsageException("log --repo takes a directory; the run logs of an s3:// repository "
                        + "are on the host that ran them: give its job file with --config FILE");
                }
                repo = source.repo;
            } else {
                String e = RepoOptions.env.get(RepoOptions.ENV_REPO);
                if (e == null || e.isBlank()) {
                    throw new UsageException("give --config FILE or --repo DIR (or set JBACKUP_REPO)");
                }
                repo = Path.of(e);
            }
            if (!remote && !Files.isRegularFile(repo.resolve("config.json"))) {
                throw new NotARepositoryException("no jbackup repository at " + repo + " (" + repo.resolve("config.json")
                    + " is missing); give the repository with --repo DIR or the job file with --config FILE");
            }
            PrintWriter out = spec.commandLine().getOut();
            if (run != null) {
                String id = run;
                if (id.equals("latest")) {
                    List<RunLog.Summary> all = RunLog.list(repo);
                    if (all.isEmpty()) {
                        throw new NotFoundException("no scheduled runs are recorded in " + repo);
                    }
                    id = all.get(0).id();
                }
                Path f = RunLog.logFile(repo, id);
                if (!Files.exists(f)) {
                    throw new NotFoundException("no run " + id + " in " + repo.resolve(RunLog.DIR)
                        + "; list the runs with: jbackup log");
                }
                if (json.enabled()) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("summary", RunLog.summary(repo, id));
                    m.put("lines", Files.readAllLines(f, StandardCharsets.UTF_8));
                    json.print(m);
                } else {
                    out.print(Files.readString(f, StandardCharsets.UTF_8));
                    out.flush();
                }
                return ExitCodes.OK;
            }
            if (last < 1) {
                throw new UsageException("--last " + last + " (expected: at least 1)");
            }
            List<RunLog.Summary> runs = RunLog.list(repo);
            runs = runs.subList(0, Math.min(last, runs.size()));
            if (json.enabled()) {
                json.print(runs);
                return ExitCodes.OK;
            }
            if (runs.isEmpty()) {
                out.println("No scheduled runs are recorded in " + repo + ".");
            }
            for (RunLog.Summary s : runs) {
                out.printf("%-22s  %-19s  %-8s  %s%n", s.id(), ListCommands.local(s.started()), s.status(), s.summary());
                for (String f : s.failures()) {
                    out.printf("%24s%s%n", "", f);
                }
            }
            out.flush();
            return ExitCodes.OK;
        }
    }
}
