package io.jbackup.store.layout;

import java.nio.file.Path;
import java.util.Optional;

/**
 * The name of every object and file of a repository (format 1, docs/repository-format.md), as an object-store key
 * relative to the repository's root: {@code packs/ab/ab12….pack}, {@code indexes/ID.idx}, … — and the reverse,
 * {@link #parse}, which tells what a listed key is. A local repository maps a key to {@code DIR/KEY}
 * ({@link #file}); an S3 repository to {@code PREFIX/KEY}. Depends on nothing, so every layer may use it.
 *
 * <p>{@link Kind#scope()} says which names describe the backups ({@link Scope#REPOSITORY}: what an object store
 * holds) and which are one host's working state ({@link Scope#HOST}: catalog cache, locks, temporary files, logs).
 *
 * <p><b>Migration plan</b> (issue #13: "nothing else builds a path"). These places build names today and are to
 * call this class instead, in the commits that put the repository on the object-store port:
 * <ul>
 *   <li>{@code store.PackFormat.path/DIR/SUFFIX/isName} → {@link #pack}, {@link #PACKS}, {@link #isPackName};
 *       callers: {@code PackWriter} (seal), {@code PackFiles} (read), {@code Repository} (chunk reads, damage
 *       messages, orphan scan of {@code packs/}), {@code Verifier} (5 places), {@code GarbageCollector} (2);</li>
 *   <li>{@code store.IndexFile.path/DIR/SUFFIX} → {@link #index}, {@link #INDEXES}; callers: {@code Repository}
 *       (open parent, delete, forget, marker scan, format check), {@code PackedBackupWriter} (commit and its tmp
 *       index), {@code Verifier} (4), {@code GarbageCollector} (live-index scan), {@code CatalogRebuilder};</li>
 *   <li>{@code Repository.BAD_SUFFIX/KEEP_SUFFIX/DELETED_SUFFIX} → {@link #badMarker}, {@link #keepMarker},
 *       {@link #deletedIndex}; callers: {@code Repository} (markBad, setProtected, delete, recovery of
 *       {@code .deleted}), {@code CatalogRebuilder};</li>
 *   <li>{@code store.KeyFile.path/DIR/FILE_NAME/SUFFIX/idOf} and {@code KeyManager.LOCK_FILE} → {@link #keySlot},
 *       {@link #FIRST_KEY_SLOT}, {@link #KEYS}, {@link #KEY_LOCK}; callers: {@code KeySlots}, {@code KeyManager},
 *       {@code Repository.init};</li>
 *   <li>{@code store.RepositoryConfig.FILE_NAME} → {@link #CONFIG}; callers: {@code RepositoryConfig},
 *       {@code Repository} (init, format check), {@code cli.ScheduleCommands} (is it a repository?);</li>
 *   <li>{@code catalog.Catalog.FILE_NAME} → {@link #CATALOG}; callers: {@code Repository} (init, open, rebuild),
 *       {@code CatalogRebuilder} (and its {@code .old-STAMP} copies);</li>
 *   <li>{@code Repository.TMP_DIR} → {@link #tmpDir}; callers: {@code Repository} (own tmp, stale tmp cleanup),
 *       {@code CatalogRebuilder}, {@code RepositoryLock} (removes its own tmp);</li>
 *   <li>{@code RepositoryLock.LOCK_FILE/RECORD_DIR} → {@link #REPOSITORY_LOCK}, {@link #lockRecord},
 *       {@link #LOCKS}; {@code Repository.GC_LOCK} → {@link #GC_LOCK}; {@code store.DiskLock.file} →
 *       {@link #diskLock}; {@code schedule.Scheduler} task locks → {@link #taskLock};</li>
 *   <li>{@code engine.OverlayFiles} → {@link #OVERLAYS}; {@code schedule.RunLog.DIR} → {@link #runLog},
 *       {@link #runSummary}; {@code schedule.JobFile} state → {@link #scheduleState}.</li>
 * </ul>
 * {@code RepositoryLayoutConformanceTest} holds this class to the names today's code writes, so the rewiring
 * cannot change the format.
 */
public final class RepositoryLayout {
    /** Format version and settings fixed at init; written last by init. */
    public static final String CONFIG = "config.json";
    /** The SQLite catalog (with {@code -wal} and {@code -shm} while open): a cache of what the objects say. */
    public static final String CATALOG = "catalog.db";
    /** The prefix of the key slots. */
    public static final String KEYS = "keys/";
    /** The slot {@code init} writes. */
    public static final String FIRST_KEY_SLOT = "keys/repository.key";
    /** One key change at a time. */
    public static final String KEY_LOCK = "keys/lock";
    /** The prefix of the sealed packs. */
    public static final String PACKS = "packs/";
    /** The prefix of the index files and their markers. */
    public static final String INDEXES = "indexes/";
    /** The prefix of the manifests: on an object store, the object that makes a backup complete. */
    public static final String MANIFESTS = "manifests/";
    /** The prefix of the files being written. */
    public static final String TMP = "tmp/";
    /** The OS-locked file of the repository lock. */
    public static final String REPOSITORY_LOCK = "lock";
    /** The prefix of lock records and of per-disk and per-task locks. */
    public static final String LOCKS = "locks/";
    /** One gc or prune at a time. */
    public static final String GC_LOCK = "gc.lock";
    /**
     * In an object store, the lease that prune, forget and gc of every host take before deleting anything
     * ({@code store.DeletionLease}).
     */
    public static final String DELETION_LEASE = "deletion.lease";
    /** The default directory of serve --writable overlays. */
    public static final String OVERLAYS = "overlays/";
    /** Scheduled runs: logs and summaries. */
    public static final String LOGS = "logs/";
    /** State of job files. */
    public static final String SCHEDULE = "schedule/";

    static final String PACK_SUFFIX = ".pack";
    static final String INDEX_SUFFIX = ".idx";
    static final String BAD_SUFFIX = ".bad";
    static final String KEEP_SUFFIX = ".keep";
    static final String DELETED_SUFFIX = ".deleted";
    static final String KEY_SUFFIX = ".key";
    static final String MANIFEST_SUFFIX = ".json";

    private RepositoryLayout() {
    }

    /** Whether a key describes the backups (an object store holds it) or one host's working state. */
    public enum Scope { REPOSITORY, HOST }

    /** What a key names. */
    public enum Kind {
        CONFIG(Scope.REPOSITORY), KEY_SLOT(Scope.REPOSITORY), PACK(Scope.REPOSITORY), INDEX(Scope.REPOSITORY),
        MANIFEST(Scope.REPOSITORY), DELETION_LEASE(Scope.REPOSITORY),
        BAD_MARKER(Scope.REPOSITORY), KEEP_MARKER(Scope.REPOSITORY), DELETED_INDEX(Scope.REPOSITORY),
        KEY_LOCK(Scope.HOST), CATALOG(Scope.HOST), TMP(Scope.HOST), REPOSITORY_LOCK(Scope.HOST),
        LOCK_RECORD(Scope.HOST), GC_LOCK(Scope.HOST), DISK_LOCK(Scope.HOST), TASK_LOCK(Scope.HOST),
        OVERLAY(Scope.HOST), RUN_LOG(Scope.HOST), RUN_SUMMARY(Scope.HOST), SCHEDULE_STATE(Scope.HOST);

        private final Scope scope;

        Kind(Scope scope) {
            this.scope = scope;
        }

        public Scope scope() {
            return scope;
        }
    }

    /**
     * A parsed key: its kind and the name it carries (pack name, backup id, key-slot id, owner token, run id...;
     * the whole rest of the key for {@link Kind#TMP} and {@link Kind#OVERLAY}; empty for fixed names).
     */
    public record Entry(Kind kind, String name) {
    }

    /** {@code packs/hh/NAME.pack}; {@code name} is 32 lowercase hex digits, {@code hh} its first two. */
    public static String pack(String name) {
        if (!isPackName(name)) {
            throw new IllegalArgumentException("not a pack name (32 lowercase hex digits): " + name);
        }
        return PACKS + name.substring(0, 2) + "/" + name + PACK_SUFFIX;
    }

    /** Whether {@code s} is a pack name: 32 lowercase hex digits. */
    public static boolean isPackName(String s) {
        if (s == null || s.length() != 32) {
            return false;
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (!(c >= '0' && c <= '9' || c >= 'a' && c <= 'f')) {
                return false;
            }
        }
        return true;
    }

    /** {@code indexes/ID.idx}: the index of a complete backup. */
    public static String index(String backupId) {
        return INDEXES + id(backupId) + INDEX_SUFFIX;
    }

    /**
     * {@code manifests/ID.json}: the manifest of a complete backup in an object store, written after its packs and
     * its index (docs/repository-format.md).
     */
    public static String manifest(String backupId) {
        return MANIFESTS + id(backupId) + MANIFEST_SUFFIX;
    }

    /** {@code indexes/ID.bad}: the marker of a backup marked bad. */
    public static String badMarker(String backupId) {
        return INDEXES + id(backupId) + BAD_SUFFIX;
    }

    /** {@code indexes/ID.keep}: the marker of a protected backup. */
    public static String keepMarker(String backupId) {
        return INDEXES + id(backupId) + KEEP_SUFFIX;
    }

    /** {@code indexes/ID.deleted}: an index being deleted. */
    public static String deletedIndex(String backupId) {
        return INDEXES + id(backupId) + DELETED_SUFFIX;
    }

    /** {@code keys/ID.key}: a key slot. */
    public static String keySlot(String slotId) {
        return KEYS + id(slotId) + KEY_SUFFIX;
    }

    /** {@code tmp/OWNER/N/}: the directory of repository instance {@code n} of process {@code ownerToken}. */
    public static String tmpDir(String ownerToken, int instance) {
        return TMP + id(ownerToken) + "/" + instance + "/";
    }

    /** {@code locks/OWNER.json}: who holds the repository lock. */
    public static String lockRecord(String ownerToken) {
        return LOCKS + id(ownerToken) + ".json";
    }

    /** {@code locks/disk-VM--DISK.lock} ({@code VM} is {@code _} for a standalone disk): one backup per disk. */
    public static String diskLock(String vm, String disk) {
        return LOCKS + "disk-" + (vm == null ? "_" : vm) + "--" + disk + ".lock";
    }

    /** {@code locks/task-TASK.lock} with {@code :} of the task name as {@code -}: one scheduled task at a time. */
    public static String taskLock(String task) {
        return LOCKS + "task-" + task.replace(':', '-') + ".lock";
    }

    /** {@code logs/RUN.log}: the log of a scheduled run. */
    public static String runLog(String runId) {
        return LOGS + id(runId) + ".log";
    }

    /** {@code logs/RUN.json}: the summary of a finished scheduled run. */
    public static String runSummary(String runId) {
        return LOGS + id(runId) + ".json";
    }

    /** {@code schedule/NAME.json}: the state of the job file whose name without extension is {@code jobStem}. */
    public static String scheduleState(String jobStem) {
        return SCHEDULE + jobStem.replaceAll("[^A-Za-z0-9._-]", "_") + ".json";
    }

    /** The file of {@code key} in the local repository {@code root}: the one place a key becomes a path. */
    public static Path file(Path root, String key) {
        return root.resolve(key);
    }

    /**
     * What {@code key} names, or empty when it is nothing of the repository: a server's temporary upload
     * ({@code packs/ab/NAME.pack-UUID}), a stray file, a malformed name. Readers skip what does not parse.
     */
    public static Optional<Entry> parse(String key) {
        switch (key) {
            case CONFIG:
                return fixed(Kind.CONFIG);
            case CATALOG:
            case CATALOG + "-wal":
            case CATALOG + "-shm":
                return fixed(Kind.CATALOG);
            case KEY_LOCK:
                return fixed(Kind.KEY_LOCK);
            case REPOSITORY_LOCK:
                return fixed(Kind.REPOSITORY_LOCK);
            case GC_LOCK:
                return fixed(Kind.GC_LOCK);
            case DELETION_LEASE:
                return fixed(Kind.DELETION_LEASE);
            default:
                break;
        }
        if (key.startsWith(PACKS)) {
            String[] p = key.substring(PACKS.length()).split("/", -1);
            if (p.length == 2 && p[1].endsWith(PACK_SUFFIX)) {
                String name = stem(p[1], PACK_SUFFIX);
                if (isPackName(name) && name.startsWith(p[0])) {
                    return Optional.of(new Entry(Kind.PACK, name));
                }
            }
            return Optional.empty();
        }
        if (key.startsWith(INDEXES)) {
            return oneLevel(key, INDEXES, INDEX_SUFFIX, Kind.INDEX)
                .or(() -> oneLevel(key, INDEXES, BAD_SUFFIX, Kind.BAD_MARKER))
                .or(() -> oneLevel(key, INDEXES, KEEP_SUFFIX, Kind.KEEP_MARKER))
                .or(() -> oneLevel(key, INDEXES, DELETED_SUFFIX, Kind.DELETED_INDEX));
        }
        if (key.startsWith(MANIFESTS)) {
            return oneLevel(key, MANIFESTS, MANIFEST_SUFFIX, Kind.MANIFEST);
        }
        if (key.startsWith(KEYS)) {
            return oneLevel(key, KEYS, KEY_SUFFIX, Kind.KEY_SLOT);
        }
        if (key.startsWith(LOCKS)) {
            return oneLevel(key, LOCKS + "disk-", ".lock", Kind.DISK_LOCK)
                .or(() -> oneLevel(key, LOCKS + "task-", ".lock", Kind.TASK_LOCK))
                .or(() -> oneLevel(key, LOCKS, ".json", Kind.LOCK_RECORD));
        }
        if (key.startsWith(LOGS)) {
            return oneLevel(key, LOGS, ".log", Kind.RUN_LOG).or(() -> oneLevel(key, LOGS, ".json", Kind.RUN_SUMMARY));
        }
        if (key.startsWith(SCHEDULE)) {
            return oneLevel(key, SCHEDULE, ".json", Kind.SCHEDULE_STATE);
        }
        if (key.startsWith(TMP) && key.length() > TMP.length()) {
            return Optional.of(new Entry(Kind.TMP, key.substring(TMP.length())));
        }
        if (key.startsWith(OVERLAYS) && key.length() > OVERLAYS.length()) {
            return Optional.of(new Entry(Kind.OVERLAY, key.substring(OVERLAYS.length())));
        }
        return Optional.empty();
    }

    private static Optional<Entry> fixed(Kind kind) {
        return Optional.of(new Entry(kind, ""));
    }

    /** {@code PREFIX NAME SUFFIX} with a non-empty NAME without {@code /}. */
    private static Optional<Entry> oneLevel(String key, String prefix, String suffix, Kind kind) {
        if (!key.startsWith(prefix) || !key.endsWith(suffix)) {
            return Optional.empty();
        }
        String name = key.substring(prefix.length(), key.length() - suffix.length());
        return name.isEmpty() || name.contains("/") ? Optional.empty() : Optional.of(new Entry(kind, name));
    }

    private static String stem(String fileName, String suffix) {
        return fileName.substring(0, fileName.length() - suffix.length());
    }

    /** A name that can stand as one segment of a key. */
    private static String id(String s) {
        if (s == null || s.isEmpty() || s.contains("/") || s.startsWith(".")) {
            throw new IllegalArgumentException("not a name for a repository object: " + s);
        }
        return s;
    }
}
