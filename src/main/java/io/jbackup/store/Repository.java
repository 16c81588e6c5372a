package io.jbackup.store;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.catalog.Catalog;
import io.jbackup.catalog.ChunkLocation;
import io.jbackup.catalog.ChunkRow;
import io.jbackup.catalog.PackRow;
import io.jbackup.catalog.SqliteCatalog;
import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;
import io.jbackup.model.RepositoryException;
import io.jbackup.model.RepositoryFullException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;

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
 */
public final class Repository implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Repository.class);
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final DateTimeFormatter ID_TIME = DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss").withZone(ZoneOffset.UTC);
    static final String TMP_DIR = "tmp";
    static final String BAD_SUFFIX = ".bad";
    static final String KEEP_SUFFIX = ".keep";
    static final String DELETED_SUFFIX = ".deleted";
    static final String GC_LOCK = "gc.lock";
    private static final int MAX_NAME = 255;
    private static final int MAX_NOTE = 64 * 1024;
    private static final int MAX_LABELS = 256;
    private static final AtomicInteger INSTANCES = new AtomicInteger();
    /** Ranged GETs in flight when reading chunks from an object store (restore and serve read ahead). */
    static final int REMOTE_READERS = 16;

    private final Storage storage;
    private final Path dir;
    private final RepositoryConfig config;
    private final RepositoryLock lock;
    private final Catalog catalog;
    private final DedupLookups dedupLookups;
    private final ChunkCodec codec;
    private final PackFiles packFiles;
    private final ThreadPoolExecutor pool;
    /** Chunk reads of an object store: more threads than cores, as each mostly waits for its ranged GET. */
    private final ThreadPoolExecutor readPool;
    private final int workerThreads;
    private final ConcurrentHashMap<ChunkId, PackWriter> pending = new ConcurrentHashMap<>();
    private final Set<PackedBackupWriter> writers = ConcurrentHashMap.newKeySet();
    private final Path ownTmp;
    /** An encrypted repository opened without its key (catalog queries only). */
    private final boolean keyless;
    private volatile boolean closed;

    private Repository(Storage storage, RepositoryConfig config, RepositoryLock lock, Catalog catalog,
                       RepositoryKeys keys, int workerThreads) {
        this.storage = storage;
        this.dir = storage.hostDir();
        this.config = config;
        this.lock = lock;
        this.catalog = catalog;
        this.dedupLookups = new DedupLookups(catalog);
        this.workerThreads = workerThreads;
        this.codec = new ChunkCodec(config.compressionLevel(), keys, 2 * workerThreads + 8);
        this.keyless = keys == null && config.encryption() != Encryption.NONE;
        this.packFiles = new PackFiles(storage);
        this.ownTmp = dir.resolve(TMP_DIR).resolve(Owner.current().token())
            .resolve(Integer.toString(INSTANCES.incrementAndGet()));
        AtomicInteger n = new AtomicInteger();
        this.pool = new ThreadPoolExecutor(workerThreads, workerThreads, 30, TimeUnit.SECONDS,
            new LinkedBlockingQueue<>(), r -> {
                Thread t = new Thread(r, "jbackup-store-" + n.incrementAndGet());
                t.setDaemon(true);
                return t;
            });
        this.pool.allowCoreThreadTimeOut(true);
        if (storage.remote()) {
            int readers = Math.max(REMOTE_READERS, workerThreads);
            this.readPool = new ThreadPoolExecutor(readers, readers, 30, TimeUnit.SECONDS, new LinkedBlockingQueue<>(),
                r -> {
                    Thread t = new Thread(r, "jbackup-fetch-" + n.incrementAndGet());
                    t.setDaemon(true);
                    return t;
                });
            this.readPool.allowCoreThreadTimeOut(true);
        } else {
            this.readPool = pool;
        }
    }

    // ------------------------------------------------------------------------------------------------ init, open

    /**
     * Creates a repository in {@code dir} (which must not exist or be empty) and returns it opened with a shared
     * lock. {@code passphraseOrNull} is required for {@link Encryption#AES_256_GCM} (and must be null or ignored
     * otherwise); it is copied, not wiped.
     */
    public static Repository init(Path dir, RepositoryOptions opts, char[] passphraseOrNull) throws IOException {
        if (opts.encryption() == Encryption.AES_256_GCM && (passphraseOrNull == null || passphraseOrNull.length == 0)) {
            throw new UsageException("encryption aes-256-gcm needs a passphrase: set JBACKUP_PASSPHRASE, "
                + "pass --passphrase-file FILE, or run on a terminal to be asked");
        }
        if (Files.exists(dir)) {
            if (!Files.isDirectory(dir)) {
                throw new RepositoryException(dir + " exists and is not a directory; choose a new directory");
            }
            try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
                if (s.iterator().hasNext()) {
                    throw new RepositoryException(dir + " is not empty" + (Files.exists(dir.resolve(RepositoryConfig.FILE_NAME))
                        ? " (it already holds a repository)" : "") + "; jbackup init needs a new or empty directory");
                }
            }
        }
        Files.createDirectories(dir);
        FilePermissions.restrict(dir, FilePermissions.OWNER_DIR);
        for (String d : List.of(PackFormat.DIR, IndexFile.DIR, TMP_DIR, RepositoryLock.RECORD_DIR)) {
            Files.createDirectories(dir.resolve(d));
        }
        Files.createFile(dir.resolve(RepositoryLock.LOCK_FILE));
        RepositoryConfig config = new RepositoryConfig(UUID.randomUUID().toString(), RepositoryConfig.FORMAT_VERSION,
            opts.chunkSize(), opts.encryption(), opts.compressionLevel(), opts.packSize(),
            Instant.now().truncatedTo(ChronoUnit.SECONDS), null);
        RepositoryKeys keys = null;
        if (opts.encryption() == Encryption.AES_256_GCM) {
            byte[] master = new byte[RepositoryKeys.KEY_LENGTH];
            RANDOM.nextBytes(master);
            try {
                KeySlots.write(dir, KeyFile.seal(KeyFile.idOf(KeyFile.path(dir)), master, passphraseOrNull,
                    config.id(), null, Owner.current().host(), RANDOM));
                keys = RepositoryKeys.derive(master, config.id());
            } finally {
                Arrays.fill(master, (byte) 0);
            }
            config = config.withMac(keys);
        }
        SqliteCatalog.open(dir.resolve(SqliteCatalog.FILE_NAME), config.id(), true).close();
        // config.json last: its presence is what makes DIR a repository
        FileSync.writeAtomically(dir.resolve(RepositoryConfig.FILE_NAME), config.toJson());
        FileSync.syncDir(dir);
        LOG.info("created repository {} (id {}, chunk size {}, encryption {}, zstd level {})", dir, config.id(),
            config.defaultChunkSize(), config.encryption(), config.compressionLevel());
        return openWith(Storage.local(dir), config, keys, OpenOptions.defaults());
    }

    /** {@link #init(Path, RepositoryOptions, char[])} at a local or remote location. */
    public static Repository init(RepositoryLocation location, RepositoryOptions opts, char[] passphraseOrNull)
        throws IOException {
        if (location instanceof RepositoryLocation.Local l) {
            return init(l.dir(), opts, passphraseOrNull);
        }
        return RemoteRepositories.init((RepositoryLocation.Remote) location, opts, passphraseOrNull);
    }

    /** {@link #open(Path, OpenOptions)} at a local or remote location. */
    public static Repository open(RepositoryLocation location, OpenOptions opts) throws IOException {
        if (location instanceof RepositoryLocation.Local l) {
            return open(l.dir(), opts);
        }
        return RemoteRepositories.open((RepositoryLocation.Remote) location, opts);
    }

    /** Opens an existing repository (see {@link OpenOptions}). */
    public static Repository open(Path dir, OpenOptions opts) throws IOException {
        RepositoryConfig config = RepositoryConfig.read(dir);
        Storage storage = Storage.local(dir);
        if (opts.keyOptional() && config.encryption() != Encryption.NONE) {
            char[] pass = opts.passphrase() == null ? null : opts.passphrase().get();
            if (pass == null || pass.length == 0) {
                return openWithoutKey(storage, config, opts);
            }
            opts = opts.withPassphrase(() -> pass);
        }
        RepositoryKeys keys = unlock(storage, config, opts);
        return openWith(storage, config, keys, opts);
    }

    /**
     * An encrypted repository opened without its key, for commands that read only the catalog: read-only, no crash
     * recovery, and every operation that needs the key fails with {@link PassphraseRequiredException}.
     */
    static Repository openWithoutKey(Storage storage, RepositoryConfig config, OpenOptions opts) throws IOException {
        Path dir = storage.hostDir();
        String location = storage.location();
        Path catalogFile = dir.resolve(SqliteCatalog.FILE_NAME);
        if (!Files.exists(catalogFile)) {
            throw new PassphraseRequiredException("catalog " + catalogFile + " is missing, and without it nothing can "
                + "be listed without the key: rebuilding it reads the authenticated index files and pack footers, so "
                + "it needs the passphrase of this encrypted repository: " + (storage.remote()
                ? "run the command again with JBACKUP_PASSPHRASE or --passphrase-file FILE"
                : "jbackup repair --rebuild-catalog --repo " + location + " with JBACKUP_PASSPHRASE or "
                + "--passphrase-file FILE"));
        }
        LOG.debug("repository {} is encrypted and no passphrase was given: opening its catalog only", location);
        return openWith(storage, config, null, opts);
    }

    /**
     * The keys of an encrypted repository (null for a plain one), once the config has passed its checks: the MAC
     * of an encrypted config; for a plain config, that nothing says the repository is encrypted (a config edited
     * to "encryption": "none" would make new backups plaintext).
     */
    static RepositoryKeys unlock(Storage storage, RepositoryConfig config, OpenOptions opts) throws IOException {
        if (config.encryption() == Encryption.NONE) {
            refuseDowngrade(storage);
            return null;
        }
        RepositoryKeys keys = unseal(storage, config, opts);
        config.checkMac(keys, storage.describe(io.jbackup.store.layout.RepositoryLayout.CONFIG));
        return keys;
    }

    private static void refuseDowngrade(Storage storage) throws IOException {
        String file = storage.describe(io.jbackup.store.layout.RepositoryLayout.CONFIG);
        String why = null;
        List<String> slots = KeySlots.ids(storage);
        if (!slots.isEmpty()) {
            why = KeyFile.DIR + "/" + slots.get(0) + KeyFile.SUFFIX + " exists";
        } else {
            List<String> ids = storage.remote() ? List.of() : storage.indexIds();
            if (!ids.isEmpty() && IndexFile.isKeyed(storage.indexFile(ids.get(0)))) {
                // one is enough: all indexes of a repository are alike
                why = "index " + ids.get(0) + IndexFile.SUFFIX + " is authenticated with a repository key";
            }
        }
        if (why != null) {
            throw new RepositoryException(file + " says \"encryption\": \"none\", but " + why + ": the config was "
                + "altered to turn encryption off (new backups would be written in plaintext); restore config.json "
                + "from a copy. Nothing was changed");
        }
    }

    private static RepositoryKeys unseal(Storage storage, RepositoryConfig config, OpenOptions opts)
        throws IOException {
        char[] pass = KeySlots.passphrase(storage.location(), opts.passphrase());
        byte[] master = null;
        try {
            master = KeySlots.unlock(storage, config.id(), pass).masterKey();
            return RepositoryKeys.derive(master, config.id());
        } finally {
            Arrays.fill(pass, '\0');
            if (master != null) {
                Arrays.fill(master, (byte) 0);
            }
        }
    }

    static Repository openWith(Storage storage, RepositoryConfig config, RepositoryKeys keys, OpenOptions opts)
        throws IOException {
        Path dir = storage.hostDir();
        RepositoryLock lock;
        try {
            lock = RepositoryLock.acquire(dir, opts.lockMode(), opts.waitLock());
        } catch (IOException | RuntimeException e) {
            storage.close();
            throw e;
        }
        Catalog catalog = null;
        Repository r;
        try {
            catalog = storage.remote() ? RemoteCatalog.open(storage, config)
                : SqliteCatalog.open(dir.resolve(SqliteCatalog.FILE_NAME), config.id(), false);
            r = new Repository(storage, config, lock, catalog, keys, opts.effectiveWorkers());
        } catch (IOException | RuntimeException e) {
            if (catalog != null) {
                catalog.close();
            }
            lock.close();
            storage.close();
            throw e;
        }
        try {
            if (!r.keyless) {
                if (storage.remote()) {
                    RemoteCatalog.refresh(r);
                }
                r.recover(); // needs the key (index and footer MACs); the next open with it recovers
            }
            return r;
        } catch (IOException | RuntimeException e) {
            r.close();
            throw e;
        }
    }

    // ----------------------------------------------------------------------------------------------- recovery

    /** Cleans up after dead owners (all owners when exclusive); see the class comment. */
    private void recover() throws IOException {
        boolean exclusive = lock.mode() == LockMode.EXCLUSIVE;
        boolean crashed = false;
        for (Map.Entry<String, String> e : catalog.incompleteBackups().entrySet()) {
            Optional<Owner> owner = Owner.parse(e.getValue());
            boolean mine = owner.isPresent() && owner.get().equals(Owner.current());
            if (mine && exclusive || !mine && (exclusive || owner.isPresent() && owner.get().knownDead())) {
                crashed |= !mine;
                finishOrForget(e.getKey(), e.getValue());
            }
        }
        Path tmp = dir.resolve(TMP_DIR);
        if (Files.isDirectory(tmp)) {
            try (DirectoryStream<Path> s = Files.newDirectoryStream(tmp)) {
                for (Path p : s) {
                    String name = p.getFileName().toString();
                    Optional<Owner> o = Owner.parseToken(name);
                    boolean mine = name.equals(Owner.current().token());
                    if (!mine && (exclusive || o.isPresent() && o.get().knownDead())) {
                        // routine after a killed or interrupted run: only -v tells
                        LOG.info("removing {} left by {} (an interrupted backup; its sealed packs are kept)", p,
                            o.map(Owner::id).orElse("an unknown process"));
                        FileSync.deleteTree(p);
                        crashed = true;
                    }
                }
            }
        }
        finishDeletions();
        if (crashed || exclusive) {
            registerOrphanPacks();
        }
    }

    /** Completes deletions a crash interrupted: {@code indexes/ID.deleted} files (see {@link #deleteBackup}). */
    private void finishDeletions() throws IOException {
        if (storage.remote()) {
            return; // a deletion there removes the manifest first: what is left is garbage for gc
        }
        for (String id : storage.indexEntries(io.jbackup.store.layout.RepositoryLayout.Kind.DELETED_INDEX)) {
            LOG.warn("finishing the deletion of backup {} that an interrupted prune began", id);
            removeDeleted(id);
        }
    }

    private void finishOrForget(String id, String owner) throws IOException {
        if (storage.remote()) {
            if (storage.exists(io.jbackup.store.layout.RepositoryLayout.manifest(id))) {
                RemoteCatalog.completeFromManifest(this, id);
                LOG.warn("backup {} was committed (manifest written) when its process {} died; marked it complete",
                    id, owner);
                return;
            }
            LOG.warn("removing incomplete backup {} left by {} (chunks in uploaded packs are kept and reused)", id,
                owner);
            catalog.deleteBackup(id);
            return;
        }
        Path idx = IndexFile.path(dir, id);
        if (Files.exists(idx)) {
            try (IndexFile.Reader r = IndexFile.Reader.open(idx, this::metaMac, codec.encrypted())) {
                BackupInfo b = IndexFile.info(r.metadata(), idx);
                catalog.completeBackup(id, b.completed() == null ? Instant.now() : b.completed(), b.stats());
                LOG.warn("backup {} was committed (index written) when its process {} died; marked it complete", id,
                    owner);
                return;
            } catch (RepositoryException e) {
                LOG.warn("backup {}: its index is unreadable ({}); forgetting the backup", id, e.getMessage());
                Files.move(idx, idx.resolveSibling(idx.getFileName() + ".damaged"));
            }
        }
        LOG.warn("removing incomplete backup {} left by {} (chunks in sealed packs are kept and reused)", id, owner);
        catalog.deleteBackup(id);
    }

    /** Registers sealed packs that are not in the catalog (a crash between pack rename and catalog rows). */
    int registerOrphanPacks() throws IOException {
        Set<String> known = catalog.packs().stream().map(PackRow::name).collect(Collectors.toCollection(HashSet::new));
        int added = 0;
        for (String name : storage.packNames()) {
            if (known.contains(name)) {
                continue;
            }
            String file = storage.describePack(name);
            try (Storage.Ranged in = storage.openPack(name)) {
                PackReader.Contents c = PackReader.readFooter(in, name, this::metaMac, codec.encrypted());
                catalog.addPack(name, c.fileSize(), c.entries());
                added++;
                LOG.info("registered pack {} ({} chunks) that was sealed but not yet in the catalog", name,
                    c.entries().size());
            } catch (RepositoryException e) {
                LOG.warn("pack {} is not in the catalog and cannot be registered: {}", file, e.getMessage());
            }
        }
        return added;
    }

    /** The files of the sealed packs of a local repository (tests). */
    List<Path> listPackFiles() throws IOException {
        List<Path> out = new ArrayList<>();
        for (String name : storage.packNames()) {
            out.add(PackFormat.path(dir, name));
        }
        return out;
    }

    static String packName(Path file) {
        String n = file.getFileName().toString();
        return n.endsWith(PackFormat.SUFFIX) ? n.substring(0, n.length() - PackFormat.SUFFIX.length()) : n;
    }

    // ------------------------------------------------------------------------------------------------- backups

    /** The configuration fixed at init. */
    public RepositoryConfig config() {
        return config;
    }

    /**
     * This host's directory of the repository: the repository directory itself when it is local; for a repository
     * in an object store, its cache directory (catalog, locks, overlays, logs).
     */
    public Path dir() {
        return dir;
    }

    /** The repository for messages and listings: its directory, or {@code s3://bucket/prefix}. */
    public String location() {
        return storage.location();
    }

    /** Whether the repository lives in an object store (its catalog is a cache of this host). */
    public boolean isRemote() {
        return storage.remote();
    }

    Storage storage() {
        return storage;
    }

    /** The lock mode this instance holds. */
    public LockMode lockMode() {
        return lock.mode();
    }

    /**
     * Starts a backup. The spec is checked first: names, sizes, type; for an incremental, that the parent exists,
     * is complete and not bad, and has the same disk, chunk size and image size (a resized disk needs a full backup).
     */
    public BackupWriter beginBackup(BackupSpec spec) throws IOException {
        checkOpen();
        requireKey();
        int chunkSize = spec.chunkSize() == 0 ? config.defaultChunkSize() : spec.chunkSize();
        validate(spec, chunkSize);
        IndexFile.Reader parent = null;
        if (BackupSpec.INCREMENTAL.equals(spec.type())) {
            BackupInfo p = catalog.backup(spec.parentId()).orElseThrow(() -> new RepositoryException("parent backup "
                + spec.parentId() + " does not exist; take a full backup"));
            String disk = spec.vm() == null ? spec.disk() : spec.vm() + "/" + spec.disk();
            if (!p.isComplete()) {
                throw new RepositoryException("parent backup " + p.id() + " is " + p.state()
                    + (BackupInfo.BAD.equals(p.state()) ? " (" + catalog.stateReason(p.id()) + ")" : "")
                    + "; take a full backup of " + disk);
            }
            if (!p.disk().equals(spec.disk()) || !java.util.Objects.equals(p.vm(), spec.vm())) {
                throw new RepositoryException("parent backup " + p.id() + " is of " + p.diskLabel() + ", not " + disk
                    + "; choose a backup of " + disk + " as parent, or take a full backup");
            }
            if (p.chunkSize() != chunkSize) {
                throw new RepositoryException("parent backup " + p.id() + " has chunk size " + p.chunkSize()
                    + ", not " + chunkSize + "; use the parent's chunk size or take a full backup");
            }
            if (p.imageSize() != spec.imageSize()) {
                throw new RepositoryException("disk " + disk + " changed size from " + p.imageSize() + " to "
                    + spec.imageSize() + " bytes since parent backup " + p.id() + "; take a full backup");
            }
            parent = IndexFile.Reader.open(storage.indexFile(p.id()), this::metaMac, codec.encrypted());
        }
        try {
            String uuid = UUID.randomUUID().toString();
            Instant created = Instant.now().truncatedTo(ChronoUnit.MILLIS);
            for (int attempt = 0; ; attempt++) {
                String id = newBackupId(created);
                BackupInfo info = new BackupInfo(id, spec.vm(), spec.disk(), spec.type(), spec.parentId(), created,
                    null, spec.imageSize(), chunkSize, BackupInfo.INCOMPLETE, spec.labels(), spec.note(),
                    spec.source(), BackupStats.EMPTY);
                try {
                    catalog.insertBackup(info, uuid, Owner.current().id());
                } catch (Catalog.DuplicateBackupIdException e) {
                    if (attempt < 8) {
                        continue;
                    }
                    throw e;
                }
                try {
                    PackedBackupWriter w = new PackedBackupWriter(this, info, uuid, parent);
                    writers.add(w);
                    LOG.info("backup {} of {} begun ({} chunks of {} bytes{})", id, info.diskLabel(),
                        info.chunkCount(), chunkSize, parent == null ? "" : ", parent " + spec.parentId());
                    return w;
                } catch (IOException | RuntimeException e) {
                    catalog.deleteBackup(id);
                    RepositoryFullException full = RepositoryFullException.of(dir, e);
                    if (full != null) {
                        throw full;
                    }
                    throw e;
                }
            }
        } finally {
            if (parent != null) {
                parent.close();
            }
        }
    }

    private static void validate(BackupSpec s, int chunkSize) {
        checkName(s.disk(), "disk name", false);
        checkName(s.vm(), "vm name", true);
        if (s.imageSize() < 0) {
            throw new UsageException("image size " + s.imageSize() + " is negative");
        }
        RepositoryOptions.validateChunkSize(chunkSize, "chunk size");
        long chunks = (s.imageSize() + chunkSize - 1) / chunkSize;
        if (chunks > IndexFile.MAX_CHUNKS) {
            throw new UsageException("image size " + s.imageSize() + " needs " + chunks + " chunks of "
                + chunkSize + " bytes (at most " + IndexFile.MAX_CHUNKS + "); use a bigger chunk size");
        }
        if (BackupSpec.FULL.equals(s.type())) {
            if (s.parentId() != null) {
                throw new UsageException("a full backup has no parent (got " + s.parentId() + "); drop the "
                    + "parent, or make it an incremental backup");
            }
        } else if (BackupSpec.INCREMENTAL.equals(s.type())) {
            if (s.parentId() == null || s.parentId().isBlank()) {
                throw new UsageException("an incremental backup needs a parent backup id (usually the "
                    + "latest complete backup of the disk)");
            }
        } else {
            throw new UsageException("backup type '" + s.type() + "' is unknown (expected: full or "
                + "incremental)");
        }
        if (s.labels().size() > MAX_LABELS) {
            throw new UsageException(s.labels().size() + " labels (at most " + MAX_LABELS + ")");
        }
        for (Map.Entry<String, String> e : s.labels().entrySet()) {
            checkName(e.getKey(), "label name", false);
            if (e.getValue() == null || e.getValue().length() > 4096) {
                throw new UsageException("label " + e.getKey() + " has no value or one over 4096 characters");
            }
        }
        if (s.note() != null && s.note().length() > MAX_NOTE) {
            throw new UsageException("note is " + s.note().length() + " characters (at most " + MAX_NOTE + ")");
        }
    }

    private static void checkName(String n, String what, boolean nullable) {
        if (n == null) {
            if (nullable) {
                return;
            }
            throw new UsageException(what + " is missing");
        }
        if (n.isBlank() || n.length() > MAX_NAME || n.chars().anyMatch(c -> c < 0x20 || c == 0x7f)) {
            throw new UsageException(what + " '" + n + "' must be 1.." + MAX_NAME
                + " characters without control characters");
        }
    }

    private static String newBackupId(Instant created) {
        byte[] r = new byte[3];
        RANDOM.nextBytes(r);
        return ID_TIME.format(created) + "-" + HexFormat.of().formatHex(r);
    }

    /** Opens a complete (or bad) backup for reading; its index is verified first. */
    public BackupReader openBackup(String backupId) throws IOException {
        return openBackup(backupId, false);
    }

    /**
     * Opens a complete (or bad) backup for reading. Its index is verified first; if that fails and {@code salvage}
     * is set ({@code restore --ignore-errors}), the damaged index is read anyway with the chunk count and size the
     * catalog gives ({@link IndexFile.Reader#salvage}): every chunk is still verified against its digest, and
     * positions whose entry is damaged or lost fail one by one, naming the damaged index.
     */
    public BackupReader openBackup(String backupId, boolean salvage) throws IOException {
        checkOpen();
        requireKey();
        BackupInfo info = catalog.backup(backupId).orElseThrow(() -> new RepositoryException("no backup "
            + backupId + " in repository " + dir + "; list the backups with: jbackup list"));
        if (BackupInfo.INCOMPLETE.equals(info.state())) {
            throw new RepositoryException("backup " + backupId + " is incomplete (still being written, or interrupted "
                + "and not yet cleaned up); choose a complete backup");
        }
        Path file = storage.indexFile(backupId);
        IndexFile.Reader r;
        try {
            r = IndexFile.Reader.open(file, this::metaMac, codec.encrypted());
        } catch (RepositoryException e) {
            if (!salvage || !Files.exists(file)) {
                throw e;
            }
            LOG.warn("backup {}: {}; salvaging: every chunk its entries name is still verified", backupId,
                e.getMessage());
            r = IndexFile.Reader.salvage(file, info.chunkCount(), info.chunkSize(), Json.MAPPER.createObjectNode()
                .put("id", backupId).put("imageSize", info.imageSize()));
            return new PackedBackupReader(this, info, r, e.getMessage());
        }
        if (!backupId.equals(r.metadata().path("id").asText()) || r.chunkSize() != info.chunkSize()
            || r.metadata().path("imageSize").asLong() != info.imageSize()) {
            r.close();
            throw new RepositoryException("index " + r.file + " does not match backup " + backupId + " in the catalog; "
                + "rebuild the catalog with: jbackup repair --rebuild-catalog");
        }
        return new PackedBackupReader(this, info, r);
    }

    /** The newest complete (not bad) backup of a disk; {@code vm} is null for a standalone disk. */
    public Optional<BackupInfo> latestComplete(String vm, String disk) throws IOException {
        checkOpen();
        return catalog.latestComplete(vm, disk, null);
    }

    /** Every backup (complete, bad, and incomplete ones in progress), oldest first. */
    public List<BackupInfo> listBackups() throws IOException {
        checkOpen();
        return catalog.backups();
    }

    /** The backup with exactly this id, if any. */
    public Optional<BackupInfo> backup(String id) throws IOException {
        checkOpen();
        return catalog.backup(id);
    }

    /**
     * Resolves what a user typed: a full backup id, a unique id prefix, {@code latest} (the newest complete backup
     * of the disk), or {@code @TIME} (the newest complete backup of the disk created at or before TIME: ISO-8601
     * instant {@code 2026-11-24T20:15:30Z}, offset date-time, local date-time, or a date meaning its end, both in the
     * local time zone). {@code vm}/{@code disk} narrow id prefixes and are required for {@code latest}/{@code @}.
     */
    public BackupInfo resolve(String vm, String disk, String ref) throws IOException {
        checkOpen();
        if (ref == null || ref.isBlank()) {
            throw new UsageException("empty backup reference; give a backup id (or a unique prefix), "
                + "'latest' or '@TIME'");
        }
        String what = disk == null ? null : vm == null ? disk : vm + "/" + disk;
        if (ref.equals("latest") || ref.startsWith("@")) {
            if (disk == null) {
                throw new UsageException("'" + ref + "' needs the disk (and vm) it refers to");
            }
            Instant at = ref.equals("latest") ? null : parseTime(ref.substring(1));
            return catalog.latestComplete(vm, disk, at).orElseThrow(() -> new NotFoundException(
                "no complete backup of " + what + (at == null ? "" : " at or before " + at)
                    + " in repository " + dir + "; list the backups with: jbackup list"));
        }
        List<BackupInfo> all = catalog.backupsByPrefix(ref);
        List<BackupInfo> matches = all.stream()
            .filter(b -> disk == null || b.disk().equals(disk) && java.util.Objects.equals(b.vm(), vm))
            .filter(b -> disk != null || vm == null || vm.equals(b.vm()))
            .collect(Collectors.toList());
        for (BackupInfo b : matches) {
            if (b.id().equals(ref)) {
                return b;
            }
        }
        if (matches.size() == 1) {
            return matches.get(0);
        }
        if (matches.isEmpty()) {
            if (!all.isEmpty()) {
                throw new NotFoundException("backup " + all.get(0).id() + " matching '" + ref + "' is of "
                    + all.get(0).diskLabel() + ", not " + (what == null ? vm : what));
            }
            throw new NotFoundException("no backup matches '" + ref + "' in repository " + dir
                + "; list the backups with: jbackup list");
        }
        throw new UsageException("'" + ref + "' is ambiguous: it matches " + matches.size() + " backups ("
            + matches.stream().limit(5).map(BackupInfo::id).collect(Collectors.joining(", "))
            + (matches.size() > 5 ? ", ..." : "") + "); type more characters of the id");
    }

    static Instant parseTime(String s) {
        try {
            return Instant.parse(s);
        } catch (DateTimeParseException ignored) {
            // try the other forms
        }
        try {
            return OffsetDateTime.parse(s).toInstant();
        } catch (DateTimeParseException ignored) {
            // next
        }
        try {
            return LocalDateTime.parse(s).atZone(ZoneId.systemDefault()).toInstant();
        } catch (DateTimeParseException ignored) {
            // next
        }
        try {
            return LocalDate.parse(s).plusDays(1).atStartOfDay(ZoneId.systemDefault()).toInstant().minusMillis(1);
        } catch (DateTimeParseException e) {
            throw new UsageException("cannot read time '" + s + "'; use ISO-8601, e.g. 2026-11-24T20:15:30Z, "
                + "2026-11-24T21:15:30 (local time) or 2026-11-24 (end of that day)");
        }
    }

    /**
     * Marks a backup bad: it is no longer offered as latest, as a parent, or by time. Recorded in the catalog and
     * in a marker file next to its index, so a rebuilt catalog keeps it.
     */
    public void markBad(String backupId, String reason) throws IOException {
        checkOpen();
        requireKey();
        String why = reason == null || reason.isBlank() ? "marked bad" : reason;
        if (!catalog.setState(backupId, BackupInfo.BAD, why)) {
            throw new NotFoundException("cannot mark backup " + backupId + " bad: no such complete backup");
        }
        ObjectNode n = Json.MAPPER.createObjectNode();
        n.put("reason", why);
        n.put("marked", Instant.now().toString());
        storage.write(io.jbackup.store.layout.RepositoryLayout.badMarker(backupId), Json.bytes(n));
        LOG.warn("backup {} marked bad: {}", backupId, why);
    }

    /** Why a backup was marked bad, or null. */
    public String badReason(String backupId) throws IOException {
        checkOpen();
        return catalog.stateReason(backupId);
    }

    // ------------------------------------------------------------------------------- delete, protect, prune, stats

    /**
     * Deletes a complete or bad backup: its index file and catalog row, nothing else (every backup has its own full
     * index, so no other backup depends on it; gc later reclaims chunks nobody uses). Refuses protected backups.
     *
     * <p>Order (crash safety): the index is renamed to {@code indexes/ID.deleted} and the directory synced, then the
     * catalog row is deleted, then the file and the backup's markers. A crash in between is finished by the next
     * open ({@link #recover}); a backup is never half deleted, and restores that already opened the index go on.
     */
    public void deleteBackup(String backupId) throws IOException {
        checkOpen();
        requireKey();
        BackupInfo b = deletable(backupId, catalog.protectedBackups().keySet(), "");
        storage.beginDelete(backupId);
        removeDeleted(backupId);
        LOG.info("deleted backup {} of {}", backupId, b.diskLabel());
    }

    /**
     * Deletes the given backups ({@link #deleteBackup}) under the maintenance lock ({@code gc.lock}), as prune does.
     * Every id is checked first: if one is unknown, incomplete or protected, nothing is deleted.
     */
    @SuppressWarnings("try") // the lock is held by the try block
    public void deleteBackups(List<String> backupIds, Duration waitLock) throws IOException {
        checkOpen();
        requireKey();
        Set<String> prot = catalog.protectedBackups().keySet();
        for (String id : backupIds) {
            deletable(id, prot, "; nothing was deleted");
        }
        try (Maintenance m = maintenance("forget", waitLock)) {
            for (String id : backupIds) {
                deleteBackup(id);
            }
        }
    }

    /** The backup {@code backupId} if it may be deleted (known, complete or bad, not protected); else why not. */
    private BackupInfo deletable(String backupId, Set<String> protectedIds, String suffix) throws IOException {
        BackupInfo b = catalog.backup(backupId).orElseThrow(() -> new RepositoryException("no backup " + backupId
            + " in repository " + dir + "; list the backups with: jbackup list" + suffix));
        if (BackupInfo.INCOMPLETE.equals(b.state())) {
            throw new RepositoryException("backup " + backupId + " is incomplete (being written); it cannot be "
                + "deleted" + suffix);
        }
        if (protectedIds.contains(backupId)) {
            throw new RepositoryException("backup " + backupId + " is protected; lift that first with: jbackup "
                + "unprotect " + backupId + suffix);
        }
        return b;
    }

    private void removeDeleted(String backupId) throws IOException {
        catalog.deleteBackup(backupId);
        storage.finishDelete(backupId);
    }

    /**
     * Protects a backup from {@link #prune} and {@link #deleteBackup} (or lifts the protection). Recorded in the
     * catalog and in a marker file {@code indexes/ID.keep}, so a rebuilt catalog keeps it.
     */
    public void setProtected(String backupId, boolean protect, String reason) throws IOException {
        checkOpen();
        requireKey();
        if (!catalog.setProtected(backupId, protect, reason)) {
            throw new NotFoundException("cannot " + (protect ? "protect" : "unprotect") + " backup " + backupId
                + ": no such complete backup");
        }
        String marker = io.jbackup.store.layout.RepositoryLayout.keepMarker(backupId);
        if (protect) {
            ObjectNode n = Json.MAPPER.createObjectNode();
            n.put("reason", reason == null ? "" : reason);
            n.put("protected", Instant.now().toString());
            storage.write(marker, Json.bytes(n));
        } else {
            storage.delete(marker);
        }
    }

    /** Protected backups, with the reason given (may be null). */
    public Map<String, String> protectedBackups() throws IOException {
        checkOpen();
        return catalog.protectedBackups();
    }

    /** The last successful verification of each backup that has one. */
    public Map<String, Catalog.Verification> verifications() throws IOException {
        checkOpen();
        return catalog.verifications();
    }

    /** Repository totals from the catalog (no pack or index is read). */
    public Catalog.Totals totals() throws IOException {
        checkOpen();
        return catalog.totals();
    }

    /**
     * Applies a retention policy to every disk (narrowed by {@code vm} and {@code disk} when not null) and, unless
     * {@code dryRun}, deletes the backups it does not keep ({@link #deleteBackup}). Takes the maintenance lock
     * ({@code gc.lock}) for its duration, so it never runs during a gc.
     */
    public PruneReport prune(RetentionPolicy policy, String vm, String disk, boolean dryRun, Duration waitLock)
        throws IOException {
        PruneReport r = prune(policy, b -> (vm == null || vm.equals(b.vm())) && (disk == null || disk.equals(b.disk())),
            dryRun, waitLock);
        if (r.disks().isEmpty() && (vm != null || disk != null)) {
            throw new NotFoundException("no backups of " + (vm == null ? "" : "vm " + vm + " ")
                + (disk == null ? "" : "disk " + disk + " ") + "in repository " + dir + "; list them with: jbackup list");
        }
        return r;
    }

    /** {@link #prune(RetentionPolicy, String, String, boolean, Duration)} for the backups {@code select} accepts. */
    @SuppressWarnings("try") // the lock is held by the try block
    public PruneReport prune(RetentionPolicy policy, java.util.function.Predicate<BackupInfo> select, boolean dryRun,
                             Duration waitLock) throws IOException {
        checkOpen();
        requireKey();
        Map<String, List<BackupInfo>> byDisk = new java.util.TreeMap<>();
        for (BackupInfo b : catalog.backups()) {
            if (!select.test(b)) {
                continue;
            }
            byDisk.computeIfAbsent((b.vm() == null ? "" : b.vm()) + "\0" + b.disk(), k -> new ArrayList<>()).add(b);
        }
        try (Maintenance m = dryRun ? null : maintenance("prune", waitLock)) {
            Set<String> prot = catalog.protectedBackups().keySet();
            List<PruneReport.Disk> out = new ArrayList<>();
            for (List<BackupInfo> l : byDisk.values()) {
                List<Retention.Decision> ds = Retention.apply(policy, l, prot);
                out.add(new PruneReport.Disk(l.get(0).vm(), l.get(0).disk(), ds));
                if (!dryRun) {
                    for (Retention.Decision d : ds) {
                        if (!d.keep()) {
                            deleteBackup(d.backup().id());
                        }
                    }
                }
            }
            PruneReport r = new PruneReport(policy.describe(), dryRun, out);
            LOG.info("prune ({}){}: {} kept, {} removed", policy.describe(), dryRun ? " dry run" : "", r.kept(),
                r.removed());
            return r;
        }
    }

    /**
     * Reclaims space: deletes chunks that no backup uses and rewrites packs that are mostly garbage. Runs with
     * backups going on (see {@link GarbageCollector}); takes the maintenance lock ({@code gc.lock}).
     */
    @SuppressWarnings("try") // the lock is held by the try block
    public GcReport gc(GcOptions options) throws IOException {
        checkOpen();
        requireKey();
        try (Maintenance m = maintenance("gc", options.waitLock())) {
            return new GarbageCollector(this, options).run();
        }
    }

    /** The maintenance lock, held by prune, forget and gc; closing releases it. */
    interface Maintenance extends AutoCloseable {
        @Override
        void close() throws IOException;
    }

    /**
     * Takes the maintenance lock: {@code gc.lock} of this host (one gc or prune at a time), and in an object store
     * also the deletion lease that every host takes before deleting anything ({@link DeletionLease}); with the lease
     * held, the catalog is refreshed, so the deletions see every backup committed before.
     */
    private Maintenance maintenance(String purpose, Duration wait) throws IOException {
        FileMutex m = FileMutex.acquire(dir.resolve(GC_LOCK), purpose, wait);
        if (!storage.remote()) {
            return m::close;
        }
        DeletionLease lease = null;
        try {
            lease = DeletionLease.acquire(storage.objects(), io.jbackup.store.layout.RepositoryLayout.DELETION_LEASE,
                purpose, DeletionLease.DEFAULT_TTL, wait);
            storage.guardDeletions(lease);
            RemoteCatalog.refresh(this);
        } catch (IOException | RuntimeException e) {
            storage.guardDeletions(null);
            if (lease != null) {
                lease.close();
            }
            m.close();
            throw e;
        }
        DeletionLease held = lease;
        return () -> {
            storage.guardDeletions(null);
            held.close();
            m.close();
        };
    }

    // ------------------------------------------------------------------------------------------- maintenance, runs

    /** Checks the selected backups' chunks; see {@link Verifier}. {@code repair} needs the exclusive lock. */
    public VerifyReport verify(VerifyOptions options) throws IOException {
        checkOpen();
        requireKey();
        if (options.repair() && lock.mode() != LockMode.EXCLUSIVE) {
            throw new IllegalStateException("verify with repair needs the repository opened with the exclusive lock");
        }
        return new Verifier(this, options).run();
    }

    /**
     * Rebuilds {@code DIR/catalog.db} from the packs and index files alone, under the exclusive lock; the old
     * catalog (if any) is kept as {@code catalog.db.old-TIMESTAMP}.
     */
    public static RebuildReport rebuildCatalog(Path dir, OpenOptions opts) throws IOException {
        return CatalogRebuilder.rebuild(dir, opts);
    }

    static Repository openForRebuild(Path dir, OpenOptions opts, CatalogRebuilder.Step prepare) throws IOException {
        RepositoryConfig config = RepositoryConfig.read(dir);
        Storage storage = Storage.local(dir);
        RepositoryKeys keys = unlock(storage, config, opts);
        RepositoryLock lock = RepositoryLock.acquire(dir, LockMode.EXCLUSIVE, opts.waitLock());
        Catalog catalog = null;
        try {
            prepare.run(config);
            catalog = SqliteCatalog.open(dir.resolve(SqliteCatalog.FILE_NAME), config.id(), true);
            return new Repository(storage, config, lock, catalog, keys, opts.effectiveWorkers());
        } catch (IOException | RuntimeException e) {
            if (catalog != null) {
                catalog.close();
            }
            lock.close();
            storage.close();
            throw e;
        }
    }

    /** Records the start of a command run in the catalog's run log; returns its id. */
    public long startRun(String command) throws IOException {
        checkOpen();
        return catalog.startRun(command, Owner.current().id());
    }

    /** Records the end of a run ({@code ok}, {@code failed}, {@code damaged}, ...). */
    public void finishRun(long runId, String status, String message) throws IOException {
        checkOpen();
        catalog.finishRun(runId, status, message);
    }

    /** Where a chunk is stored, or null if the catalog does not know it (diagnostics). */
    public ChunkLocation chunkLocation(byte[] digest) throws IOException {
        checkOpen();
        return catalog.findChunk(digest);
    }

    /** The file of a pack, by name. */
    public Path packFile(String packName) {
        return PackFormat.path(dir, packName);
    }

    // --------------------------------------------------------------------------------------- package internals

    Catalog catalog() {
        return catalog;
    }

    /** The batched dedup lookups of every writer of this repository. */
    DedupLookups dedupLookups() {
        return dedupLookups;
    }

    ChunkCodec codec() {
        if (keyless) {
            throw new IllegalStateException("repository " + dir + " was opened without its key");
        }
        return codec;
    }

    MetaMac metaMac() {
        if (keyless) {
            throw new IllegalStateException("repository " + dir + " was opened without its key");
        }
        return MetaMac.create(codec.keys());
    }

    ExecutorService pool() {
        return pool;
    }

    /** Where chunk reads run: the worker pool, or for an object store a pool sized for requests in flight. */
    ExecutorService readPool() {
        return readPool;
    }

    int workerThreads() {
        return workerThreads;
    }

    PackFiles packFiles() {
        return packFiles;
    }

    /** This process's temporary directory, created on first use. */
    Path tmpDir() throws IOException {
        if (!Files.isDirectory(ownTmp)) {
            Files.createDirectories(ownTmp);
        }
        return ownTmp;
    }

    PackWriter pendingGet(ChunkId id) {
        return pending.get(id);
    }

    /** Claims a chunk for {@code p}; returns the pack that already claimed it, or null. */
    PackWriter pendingClaim(ChunkId id, PackWriter p) {
        return pending.putIfAbsent(id, p);
    }

    void unpend(List<ChunkRow> rows, PackWriter p) {
        for (ChunkRow r : rows) {
            pending.remove(new ChunkId(r.digest()), p);
        }
    }

    void writerDone(PackedBackupWriter w) {
        writers.remove(w);
    }

    /**
     * Reads and checks one chunk. {@code backupId}/{@code diskOffset} only serve error messages (null/-1 if none).
     */
    byte[] readChunk(byte[] digest, int expectedLen, String backupId, long diskOffset) throws IOException {
        checkOpen();
        ChunkLocation loc = catalog.findChunk(digest);
        if (loc == null) {
            Optional<Catalog.DamagedChunk> d = catalog.damagedChunk(digest);
            if (d.isPresent()) {
                ChunkLocation at = d.get().location();
                throw new ChunkCorruptException(storage.describePack(at.pack()), at.offset(), ChunkId.hex(digest),
                    backupId, diskOffset, d.get().problem() + ", found " + d.get().found()
                    + "; the next backup that reads this data stores it again");
            }
            throw new RepositoryException("chunk " + ChunkId.hex(digest) + (backupId == null ? "" : " (backup "
                + backupId + ", disk offset " + diskOffset + ")") + " is not in the catalog; if the catalog is out of "
                + "date, rebuild it with: jbackup repair --rebuild-catalog; otherwise run jbackup verify");
        }
        try {
            try {
                return readRecord(loc, digest, expectedLen, backupId, diskOffset);
            } catch (RepositoryException e) {
                if (storage.packExists(loc.pack())) {
                    throw e;
                }
                // gc repacked the chunk meanwhile and deleted the old pack: read it where the catalog says now
                ChunkLocation moved = catalog.findChunk(digest);
                if (moved == null || moved.equals(loc)) {
                    throw e;
                }
                loc = moved;
                return readRecord(moved, digest, expectedLen, backupId, diskOffset);
            }
        } catch (ChunkCorruptException e) {
            quarantine(digest, loc, e.problem());
            throw e;
        }
    }

    /**
     * Takes a chunk found damaged at {@code at} out of deduplication ({@link Catalog#quarantine}), so the next
     * backup that meets its data stores it again and heals every backup that uses it.
     */
    void quarantine(byte[] digest, ChunkLocation at, String problem) {
        try {
            if (catalog.quarantine(digest, at, problem)) {
                LOG.warn("chunk {} in pack {} at offset {} is damaged ({}); it is no longer used for deduplication: "
                    + "the next backup that reads its data stores it again", ChunkId.hex(digest), at.pack(),
                    at.offset(), problem);
            }
        } catch (RepositoryException e) {
            LOG.warn("cannot record damaged chunk {} in the catalog: {}", ChunkId.hex(digest), e.getMessage());
        }
    }

    byte[] readRecord(ChunkLocation loc, byte[] digest, int expectedLen, String backupId, long diskOffset)
        throws IOException {
        requireKey();
        String pack = storage.describePack(loc.pack());
        if (loc.length() <= PackFormat.RECORD_HEADER_SIZE || loc.length() > PackFormat.MAX_RECORD_SIZE) {
            throw new ChunkCorruptException(pack, loc.offset(), ChunkId.hex(digest), backupId, diskOffset,
                "catalog gives record length " + loc.length());
        }
        ChunkCodec.Scratch s = codec.borrow();
        try {
            byte[] rec = s.record(loc.length());
            try {
                packFiles.read(loc.pack(), ByteBuffer.wrap(rec, 0, loc.length()), loc.offset());
            } catch (RepositoryException e) {
                if (e.getMessage() != null && e.getMessage().contains("truncated")) {
                    throw new ChunkCorruptException(pack, loc.offset(), ChunkId.hex(digest), backupId, diskOffset,
                        "pack is truncated");
                }
                if (e.getCause() instanceof java.nio.file.NoSuchFileException) {
                    throw new ChunkCorruptException(pack, loc.offset(), ChunkId.hex(digest), backupId, diskOffset,
                        "pack file is missing");
                }
                throw e;
            }
            return codec.decode(s, rec, loc.length(), digest, expectedLen);
        } catch (ChunkCodec.RecordException e) {
            throw new ChunkCorruptException(pack, loc.offset(), ChunkId.hex(digest), backupId, diskOffset,
                e.getMessage());
        } finally {
            codec.release(s);
        }
    }

    /** Whether the repository was opened with its key (always true for a plain repository). */
    public boolean hasKey() {
        return !keyless;
    }

    private void requireKey() throws PassphraseRequiredException {
        if (keyless) {
            throw new PassphraseRequiredException("repository " + dir + " is encrypted and was opened without its "
                + "key, for listing only; this needs the passphrase: give it with JBACKUP_PASSPHRASE, "
                + "--passphrase-file FILE, or type it on a terminal");
        }
    }

    void checkOpen() throws RepositoryException {
        if (closed) {
            throw new RepositoryException("repository " + dir + " is closed");
        }
    }

    boolean isClosed() {
        return closed;
    }

    /**
     * Aborts backups still open, stops the worker pool, closes the catalog and releases the lock.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        for (PackedBackupWriter w : List.copyOf(writers)) {
            LOG.warn("backup {} was still open when the repository closed; aborting it", w.id());
            w.abort();
        }
        closed = true;
        if (readPool != pool) {
            readPool.shutdownNow();
        }
        pool.shutdown();
        try {
            if (!pool.awaitTermination(60, TimeUnit.SECONDS)) {
                LOG.warn("worker threads of repository {} did not stop within 60 s", dir);
                pool.shutdownNow();
            }
        } catch (InterruptedException e) {
            pool.shutdownNow();
            Thread.currentThread().interrupt();
        }
        codec.close();
        packFiles.close();
        catalog.close();
        storage.close();
        try {
            FileSync.deleteTree(ownTmp);
        } catch (IOException e) {
            LOG.debug("cannot remove {}: {}", ownTmp, e.toString());
        }
        lock.close();
    }
}
