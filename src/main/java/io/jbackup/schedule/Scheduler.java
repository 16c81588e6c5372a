package io.jbackup.schedule;

import io.jbackup.error.ErrorText;
import io.jbackup.engine.Cancellation;
import io.jbackup.engine.DiskJob;
import io.jbackup.engine.DiskResult;
import io.jbackup.engine.EngineOptions;
import io.jbackup.engine.LiveBackup;
import io.jbackup.libvirt.DomainBackup;
import io.jbackup.libvirt.Virsh;
import io.jbackup.engine.LiveSource;
import io.jbackup.engine.OfflineRotation;
import io.jbackup.engine.ProgressListener;
import io.jbackup.error.UsageException;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdUri;
import io.jbackup.nbd.tls.TlsConfig;
import io.jbackup.nbd.tls.TlsMode;
import io.jbackup.store.DiskBusyException;
import io.jbackup.store.FileMutex;
import io.jbackup.store.GcOptions;
import io.jbackup.store.GcReport;
import io.jbackup.store.LockMode;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.PruneReport;
import io.jbackup.store.Repository;
import io.jbackup.store.RepositoryLockedException;
import io.jbackup.store.VerifyOptions;
import io.jbackup.store.VerifyReport;
import io.jbackup.text.Human;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * Runs the tasks of a {@link JobFile} that are due: each job's backup (then its retention), verify and gc.
 *
 * <p><b>Due</b>: a task is due when its cron expression fired (in the job file's zone) after its last run as
 * recorded in the {@link ScheduleState} file, or when it never ran. Missed runs are not repeated: however many fire
 * times passed, one run catches up.
 *
 * <p><b>Locks</b>: every task holds a {@link FileMutex} of its own ({@code REPOSITORY/locks/task-NAME.lock}; for a
 * job {@code task-job-NAME.lock}), and a job's backup takes the disk locks in the engine like every backup
 * ({@link io.jbackup.store.DiskLock}). A run that finds a lock taken (or a disk busy with another backup, e.g. a
 * {@code jbackup full} from the shell) skips the task with a message naming the holder (or, with a lock wait,
 * queues for it); after taking the task lock it reads the state again, so a task that another run just did is not
 * done twice. Nothing here can corrupt the repository: backups, prune and gc
 * have their own locks and write order.
 *
 * <p><b>Log</b>: a run that has anything to do writes {@code REPOSITORY/logs/RUN.log} ({@link RunLog}); a run with
 * nothing due writes nothing, so a crontab line every few minutes costs nothing.
 */
public final class Scheduler {
    private static final Logger LOG = LoggerFactory.getLogger(Scheduler.class);
    public static final String VERIFY = "verify";
    public static final String GC = "gc";

    private final JobFile jobs;
    private final OpenOptions open;
    private final EngineOptions engine;

    /** What a task's schedule says at some instant. */
    public record Planned(String task, CronSchedule schedule, ZonedDateTime lastFire, ScheduleState.Entry last,
                         boolean due) {
    }

    /**
     * How a task of a run ended.
     *
     * @param status {@code ok}, {@code partial}, {@code failed} or {@code skipped}
     */
    public record TaskResult(String task, String status, String message, List<DiskResult> disks, Throwable error) {
        public boolean failed() {
            return "failed".equals(status) || "partial".equals(status);
        }
    }

    /** A run: its id and log file (null when nothing was due) and its tasks. */
    public record RunResult(String runId, Path log, List<TaskResult> tasks) {
        public long failedCount() {
            return tasks.stream().filter(TaskResult::failed).count();
        }
    }

    public Scheduler(JobFile jobs, OpenOptions open, EngineOptions engine) {
        this.jobs = Objects.requireNonNull(jobs);
        this.open = open.withLockMode(LockMode.SHARED);
        this.engine = engine;
    }

    public JobFile jobFile() {
        return jobs;
    }

    static String jobTask(String name) {
        return "job:" + name;
    }

    /** Every task with its last fire time and whether it is due at {@code now}. */
    public List<Planned> plan(Instant now) throws IOException {
        Map<String, ScheduleState.Entry> state = ScheduleState.read(jobs.stateFile());
        List<Planned> out = new ArrayList<>();
        ZonedDateTime t = now.atZone(jobs.zone());
        for (JobFile.Job j : jobs.jobs()) {
            out.add(planned(jobTask(j.name()), j.schedule(), t, state));
        }
        if (jobs.verify() != null) {
            out.add(planned(VERIFY, jobs.verify().schedule(), t, state));
        }
        if (jobs.gc() != null) {
            out.add(planned(GC, jobs.gc().schedule(), t, state));
        }
        return out;
    }

    private static Planned planned(String task, CronSchedule s, ZonedDateTime now, Map<String, ScheduleState.Entry> st) {
        ZonedDateTime fired = s.lastFire(now).orElse(null);
        ScheduleState.Entry last = st.get(task);
        return new Planned(task, s, fired, last, isDue(fired, last));
    }

    private static boolean isDue(ZonedDateTime fired, ScheduleState.Entry last) {
        return fired != null && (last == null || last.lastRun() == null || fired.toInstant().isAfter(last.lastRun()));
    }

    /** The earliest fire time of any task after {@code now}. */
    public Optional<ZonedDateTime> nextFire(Instant now) {
        ZonedDateTime t = now.atZone(jobs.zone());
        List<CronSchedule> all = new ArrayList<>();
        jobs.jobs().forEach(j -> all.add(j.schedule()));
        if (jobs.verify() != null) {
            all.add(jobs.verify().schedule());
        }
        if (jobs.gc() != null) {
            all.add(jobs.gc().schedule());
        }
        return all.stream().map(s -> s.nextFire(t)).flatMap(Optional::stream).min(ZonedDateTime::compareTo);
    }

    /**
     * Runs every task due at {@code now}, one after the other. {@code lockWait} zero skips tasks whose locks are
     * taken; otherwise waits that long for them (queues).
     */
    public RunResult runDue(Instant now, Cancellation cancel, Duration lockWait) throws IOException,
        InterruptedException {
        List<Planned> due = plan(now).stream().filter(Planned::due).toList();
        if (due.isEmpty()) {
            return new RunResult(null, null, List.of());
        }
        List<TaskResult> results = new ArrayList<>();
        try (Repository repo = Repository.open(jobs.repository(), open);
             RunLog log = RunLog.start(repo.dir(), "run-due --config " + jobs.file())) {
            log.line("due: " + String.join(", ", due.stream().map(Planned::task).toList()));
            for (Planned p : due) {
                if (cancel.isCancelled()) {
                    log.line(p.task() + ": not started (stopping)");
                    break;
                }
                TaskResult r = runTask(repo, log, p, now, cancel, lockWait);
                results.add(r);
            }
            long failed = results.stream().filter(TaskResult::failed).count();
            List<String> failures = results.stream().filter(TaskResult::failed)
                .map(r -> r.task() + ": " + r.message()).toList();
            String summary = Human.count(results.size(), "task") + ": " + results.stream().filter(r -> "ok".equals(r.status()))
                .count() + " ok, " + failed + " failed, " + results.stream().filter(r -> "skipped".equals(r.status()))
                .count() + " skipped";
            log.finish(failed == 0 ? "ok" : "failed", summary, failures);
            return new RunResult(log.id(), log.file(), results);
        }
    }

    private TaskResult runTask(Repository repo, RunLog log, Planned p, Instant now, Cancellation cancel,
                               Duration lockWait) throws IOException, InterruptedException {
        JobFile.Job job = p.task().startsWith("job:") ? jobs.jobs().stream()
            .filter(j -> jobTask(j.name()).equals(p.task())).findFirst().orElseThrow() : null;
        Path lockFile = repo.dir().resolve("locks").resolve("task-" + p.task().replace(':', '-') + ".lock");
        FileMutex held = null;
        try {
            Optional<FileMutex> m = lockWait.isZero() ? FileMutex.tryAcquire(lockFile, "run-due " + p.task())
                : Optional.of(FileMutex.acquire(lockFile, "run-due " + p.task(), lockWait));
            if (m.isEmpty()) {
                String msg = "skipped: " + lockFile.getFileName().toString().replaceFirst("\\.lock$", "")
                    + " is busy (" + FileMutex.holder(lockFile) + "); it runs at its next due time";
                log.line(p.task() + ": " + msg);
                return new TaskResult(p.task(), "skipped", msg, List.of(), null);
            }
            held = m.get();
            // another run may have done it while we waited for the locks
            Planned again = planned(p.task(), p.schedule(), now.atZone(jobs.zone()),
                ScheduleState.read(jobs.stateFile()));
            if (!again.due()) {
                String msg = "skipped: already run at " + again.last().lastRun() + " by run " + again.last().run();
                log.line(p.task() + ": " + msg);
                return new TaskResult(p.task(), "skipped", msg, List.of(), null);
            }
            // the run's time (not the end): a fire time that passes while the task runs makes it due again
            Instant started = now;
            TaskResult r;
            try {
                r = job != null ? backup(repo, log, job, cancel, lockWait) : p.task().equals(VERIFY)
                    ? verify(repo, log) : gc(repo, log);
            } catch (DiskBusyException e) {
                // another run (the shell, another job) is backing up a disk of the job: like a busy task lock
                String msg = "skipped: " + e.getMessage() + "; it runs at its next due time";
                log.line(p.task() + ": " + msg);
                return new TaskResult(p.task(), "skipped", msg, List.of(), null);
            } catch (IOException | RuntimeException e) {
                String msg = ErrorText.describe(e);
                log.line(p.task() + ": failed: " + msg);
                r = new TaskResult(p.task(), "failed", msg, List.of(), e);
            }
            ScheduleState.update(jobs.stateFile(), p.task(), new ScheduleState.Entry(started, r.status(), r.message(),
                log.id()));
            return r;
        } finally {
            if (held != null) {
                held.close();
            }
        }
    }

    private TaskResult backup(Repository repo, RunLog log, JobFile.Job job, Cancellation cancel, Duration lockWait)
        throws IOException, InterruptedException {
        String task = jobTask(job.name());
        Map<String, String> labels = new HashMap<>(job.labels());
        labels.put("job", job.name());
        String note = "scheduled by " + jobs.file().getFileName();
        List<DiskResult> results;
        Duration timeout = Duration.ofSeconds(job.timeoutSeconds());
        EngineOptions eo = engine.withRetries(job.retries(), engine.retryBackoff()).withDiskLockWait(lockWait);
        ProgressListener progress = new LogProgress(log, task);
        if (job.domain() != null) {
            JobFile.Domain d = job.domain();
            DomainBackup.Quiesce q = d.quiesce() == null ? DomainBackup.Quiesce.AUTO
                : d.quiesce() ? DomainBackup.Quiesce.ON : DomainBackup.Quiesce.OFF;
            log.line(task + ": backing up libvirt domain " + d.name() + " (" + job.mode().name().toLowerCase() + ")");
            results = new DomainBackup(repo, new Virsh(d.connect(), Duration.ofSeconds(120)), eo,
                progress, cancel).run(new DomainBackup.Options(d.name(), job.vm(),
                new java.util.HashSet<>(d.exclude()), q, d.scratchDir()), job.mode(),
                ClientOptions.defaults().withTimeout(timeout), labels, note);
        } else if (JobFile.live(job.qmp())) {
            Map<String, String> q = job.qmp();
            List<LiveSource.Disk> ds = job.disks().stream()
                .map(d -> new LiveSource.Disk(d.name(), d.node(), d.device())).toList();
            LiveSource src = new LiveSource(Path.of(q.get("socket")), ds, q.containsKey("qga") ? Path.of(q.get("qga"))
                : null, Duration.ofSeconds(Long.parseLong(q.getOrDefault("qgaTimeout", "30"))),
                q.containsKey("nbdServer") ? Path.of(q.get("nbdServer")) : null,
                q.containsKey("scratchDir") ? Path.of(q.get("scratchDir")) : null,
                Duration.ofSeconds(Long.parseLong(q.getOrDefault("timeout", "30"))));
            log.line(task + ": backing up " + Human.count(ds.size(), "disk") + " of the running QEMU at " + src.qmpSocket() + " ("
                + job.mode().name().toLowerCase() + ")");
            results = new LiveBackup(repo, eo, progress, cancel).run(src, job.vm(), job.mode(),
                ClientOptions.defaults().withTimeout(timeout), labels, note);
        } else {
            List<DiskJob> diskJobs = new ArrayList<>();
            List<OfflineRotation.Image> images = new ArrayList<>();
            for (JobFile.Disk d : job.disks()) {
                if (d.image() != null) {
                    images.add(new OfflineRotation.Image(d.name(), d.image(), d.bitmap()));
                    continue;
                }
                NbdUri uri = NbdUri.parse(d.source());
                ClientOptions co = ClientOptions.defaults().withTls(tls(job.tls(), uri))
                    .withConnections(job.connections()).withTimeout(timeout);
                diskJobs.add(new DiskJob(job.vm(), d.name(), uri, co, job.mode(), d.bitmap(), labels, note));
            }
            log.line(task + ": backing up " + Human.count(job.disks().size(), "disk") + " (" + job.mode().name().toLowerCase()
                + (images.isEmpty() ? "" : "; " + Human.count(images.size(), "offline image") + " served by jbackup, "
                + "its bitmaps rotated") + ")");
            // one set (with no images: the engine over the exports alone); the images' results come first, so
            // they are put back in the job file's order
            List<DiskResult> raw = OfflineRotation.backUp(repo, job.vm(), images, diskJobs, job.mode(),
                ClientOptions.defaults().withConnections(job.connections()).withTimeout(timeout), labels, note, eo,
                progress, cancel);
            results = job.disks().stream().map(d -> raw.stream().filter(r -> r.disk().equals(d.name())).findFirst()
                .orElseThrow()).toList();
        }
        int ok = 0;
        Throwable firstError = null;
        List<String> problems = new ArrayList<>();
        for (DiskResult r : results) {
            String who = r.vm() == null ? r.disk() : r.vm() + "/" + r.disk();
            if (r.ok()) {
                ok++;
                log.line(String.format(java.util.Locale.ROOT, "%s: %s: %s backup %s, %d bytes read, %d new, %d "
                        + "deduplicated, %d stored, %.1f s%s", task, who, r.type(), r.backupId(), r.bytesRead(),
                    r.bytesNew(), r.bytesDedup(), r.bytesStored(), r.seconds(),
                    r.reason() == null ? "" : " [" + r.reason() + "]"));
            } else {
                log.line(task + ": " + who + ": " + (DiskResult.SKIPPED.equals(r.status()) ? "SKIPPED" : "FAILED")
                    + ": " + r.reason());
                problems.add(who + ": " + r.reason());
                if (firstError == null) {
                    firstError = r.error();
                }
            }
        }
        if (ok > 0 && job.retention() != null) {
            try {
                PruneReport pr = repo.prune(job.retention(), b -> Objects.equals(b.vm(), job.vm())
                    && (job.domain() != null || job.disks().stream().anyMatch(d -> d.name().equals(b.disk()))),
                    false, Duration.ZERO);
                log.line(task + ": retention (" + pr.policy() + "): " + pr.kept() + " kept, " + pr.removed()
                    + " removed");
            } catch (RepositoryLockedException e) {
                log.line(task + ": retention skipped this time: " + e.getMessage());
            }
        }
        String status = ok == results.size() ? "ok" : ok == 0 ? "failed" : "partial";
        String msg = ok == results.size() ? Human.count(ok, "disk") + " backed up" : String.join("; ", problems);
        return new TaskResult(task, status, msg, results, firstError);
    }

    /**
     * Writes the notes and warnings of a job's disks into the run's log (why auto made a full backup, a lost
     * connection and the reconnect, which bitmap of an offline image records the changes now); warnings also go
     * to the log output as usual.
     */
    private record LogProgress(RunLog log, String task) implements ProgressListener {
        @Override
        public void message(String disk, String text) {
            log.line(task + ": " + disk + ": " + text);
        }

        @Override
        public void warning(String disk, String text) {
            log.line(task + ": " + disk + ": warning: " + text);
            ProgressListener.super.warning(disk, text);
        }
    }

    private TaskResult verify(Repository repo, RunLog log) throws IOException {
        double sample = jobs.verify().value();
        log.line("verify: checking " + sample + "% of the chunks");
        VerifyReport r = repo.verify(new VerifyOptions(List.of(), sample, false));
        String msg = Human.count(r.chunksChecked(), "chunk") + " checked, " + r.damagedChunks().size() + " damaged, "
            + Human.count(r.damagedIndexes().size(), "damaged index", "damaged indexes");
        log.line("verify: " + msg);
        return new TaskResult(VERIFY, r.ok() ? "ok" : "failed", r.ok() ? msg : "damage found: " + msg
            + "; run jbackup verify for details", List.of(), null);
    }

    private TaskResult gc(Repository repo, RunLog log) throws IOException {
        GcOptions o = GcOptions.defaults().withRepackThreshold((int) jobs.gc().value())
            .withProgress(line -> log.line("gc: " + line));
        GcReport r = repo.gc(jobs.gc().grace() == null ? o : o.withGrace(jobs.gc().grace()));
        String msg = r.deferred() ? "deferred: backups kept running" : Human.bytes(r.bytesReclaimed()) + " reclaimed, "
            + Human.count(r.packsDeleted(), "pack") + " deleted";
        return new TaskResult(GC, "ok", msg, List.of(), null);
    }

    static TlsConfig tls(Map<String, String> t, NbdUri uri) {
        Path creds = t.containsKey("creds") ? Path.of(t.get("creds")) : null;
        Path psk = t.containsKey("pskFile") ? Path.of(t.get("pskFile")) : null;
        if (creds == null && psk == null) {
            if (uri.tls()) {
                throw new UsageException("source " + uri + " needs TLS credentials: tls: {creds: DIR} or "
                    + "{pskFile: FILE}");
            }
            return TlsConfig.OFF;
        }
        return new TlsConfig(TlsMode.REQUIRE, creds, psk, t.getOrDefault("username", "qemu"), t.get("hostname"),
            !"false".equalsIgnoreCase(t.getOrDefault("verify", "true")));
    }

    /** For logs: the plan in one line per task. */
    public static String describe(Planned p) {
        return p.task() + " (" + p.schedule() + ")" + (p.due() ? " due" : "");
    }
}
