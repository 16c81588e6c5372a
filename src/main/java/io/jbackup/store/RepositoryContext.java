package io.jbackup.store;

import io.jbackup.catalog.Catalog;
import io.jbackup.catalog.ChunkRow;
import io.jbackup.model.RepositoryException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * What the parts of one open repository share, handed to each part instead of the {@link Repository} facade: the
 * storage, the config, the lock, the catalog, the chunk codec (with the key, if any), the pack reader, the worker
 * pool (hashing, compression, encryption) and the fetch pool (chunk reads of an object store), the claims of chunks
 * in packs not yet sealed, and the open writers. {@link #close} releases all of it.
 */
final class RepositoryContext {
    private static final Logger LOG = LoggerFactory.getLogger(RepositoryContext.class);
    static final String TMP_DIR = "tmp";
    static final String GC_LOCK = "gc.lock";
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


    RepositoryContext(Storage storage, RepositoryConfig config, RepositoryLock lock, Catalog catalog,
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

    RepositoryConfig config() {
        return config;
    }

    /** This host's directory of the repository (the repository itself when local; the cache dir when remote). */
    Path dir() {
        return dir;
    }

    /** The repository for messages: its directory, or {@code s3://bucket/prefix}. */
    String location() {
        return storage.location();
    }

    Storage storage() {
        return storage;
    }

    LockMode lockMode() {
        return lock.mode();
    }

    /** Whether chunks are encrypted (known without the key). */
    boolean encrypted() {
        return config.encryption() != Encryption.NONE;
    }

    void addWriter(PackedBackupWriter w) {
        writers.add(w);
    }

    Catalog catalog() {
        return catalog;
    }

    /** The batched dedup lookups of every writer of this repository. */
    DedupLookups dedupLookups() {
        return dedupLookups;
    }

    ChunkCodec codec() {
        if (keyless) {
            throw new IllegalStateException("repository " + location() + " was opened without its key");
        }
        return codec;
    }

    MetaMac metaMac() {
        if (keyless) {
            throw new IllegalStateException("repository " + location() + " was opened without its key");
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

    /** Whether the repository was opened with its key (always true for a plain repository). */
    boolean hasKey() {
        return !keyless;
    }

    void requireKey() throws PassphraseRequiredException {
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
    void close() {
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
