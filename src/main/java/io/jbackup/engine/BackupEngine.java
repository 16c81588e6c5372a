package io.jbackup.engine;

import io.jbackup.error.ErrorText;
import io.jbackup.store.DiskBusyException;
import io.jbackup.store.DiskLock;
import io.jbackup.store.FileMutex;
import io.jbackup.error.UsageException;
import io.jbackup.store.Repository;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Backs up one backup set: several disks of one VM (or one standalone disk), in parallel. Every disk of a run
 * gets the same {@code set} label, so the set can be listed and restored together. A disk that fails does not stop
 * the others; the caller sees each disk's {@link DiskResult}.
 *
 * <p>Before anything is read, the run takes the {@link DiskLock} of every disk of the set (waiting up to
 * {@link EngineOptions#diskLockWait()}); a disk another run is backing up fails the whole run with
 * {@link DiskBusyException}. Every entry point goes through here, so every backup holds its disks' locks.
 */
public final class BackupEngine {
    private static final Logger LOG = LoggerFactory.getLogger(BackupEngine.class);

    private final Repository repo;
    private final EngineOptions options;
    private final ProgressListener progress;
    private final Cancellation cancel;
    private final CommitCheck commitCheck;

    public BackupEngine(Repository repo, EngineOptions options, ProgressListener progress, Cancellation cancel) {
        this(repo, options, progress, cancel, CommitCheck.NONE);
    }

    /** An engine that runs {@code commitCheck} before each disk's backup commits. */
    public BackupEngine(Repository repo, EngineOptions options, ProgressListener progress, Cancellation cancel,
                        CommitCheck commitCheck) {
        this.repo = repo;
        this.options = options;
        this.progress = progress;
        this.cancel = cancel;
        this.commitCheck = commitCheck;
    }

    /**
     * Runs every job; never throws for a single disk's failure (see {@link DiskResult#status()}). Throws
     * {@link DiskBusyException} (nothing started) when another run holds a disk's lock.
     */
    public List<DiskResult> run(List<DiskJob> jobs) throws IOException, InterruptedException {
        if (jobs.isEmpty()) {
            throw new UsageException("no disks to back up: give --source URI (or NAME=URI, repeatable)");
        }
        DiskJob first = jobs.get(0);
        List<FileMutex> locks = lockDisks(repo, options, cancel, jobs.stream().map(j -> new DiskKey(j.vm(), j.disk()))
            .toList(), first.mode().name().toLowerCase(Locale.ROOT) + " backup", first.note());
        try {
            return runLocked(jobs);
        } finally {
            locks.forEach(FileMutex::close);
        }
    }

    /**
     * A disk of a set: VM (or null) and disk name. {@code equals} and {@code hashCode} are written out: a record's
     * generated ones are bootstrapped through {@code ObjectMethods} on first use, which spins 14 method-handle classes
     * at the start of every backup (bench/README.md, "Start-up without spun classes").
     */
    public record DiskKey(String vm, String disk) {
        String label() {
            return vm == null ? disk : vm + "/" + disk;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof DiskKey k && java.util.Objects.equals(vm, k.vm)
                && java.util.Objects.equals(disk, k.disk);
        }

        @Override
        public int hashCode() {
            return 31 * java.util.Objects.hashCode(vm) + java.util.Objects.hashCode(disk);
        }
    }

    /**
     * Takes the disk locks of a set, in name order (so two sets that share disks cannot deadlock while waiting);
     * all or none. {@code kind} and {@code note} say what the run does, for the holder text.
     */
    public static List<FileMutex> lockDisks(Repository repo, EngineOptions options, Cancellation cancel, List<DiskKey> disks,
                                     String kind, String note) throws IOException {
        List<FileMutex> held = new ArrayList<>();
        try {
            for (DiskKey d : disks.stream().distinct().sorted(java.util.Comparator.comparing(DiskKey::label)).toList()) {
                held.add(DiskLock.acquire(repo.dir(), d.vm(), d.disk(), "jbackup " + kind + " of " + d.label()
                    + (note == null ? "" : " (" + note + ")"), options.diskLockWait(), cancel::isCancelled));
            }
            return held;
        } catch (IOException | RuntimeException e) {
            held.forEach(FileMutex::close);
            throw e;
        }
    }

    /** {@link #run} for a caller that holds the disks' locks already ({@link LiveBackup}). */
    public List<DiskResult> runLocked(List<DiskJob> jobs) throws InterruptedException {
        if (jobs.isEmpty()) {
            throw new UsageException("no disks to back up: give --source URI (or NAME=URI, repeatable)");
        }
        String set = UUID.randomUUID().toString().substring(0, 8);
        List<DiskJob> labelled = new ArrayList<>();
        for (DiskJob j : jobs) {
            Map<String, String> labels = new HashMap<>(j.labels());
            if (jobs.size() > 1 || j.vm() != null) {
                labels.putIfAbsent("set", set);
            }
            labelled.add(new DiskJob(j.vm(), j.disk(), j.uri(), j.client(), j.mode(), j.bitmap(), labels, j.note(),
                j.attachments()));
        }
        if (labelled.size() == 1) {
            return List.of(runOne(labelled.get(0)));
        }
        ExecutorService pool = Executors.newFixedThreadPool(Math.min(options.parallelDisks(), labelled.size()), r -> {
            Thread t = new Thread(r, "backup-disk");
            t.setDaemon(true);
            return t;
        });
        try {
            List<Future<DiskResult>> futures = new ArrayList<>();
            for (DiskJob j : labelled) {
                futures.add(pool.submit(() -> runOne(j)));
            }
            List<DiskResult> results = new ArrayList<>();
            for (Future<DiskResult> f : futures) {
                try {
                    results.add(f.get());
                } catch (ExecutionException e) {
                    throw new IllegalStateException("backup worker failed unexpectedly", e.getCause());
                }
            }
            return results;
        } finally {
            pool.shutdownNow();
        }
    }

    private DiskResult runOne(DiskJob job) throws InterruptedException {
        long t0 = System.nanoTime();
        try {
            return new DiskBackup(repo, job, options, progress, cancel, commitCheck).run();
        } catch (InterruptedException e) {
            throw e;
        } catch (Exception e) {
            if (e instanceof java.util.concurrent.CancellationException) {
                throw (java.util.concurrent.CancellationException) e;
            }
            LOG.debug("backup of {} failed", job.disk(), e);
            String msg = ErrorText.describe(e);
            return new DiskResult(job.vm(), job.disk(), "failed", null, null, null, msg, 0, 0, 0, 0, 0, 0,
                (System.nanoTime() - t0) / 1e9, 0, 0, e);
        }
    }

}
