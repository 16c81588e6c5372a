package io.jbackup.store;

import io.jbackup.catalog.Catalog;
import io.jbackup.catalog.SqliteCatalog;
import io.jbackup.error.UsageException;
import io.jbackup.model.RepositoryException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;

/**
 * Creating and opening repositories: checks of the config and its MAC, unlocking the key, the lock, the catalog,
 * then crash recovery ({@link RepositoryRecovery}) and, in an object store, the refresh of the catalog cache
 * ({@link RemoteCatalog}). Object stores are created and opened by {@link RemoteRepositories}.
 */
final class RepositoryOpener {
    private static final Logger LOG = LoggerFactory.getLogger(RepositoryOpener.class);
    private static final SecureRandom RANDOM = new SecureRandom();

    private RepositoryOpener() {
    }

    /**
     * Creates a repository in {@code dir} (which must not exist or be empty) and returns it opened with a shared
     * lock. {@code passphraseOrNull} is required for {@link Encryption#AES_256_GCM} (and must be null or ignored
     * otherwise); it is copied, not wiped.
     */
    static Repository init(Path dir, RepositoryOptions opts, char[] passphraseOrNull) throws IOException {
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
        for (String d : List.of(PackFormat.DIR, IndexFile.DIR, RepositoryContext.TMP_DIR, RepositoryLock.RECORD_DIR)) {
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
    static Repository init(RepositoryLocation location, RepositoryOptions opts, char[] passphraseOrNull)
        throws IOException {
        if (location instanceof RepositoryLocation.Local l) {
            return init(l.dir(), opts, passphraseOrNull);
        }
        return RemoteRepositories.init((RepositoryLocation.Remote) location, opts, passphraseOrNull);
    }

    /** {@link #open(Path, OpenOptions)} at a local or remote location. */
    static Repository open(RepositoryLocation location, OpenOptions opts) throws IOException {
        if (location instanceof RepositoryLocation.Local l) {
            return open(l.dir(), opts);
        }
        return RemoteRepositories.open((RepositoryLocation.Remote) location, opts);
    }

    /** Opens an existing repository (see {@link OpenOptions}). */
    static Repository open(Path dir, OpenOptions opts) throws IOException {
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
        Repository r = openWith(storage, config, null, opts);
        if (storage.remote()) {
            try {
                RemoteCatalog.warnIfStale(r.context());
            } catch (IOException | RuntimeException e) {
                r.close();
                throw e;
            }
        }
        return r;
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
            r = new Repository(new RepositoryContext(storage, config, lock, catalog, keys, opts.effectiveWorkers()));
        } catch (IOException | RuntimeException e) {
            if (catalog != null) {
                catalog.close();
            }
            lock.close();
            storage.close();
            throw e;
        }
        try {
            if (r.hasKey()) {
                if (storage.remote()) {
                    RemoteCatalog.refresh(r.context());
                }
                // recovery needs the key (index and footer MACs); the next open with it recovers
                new RepositoryRecovery(r.context()).recover();
            }
            return r;
        } catch (IOException | RuntimeException e) {
            r.close();
            throw e;
        }
    }

    /**
     * Rebuilds this host's catalog of the repository at {@code location} from its objects alone, under the exclusive
     * lock; the old catalog (if any) is kept as {@code catalog.db.old-TIMESTAMP} ({@link CatalogRebuilder}).
     */
    static RebuildReport rebuildCatalog(RepositoryLocation location, OpenOptions opts) throws IOException {
        return CatalogRebuilder.rebuild(location, opts);
    }

    /**
     * Opens the repository at {@code location} with its key and the exclusive lock, runs {@code prepare} on the
     * host directory, then opens a new catalog there: no recovery, no refresh (the rebuild fills it).
     */
    static Repository openForRebuild(RepositoryLocation location, OpenOptions opts, CatalogRebuilder.Step prepare)
        throws IOException {
        RepositoryConfig config;
        Storage storage;
        if (location instanceof RepositoryLocation.Local l) {
            config = RepositoryConfig.read(l.dir());
            storage = Storage.local(l.dir());
        } else {
            RemoteRepositories.Connected c = RemoteRepositories.connect((RepositoryLocation.Remote) location);
            config = c.config();
            storage = c.storage();
        }
        Path dir = storage.hostDir();
        RepositoryKeys keys;
        RepositoryLock lock;
        try {
            keys = unlock(storage, config, opts);
            lock = RepositoryLock.acquire(dir, LockMode.EXCLUSIVE, opts.waitLock());
        } catch (IOException | RuntimeException e) {
            storage.close();
            throw e;
        }
        Catalog catalog = null;
        try {
            prepare.run(dir);
            catalog = SqliteCatalog.open(dir.resolve(SqliteCatalog.FILE_NAME), config.id(), true);
            return new Repository(new RepositoryContext(storage, config, lock, catalog, keys, opts.effectiveWorkers()));
        } catch (IOException | RuntimeException e) {
            if (catalog != null) {
                catalog.close();
            }
            lock.close();
            storage.close();
            throw e;
        }
    }
}
