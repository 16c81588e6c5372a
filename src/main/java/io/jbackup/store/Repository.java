package io.jbackup.store;

import io.jbackup.catalog.Catalog;
import io.jbackup.catalog.ChunkLocation;
import io.jbackup.model.AttachmentInfo;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.RepositoryException;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Predicate;

/**
 * A backup repository: the facade over packs, index files, the catalog, keys and the lock. Layout of {@code DIR}:
 *
 * <pre>
 * config.json              format version, id, chunk size, encryption, compression ({@link RepositoryConfig})
 * keys/ID.key              key slots: the master key sealed under each passphrase, encrypted repositories only
 *                          ({@link KeySlots}; init writes keys/repository.key)
 * catalog.db (-wal, -shm)  SQLite catalog, a rebuildable cache ({@link Catalog})
 * packs/hh/NAME.pack       sealed, immutable pack files of chunk records ({@link PackFormat})
 * indexes/ID.idx           one immutable index per complete backup ({@link IndexFile})
 * indexes/ID.bad           marker of a backup marked bad: {"reason", "marked"} (JSON)
 * tmp/OWNER/N/             packs and indexes being written by instance N in process OWNER (host-pid-start)
 * lock, locks/OWNER.json   the repository lock and who holds it ({@link RepositoryLock})
 * </pre>
 *
 * <p><b>Write order</b> of a backup (crash safety): chunks are appended to packs under {@code tmp/}; a full pack
 * is sealed: footer, fsync, rename into {@code packs/}, directory fsync, then its chunks are registered in the
 * catalog; at commit the remaining packs are sealed the same way, the index is finished under its temporary name,
 * fsynced and renamed into {@code indexes/} (the commit point), and the backup row is marked complete. A process
 * killed at any instant leaves every complete backup readable; the next process to open the repository removes
 * what a dead owner left in {@code tmp/}, marks complete a backup whose index was already renamed, deletes the
 * rows of the others, and registers sealed packs that missed their catalog rows, so their chunks are reused.
 *
 * <p><b>Deduplication</b>: a chunk whose digest the catalog knows, or that any writer of this process has already
 * appended to a pack not yet sealed, is not stored again. A backup that reuses a chunk from another writer's open
 * pack seals that pack before it commits. Two processes writing the same new chunk at the same moment may both store
 * it; the catalog keeps the first and the other copy is unreferenced (for gc).
 *
 * <p>Thread-safe. Hashing, compression and encryption run on a worker pool of {@link OpenOptions#workerThreads()}
 * threads shared by all writers and readers of this instance.
 *
 * <p><b>Parts.</b> This class is a thin facade; each job is one class that receives what it needs (a
 * {@link RepositoryContext}: storage, config, catalog, codec, pools) and never calls back here:
 * {@link RepositoryOpener} (init, open, keys), {@link RepositoryRecovery} (crash recovery on open),
 * {@link BackupLifecycle} (begin, open, resolve, mark bad), {@link RepositoryMaintenance} (delete, protect, prune,
 * gc, verify) and {@link ChunkReader} (reading and checking chunks). In an object store the layout above is split:
 * see {@link Storage} and docs/repository-format.md.
 */
public final class Repository implements AutoCloseable {
    static final String TMP_DIR = RepositoryContext.TMP_DIR;
    static final String GC_LOCK = RepositoryContext.GC_LOCK;
    static final String BAD_SUFFIX = ".bad";
    static final String KEEP_SUFFIX = ".keep";
    static final String DELETED_SUFFIX = ".deleted";

    private final RepositoryContext ctx;
    private final ChunkReader reader;
    private final BackupLifecycle lifecycle;
    private final RepositoryMaintenance maintenance;
    /** When this host's catalog cache of an object store was last brought in step with it (the open does it). */
    private long refreshedNanos = System.nanoTime();

    Repository(RepositoryContext ctx) {
        this.ctx = ctx;
        this.reader = new ChunkReader(ctx);
        this.lifecycle = new BackupLifecycle(ctx, reader);
        this.maintenance = new RepositoryMaintenance(ctx, reader, lifecycle);
    }

    // ------------------------------------------------------------------------------------------------ init, open

    /**
     * Creates a repository in {@code dir} (which must not exist or be empty) and returns it opened with a shared
     * lock. {@code passphraseOrNull} is required for {@link Encryption#AES_256_GCM} (and must be null or ignored
     * otherwise); it is copied, not wiped.
     */
    public static Repository init(Path dir, RepositoryOptions opts, char[] passphraseOrNull) throws IOException {
        return RepositoryOpener.init(dir, opts, passphraseOrNull);
    }

    /** {@link #init(Path, RepositoryOptions, char[])} at a local or remote location. */
    public static Repository init(RepositoryLocation location, RepositoryOptions opts, char[] passphraseOrNull)
        throws IOException {
        return RepositoryOpener.init(location, opts, passphraseOrNull);
    }

    /** Opens an existing repository (see {@link OpenOptions}). */
    public static Repository open(Path dir, OpenOptions opts) throws IOException {
        return RepositoryOpener.open(dir, opts);
    }

    /** {@link #open(Path, OpenOptions)} at a local or remote location. */
    public static Repository open(RepositoryLocation location, OpenOptions opts) throws IOException {
        return RepositoryOpener.open(location, opts);
    }

    /**
     * Rebuilds {@code DIR/catalog.db} from the packs and index files alone, under the exclusive lock; the old
     * catalog (if any) is kept as {@code catalog.db.old-TIMESTAMP}.
     */
    public static RebuildReport rebuildCatalog(Path dir, OpenOptions opts) throws IOException {
        return RepositoryOpener.rebuildCatalog(new RepositoryLocation.Local(dir), opts);
    }

    /**
     * {@link #rebuildCatalog(Path, OpenOptions)} at a local or remote location: for an object store, this host's
     * cache catalog is rebuilt from the bucket (manifests, index objects, pack footers, markers).
     */
    public static RebuildReport rebuildCatalog(RepositoryLocation location, OpenOptions opts) throws IOException {
        return RepositoryOpener.rebuildCatalog(location, opts);
    }

    // ----------------------------------------------------------------------------------------------- properties

    /** The configuration fixed at init. */
    public RepositoryConfig config() {
        return ctx.config();
    }

    /**
     * This host's directory of the repository: the repository directory itself when it is local; for a repository
     * in an object store, its cache directory (catalog, locks, overlays, logs).
     */
    public Path dir() {
        return ctx.dir();
    }

    /** The repository for messages and listings: its directory, or {@code s3://bucket/prefix}. */
    public String location() {
        return ctx.location();
    }

    /** Whether the repository lives in an object store (its catalog is a cache of this host). */
    public boolean isRemote() {
        return ctx.storage().remote();
    }

    /** The lock mode this instance holds. */
    public LockMode lockMode() {
        return ctx.lockMode();
    }

    /** Whether the repository was opened with its key (always true for a plain repository). */
    public boolean hasKey() {
        return ctx.hasKey();
    }

    /**
     * For a long-running reader of an object store ({@code serve}): brings this host's catalog cache in step with the
     * bucket, as an open does (backups other hosts committed or deleted, their packs), when it was last done more
     * than {@code maxAge} ago. Does nothing for a local repository, whose catalog is the repository's own, or
     * without the key (manifests are authenticated with it). A refresh that fails (the store unreachable) counts
     * as an attempt: the next waits {@code maxAge} too, so that a reader does not sit through the store's retries
     * on every call while it is down.
     */
    public synchronized void refreshCatalog(Duration maxAge) throws IOException {
        long now = System.nanoTime();
        if (!isRemote() || !hasKey() || now - refreshedNanos < maxAge.toNanos()) {
            return;
        }
        refreshedNanos = now;
        RemoteCatalog.refresh(ctx);
    }

    // ------------------------------------------------------------------------------------------------- backups

    /**
     * Starts a backup. The spec is checked first: names, sizes, type; for an incremental, that the parent exists,
     * is complete and not bad, and has the same disk, chunk size and image size (a resized disk needs a full backup).
     */
    public BackupWriter beginBackup(BackupSpec spec) throws IOException {
        return lifecycle.beginBackup(spec);
    }

    /** Opens a complete (or bad) backup for reading; its index is verified first. */
    public BackupReader openBackup(String backupId) throws IOException {
        return lifecycle.openBackup(backupId);
    }

    /**
     * The attachments of a backup (name, size), by name, as the catalog records them: needs no key, so {@code show}
     * lists them for an encrypted repository opened without its passphrase. Empty for a backup without any.
     */
    public List<AttachmentInfo> attachments(String backupId) throws IOException {
        return lifecycle.attachments(backupId);
    }

    /**
     * The content of one attachment of a complete (or bad) backup, read from its chunks and checked (needs the key).
     * A damaged or missing chunk is an {@link AttachmentCorruptException} naming the backup and the attachment; an
     * unknown name a {@link io.jbackup.error.NotFoundException}.
     */
    public byte[] readAttachment(String backupId, String name) throws IOException {
        try (BackupReader r = openBackup(backupId)) {
            return r.readAttachment(name);
        }
    }

    /** {@link BackupLifecycle#openBackup(String, boolean)}: with {@code salvage}, a damaged index is read anyway. */
    public BackupReader openBackup(String backupId, boolean salvage) throws IOException {
        return lifecycle.openBackup(backupId, salvage);
    }

    /** The newest complete (not bad) backup of a disk; {@code vm} is null for a standalone disk. */
    public Optional<BackupInfo> latestComplete(String vm, String disk) throws IOException {
        return lifecycle.latestComplete(vm, disk);
    }

    /** Every backup (complete, bad, and incomplete ones in progress), oldest first. */
    public List<BackupInfo> listBackups() throws IOException {
        return lifecycle.listBackups();
    }

    /** The backup with exactly this id, if any. */
    public Optional<BackupInfo> backup(String id) throws IOException {
        return lifecycle.backup(id);
    }

    /** Resolves what a user typed: an id, a unique prefix, {@code latest} or {@code @TIME} (see BackupLifecycle). */
    public BackupInfo resolve(String vm, String disk, String ref) throws IOException {
        return lifecycle.resolve(vm, disk, ref);
    }

    static Instant parseTime(String s) {
        return BackupLifecycle.parseTime(s);
    }

    /** Marks a backup bad: no longer offered as latest, as a parent, or by time; recorded in a marker too. */
    public void markBad(String backupId, String reason) throws IOException {
        lifecycle.markBad(backupId, reason);
    }

    /** Why a backup was marked bad, or null. */
    public String badReason(String backupId) throws IOException {
        return lifecycle.badReason(backupId);
    }

    // ------------------------------------------------------------------------------------------------ maintenance

    /** Deletes a complete or bad backup (its index, manifest and row; gc reclaims its chunks). */
    public void deleteBackup(String backupId) throws IOException {
        maintenance.deleteBackup(backupId);
    }

    /** Deletes the given backups under the maintenance lock; if one may not be deleted, none is. */
    public void deleteBackups(List<String> backupIds, Duration waitLock) throws IOException {
        maintenance.deleteBackups(backupIds, waitLock);
    }

    /** Protects a backup from prune and delete (or lifts the protection). */
    public void setProtected(String backupId, boolean protect, String reason) throws IOException {
        maintenance.setProtected(backupId, protect, reason);
    }

    /** Protected backups, with the reason given (may be null). */
    public Map<String, String> protectedBackups() throws IOException {
        ctx.checkOpen();
        return ctx.catalog().protectedBackups();
    }

    /** The last successful verification of each backup that has one. */
    public Map<String, Catalog.Verification> verifications() throws IOException {
        ctx.checkOpen();
        return ctx.catalog().verifications();
    }

    /** Repository totals from the catalog (no pack or index is read). */
    public Catalog.Totals totals() throws IOException {
        ctx.checkOpen();
        return ctx.catalog().totals();
    }

    /** Applies a retention policy to every disk (narrowed by {@code vm} and {@code disk}) and deletes the rest. */
    public PruneReport prune(RetentionPolicy policy, String vm, String disk, boolean dryRun, Duration waitLock)
        throws IOException {
        return maintenance.prune(policy, vm, disk, dryRun, waitLock);
    }

    /** {@link #prune(RetentionPolicy, String, String, boolean, Duration)} for the backups {@code select} accepts. */
    public PruneReport prune(RetentionPolicy policy, Predicate<BackupInfo> select, boolean dryRun, Duration waitLock)
        throws IOException {
        return maintenance.prune(policy, select, dryRun, waitLock);
    }

    /** Reclaims space (see {@link GarbageCollector}); takes the maintenance lock. */
    public GcReport gc(GcOptions options) throws IOException {
        return maintenance.gc(options);
    }

    /** Checks the selected backups' chunks; see {@link Verifier}. {@code repair} needs the exclusive lock. */
    public VerifyReport verify(VerifyOptions options) throws IOException {
        return maintenance.verify(options);
    }

    // ------------------------------------------------------------------------------------------------ runs, misc

    /** Records the start of a command run in the catalog's run log; returns its id. */
    public long startRun(String command) throws IOException {
        ctx.checkOpen();
        return ctx.catalog().startRun(command, Owner.current().id());
    }

    /** Records the end of a run ({@code ok}, {@code failed}, {@code damaged}, ...). */
    public void finishRun(long runId, String status, String message) throws IOException {
        ctx.checkOpen();
        ctx.catalog().finishRun(runId, status, message);
    }

    /** Where a chunk is stored, or null if the catalog does not know it (diagnostics). */
    public ChunkLocation chunkLocation(byte[] digest) throws IOException {
        ctx.checkOpen();
        return ctx.catalog().findChunk(digest);
    }

    /** The file of a pack of a local repository, by name. */
    public Path packFile(String packName) {
        return PackFormat.path(ctx.dir(), packName);
    }

    // --------------------------------------------------------------------------------- package internals (tests)

    RepositoryContext context() {
        return ctx;
    }

    Storage storage() {
        return ctx.storage();
    }

    Catalog catalog() {
        return ctx.catalog();
    }

    ChunkCodec codec() {
        return ctx.codec();
    }

    MetaMac metaMac() {
        return ctx.metaMac();
    }

    byte[] readChunk(byte[] digest, int expectedLen, String backupId, long diskOffset) throws IOException {
        return reader.readChunk(digest, expectedLen, backupId, diskOffset);
    }

    int registerOrphanPacks() throws IOException {
        return new RepositoryRecovery(ctx).registerOrphanPacks();
    }

    /** The files of the sealed packs of a local repository (tests). */
    List<Path> listPackFiles() throws IOException {
        List<Path> out = new ArrayList<>();
        for (String name : ctx.storage().packNames()) {
            out.add(PackFormat.path(ctx.dir(), name));
        }
        return out;
    }

    static String packName(Path file) {
        String n = file.getFileName().toString();
        return n.endsWith(PackFormat.SUFFIX) ? n.substring(0, n.length() - PackFormat.SUFFIX.length()) : n;
    }

    void checkOpen() throws RepositoryException {
        ctx.checkOpen();
    }

    /** Aborts backups still open, stops the worker pools, closes the catalog and the storage, releases the lock. */
    @Override
    public void close() {
        ctx.close();
    }
}
