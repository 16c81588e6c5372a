package io.jbackup.store;

import io.jbackup.error.UsageException;
import io.jbackup.model.RepositoryException;
import io.jbackup.objectstore.ObjectStore;
import io.jbackup.objectstore.ObjectSource;
import io.jbackup.store.layout.RepositoryLayout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Arrays;
import java.util.Optional;
import java.util.UUID;

/**
 * Creating and opening repositories in an object store. The bucket holds what describes the backups (config, key
 * slots, packs, indexes, manifests, markers); this host keeps its working state (the catalog cache, locks,
 * temporary files) in {@code CACHE_ROOT/REPOSITORY_ID/}, created on first open.
 */
final class RemoteRepositories {
    private static final Logger LOG = LoggerFactory.getLogger(RemoteRepositories.class);
    private static final SecureRandom RANDOM = new SecureRandom();

    private RemoteRepositories() {
    }

    static Repository init(RepositoryLocation.Remote location, RepositoryOptions opts, char[] passphraseOrNull)
        throws IOException {
        if (opts.encryption() == Encryption.AES_256_GCM && (passphraseOrNull == null || passphraseOrNull.length == 0)) {
            throw new UsageException("encryption aes-256-gcm needs a passphrase: set JBACKUP_PASSPHRASE, "
                + "pass --passphrase-file FILE, or run on a terminal to be asked");
        }
        ObjectStore objects = location.opener().open();
        try {
            if (!objects.list("", null).objects().isEmpty()) {
                boolean repo = objects.stat(RepositoryLayout.CONFIG).isPresent();
                throw new RepositoryException(location.url() + " is not empty" + (repo ? " (it already holds a "
                    + "repository)" : "") + "; jbackup init needs a new bucket or an unused prefix: "
                    + "s3://BUCKET/NEW-PREFIX");
            }
            RepositoryConfig config = new RepositoryConfig(UUID.randomUUID().toString(),
                RepositoryConfig.FORMAT_VERSION, opts.chunkSize(), opts.encryption(), opts.compressionLevel(),
                opts.packSize(), Instant.now().truncatedTo(ChronoUnit.SECONDS), null);
            Storage storage = Storage.remote(objects, hostDir(location, config));
            RepositoryKeys keys = null;
            if (opts.encryption() == Encryption.AES_256_GCM) {
                byte[] master = new byte[RepositoryKeys.KEY_LENGTH];
                RANDOM.nextBytes(master);
                try {
                    KeySlots.write(storage, KeyFile.seal("repository", master, passphraseOrNull, config.id(), null,
                        Owner.current().host(), RANDOM));
                    keys = RepositoryKeys.derive(master, config.id());
                } finally {
                    Arrays.fill(master, (byte) 0);
                }
                config = config.withMac(keys);
            }
            // config.json last, and only if no other host created a repository here meanwhile
            if (objects.create(RepositoryLayout.CONFIG, ObjectSource.of(config.toJson())).isEmpty()) {
                throw new RepositoryException("another jbackup created a repository at " + location.url()
                    + " at the same moment; use it, or choose another prefix");
            }
            LOG.info("created repository {} (id {}, chunk size {}, encryption {}, zstd level {})", location.url(),
                config.id(), config.defaultChunkSize(), config.encryption(), config.compressionLevel());
            return RepositoryOpener.openWith(storage, config, keys, OpenOptions.defaults());
        } catch (IOException | RuntimeException e) {
            objects.close();
            throw e;
        }
    }

    /** A repository's storage (which the caller closes) and its config, read from the bucket. */
    record Connected(Storage storage, RepositoryConfig config) {
    }

    /**
     * Connects to the repository at {@code location} and reads its config, without lock or catalog: what
     * {@link #open} and the key commands ({@link KeyManager}) start from. This host's cache directory is created.
     */
    static Connected connect(RepositoryLocation.Remote location) throws IOException {
        ObjectStore objects = location.opener().open();
        try {
            String configName = location.url() + "/" + RepositoryLayout.CONFIG;
            Optional<byte[]> bytes = objects.getVersioned(RepositoryLayout.CONFIG).map(v -> v.data());
            if (bytes.isEmpty()) {
                throw new NotARepositoryException("no jbackup repository at " + location.url() + " (" + configName
                    + " is missing); create one with: jbackup init --repo " + location.url());
            }
            RepositoryConfig config = RepositoryConfig.parse(bytes.get(), configName, location.url());
            return new Connected(Storage.remote(objects, hostDir(location, config)), config);
        } catch (IOException | RuntimeException e) {
            objects.close();
            throw e;
        }
    }

    static Repository open(RepositoryLocation.Remote location, OpenOptions opts) throws IOException {
        Connected c = connect(location);
        Storage storage = c.storage();
        RepositoryConfig config = c.config();
        try {
            if (opts.keyOptional() && config.encryption() != Encryption.NONE) {
                char[] pass = opts.passphrase() == null ? null : opts.passphrase().get();
                if (pass == null || pass.length == 0) {
                    return RepositoryOpener.openWithoutKey(storage, config, opts);
                }
                opts = opts.withPassphrase(() -> pass);
            }
            RepositoryKeys keys = RepositoryOpener.unlock(storage, config, opts);
            return RepositoryOpener.openWith(storage, config, keys, opts);
        } catch (IOException | RuntimeException e) {
            storage.close();
            throw e;
        }
    }

    /** {@code CACHE_ROOT/ID}, created (mode 0700) with the directories the repository's host state needs. */
    private static Path hostDir(RepositoryLocation.Remote location, RepositoryConfig config) throws IOException {
        Path root = location.cacheRoot();
        Path dir = root.resolve(config.id());
        try {
            if (!Files.isDirectory(dir)) {
                Files.createDirectories(root);
                Files.createDirectories(dir);
                FilePermissions.restrict(dir, FilePermissions.OWNER_DIR);
            }
            for (String d : new String[] {RepositoryLayout.TMP, RepositoryLayout.LOCKS, RepositoryLayout.INDEXES}) {
                Files.createDirectories(dir.resolve(d));
            }
        } catch (IOException e) {
            throw new RepositoryException("cannot create the cache directory " + dir + " of repository "
                + location.url() + ": " + e.getMessage() + "; choose another one with --cache-dir DIR", e);
        }
        return dir;
    }
}
