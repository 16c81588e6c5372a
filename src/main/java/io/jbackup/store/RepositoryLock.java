package io.jbackup.store;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The repository lock: an OS file lock ({@link FileLock}, shared or exclusive) on {@code DIR/lock}, plus a record
 * per holding process in {@code DIR/locks/<host>-<pid>-<start>.json} ({@code pid}, {@code host}, {@code mode},
 * {@code since}, {@code command}) used only to report who holds it.
 *
 * <p>The OS releases a file lock when its process dies, so the lock itself can never be stale; what a killed
 * process leaves behind is its record. Records of dead processes on this host (pid gone, or reused by a process
 * started at another time) are reported and removed by the next process that takes the lock; an exclusive holder
 * removes every other record, since nobody else can hold the lock.
 *
 * <p>Java file locks belong to the whole JVM, so the lock is also counted per JVM: several repositories opened
 * shared in one process share one file lock; an exclusive open conflicts with any other open in the process.
 */
final class RepositoryLock implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(RepositoryLock.class);
    static final String LOCK_FILE = "lock";
    static final String RECORD_DIR = "locks";
    private static final Map<Path, Held> HELD = new HashMap<>();
    private static final long POLL_MILLIS = 100;

    /** The JVM-wide state of one repository's lock. */
    private static final class Held {
        final FileChannel ch;
        final FileLock lock;
        final LockMode mode;
        final Path record;
        int count;

        Held(FileChannel ch, FileLock lock, LockMode mode, Path record) {
            this.ch = ch;
            this.lock = lock;
            this.mode = mode;
            this.record = record;
        }
    }

    private final Path key;
    private final LockMode mode;
    private boolean released;

    private RepositoryLock(Path key, LockMode mode) {
        this.key = key;
        this.mode = mode;
    }

    LockMode mode() {
        return mode;
    }

    /**
     * Takes the lock, waiting up to {@code wait} for a conflicting holder to leave. Throws
     * {@link RepositoryLockedException} naming the holders if it cannot.
     */
    static RepositoryLock acquire(Path dir, LockMode mode, Duration wait) throws IOException {
        Path key = dir.toRealPath();
        long deadline = System.nanoTime() + Math.min(wait.toNanos(), Long.MAX_VALUE / 4);
        boolean waitedLogged = false;
        while (true) {
            String conflict;
            synchronized (HELD) {
                Held h = HELD.get(key);
                if (h != null) {
                    if (h.mode == LockMode.SHARED && mode == LockMode.SHARED) {
                        h.count++;
                        return new RepositoryLock(key, mode);
                    }
                    conflict = "this process already holds it " + h.mode.name().toLowerCase(Locale.ROOT);
                } else {
                    FileChannel ch = FileChannel.open(key.resolve(LOCK_FILE), StandardOpenOption.CREATE,
                        StandardOpenOption.READ, StandardOpenOption.WRITE);
                    FileLock fl;
                    try {
                        fl = ch.tryLock(0, Long.MAX_VALUE, mode == LockMode.SHARED);
                    } catch (IOException | RuntimeException e) {
                        ch.close();
                        throw e;
                    }
                    if (fl != null) {
                        Path record = null;
                        try {
                            cleanStale(key, mode);
                            record = writeRecord(key, mode);
                        } catch (IOException e) {
                            fl.release();
                            ch.close();
                            throw e;
                        }
                        Held nh = new Held(ch, fl, mode, record);
                        nh.count = 1;
                        HELD.put(key, nh);
                        return new RepositoryLock(key, mode);
                    }
                    ch.close();
                    conflict = describeHolders(key);
                }
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new RepositoryLockedException("repository " + dir + " is locked: " + conflict + "; "
                    + (wait.isZero() ? "retry later, or wait for it with --wait-lock[=DURATION]"
                    : "gave up after waiting " + DiskLock.describe(wait) + " (--wait-lock)"));
            }
            if (!waitedLogged) {
                LOG.info("repository {} is locked ({}); waiting {}", dir, conflict, DiskLock.waiting(wait));
                waitedLogged = true;
            }
            try {
                Thread.sleep(Math.max(1, Math.min(POLL_MILLIS, left / 1_000_000)));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new java.io.InterruptedIOException("interrupted while waiting for the lock of " + dir);
            }
        }
    }

    private static Path writeRecord(Path dir, LockMode mode) throws IOException {
        Owner me = Owner.current();
        Path rdir = dir.resolve(RECORD_DIR);
        Files.createDirectories(rdir);
        ObjectNode n = Json.MAPPER.createObjectNode();
        n.put("pid", me.pid());
        n.put("host", me.host());
        n.put("start", me.startMillis());
        n.put("mode", mode.name().toLowerCase(Locale.ROOT));
        n.put("since", Instant.now().truncatedTo(java.time.temporal.ChronoUnit.SECONDS).toString());
        String cmd = System.getProperty("sun.java.command", "");
        n.put("command", cmd.length() > 200 ? cmd.substring(0, 200) : cmd);
        Path record = rdir.resolve(me.token() + ".json");
        Files.write(record, Json.bytes(n));
        return record;
    }

    /** A lock record as read back. */
    private record HolderRecord(Path file, Owner owner, String mode, String since, String command) {
        String describe() {
            return mode + " lock held by pid " + owner.pid() + " on host " + owner.host() + " since " + since
                + (command.isEmpty() ? "" : " (" + command + ")");
        }
    }

    private static List<HolderRecord> records(Path dir) {
        List<HolderRecord> out = new ArrayList<>();
        Path rdir = dir.resolve(RECORD_DIR);
        if (!Files.isDirectory(rdir)) {
            return out;
        }
        try (DirectoryStream<Path> s = Files.newDirectoryStream(rdir, "*.json")) {
            for (Path f : s) {
                try {
                    if (Files.size(f) > 64 * 1024) {
                        continue;
                    }
                    JsonNode n = Json.MAPPER.readTree(Files.readAllBytes(f));
                    out.add(new HolderRecord(f, new Owner(n.path("host").asText(), n.path("pid").asLong(),
                        n.path("start").asLong()), n.path("mode").asText(), n.path("since").asText(),
                        n.path("command").asText()));
                } catch (IOException e) {
                    LOG.debug("unreadable lock record {}: {}", f, e.toString());
                }
            }
        } catch (IOException e) {
            LOG.debug("cannot list {}: {}", rdir, e.toString());
        }
        return out;
    }

    private static String describeHolders(Path dir) {
        List<String> live = new ArrayList<>();
        for (HolderRecord r : records(dir)) {
            if (r.owner().knownDead()) {
                live.add("stale record of dead pid " + r.owner().pid() + " (" + r.mode() + " since " + r.since() + ")");
            } else {
                live.add(r.describe());
            }
        }
        return live.isEmpty() ? "held by another process (it left no lock record in " + dir.resolve(RECORD_DIR) + ")"
            : String.join("; ", live);
    }

    /** Removes records left by dead processes (all others' records, when we hold the lock exclusively). */
    private static void cleanStale(Path dir, LockMode mode) {
        Owner me = Owner.current();
        for (HolderRecord r : records(dir)) {
            if (r.owner().equals(me)) {
                continue;
            }
            boolean dead = r.owner().knownDead();
            if (dead || mode == LockMode.EXCLUSIVE) {
                // routine after a killed or interrupted run: only -v tells (the lock itself was never stale)
                LOG.info("removing stale lock record {}: {} — {}", r.file().getFileName(), r.describe(),
                    dead ? "that process is gone" : "it cannot hold the lock while we hold it exclusively");
                try {
                    Files.deleteIfExists(r.file());
                } catch (IOException e) {
                    LOG.info("cannot remove stale lock record {}: {}", r.file(), e.toString());
                }
            }
        }
    }

    /** Stale lock records (of dead processes) currently in the repository, described for reports. */
    static List<String> staleRecords(Path dir) {
        List<String> out = new ArrayList<>();
        for (HolderRecord r : records(dir)) {
            if (r.owner().knownDead()) {
                out.add(r.describe());
            }
        }
        return out;
    }

    @Override
    public void close() {
        synchronized (HELD) {
            if (released) {
                return;
            }
            released = true;
            Held h = HELD.get(key);
            if (h == null || --h.count > 0) {
                return;
            }
            HELD.remove(key);
            try {
                // the last user in this process: its temporary directory is empty now (nobody can create in it
                // before taking the lock again, which this monitor serialises)
                Files.deleteIfExists(key.resolve(Repository.TMP_DIR).resolve(Owner.current().token()));
            } catch (IOException e) {
                LOG.debug("cannot remove the temporary directory of this process: {}", e.toString());
            }
            try {
                Files.deleteIfExists(h.record);
            } catch (IOException e) {
                LOG.warn("cannot remove lock record {}: {}", h.record, e.toString());
            }
            try {
                h.lock.release();
                h.ch.close();
            } catch (IOException e) {
                LOG.warn("cannot release lock of {}: {}", key, e.toString());
            }
        }
    }
}
