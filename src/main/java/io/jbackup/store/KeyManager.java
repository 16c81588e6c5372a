package io.jbackup.store;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.model.RepositoryException;
import io.jbackup.store.layout.RepositoryLayout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;

/**
 * The key slots of an encrypted repository ({@code jbackup key ...}), restic-style: each slot is the same master key
 * sealed under its own passphrase ({@link KeySlots}), so adding, removing or changing a passphrase never rewrites
 * packs, indexes or the catalog. Opened with one passphrase; the slot it opens is the <em>current</em> one. Works on
 * a local directory and on an object store ({@link RepositoryLocation}): the slots are {@code keys/ID.key} files or
 * objects.
 *
 * <p>Rules: the last slot is never removed, and neither is the current one (open with another slot's passphrase to
 * remove it, or use {@link #passwd}), so after every change the passphrase just typed still opens the repository.
 * {@link #passwd} writes the new slot first and then removes the current one: a crash in between leaves both, each
 * opening. Changes never interleave: in a directory they hold {@code keys/lock}; in an object store, where several
 * hosts may change keys, they hold the repository's deletion lease ({@link DeletionLease}, the one every host takes
 * before deleting anything), and the slot list is read again under it. A new slot is written with a conditional
 * create under a fresh random id, so it never replaces another host's slot.
 */
public final class KeyManager implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(KeyManager.class);
    private static final SecureRandom RANDOM = new SecureRandom();
    static final String LOCK_FILE = "lock";

    private final Storage storage;
    private final RepositoryConfig config;
    private final Duration waitLock;
    private byte[] master;
    private String currentId;

    private KeyManager(Storage storage, RepositoryConfig config, Duration waitLock, KeySlots.Unlocked u) {
        this.storage = storage;
        this.config = config;
        this.waitLock = waitLock;
        this.master = u.masterKey();
        this.currentId = u.slot().id();
    }

    /** {@link #open(RepositoryLocation, Supplier, Duration)} of the repository directory {@code dir}. */
    public static KeyManager open(Path dir, Supplier<char[]> passphrase, Duration waitLock) throws IOException {
        return open(new RepositoryLocation.Local(dir), passphrase, waitLock);
    }

    /**
     * Opens the keys of the encrypted repository at {@code location} with the passphrase {@code passphrase}
     * supplies (the array is wiped); the config MAC is checked, so the key is known to be this repository's.
     */
    public static KeyManager open(RepositoryLocation location, Supplier<char[]> passphrase, Duration waitLock)
        throws IOException {
        RemoteRepositories.Connected c = connect(location);
        try {
            Storage storage = c.storage();
            char[] pass = KeySlots.passphrase(storage.location(), passphrase);
            KeySlots.Unlocked u;
            try {
                u = KeySlots.unlock(storage, c.config().id(), pass);
            } finally {
                Arrays.fill(pass, '\0');
            }
            try {
                c.config().checkMac(RepositoryKeys.derive(u.masterKey(), c.config().id()),
                    storage.describe(RepositoryLayout.CONFIG));
            } catch (IOException | RuntimeException e) {
                Arrays.fill(u.masterKey(), (byte) 0);
                throw e;
            }
            return new KeyManager(storage, c.config(), waitLock, u);
        } catch (IOException | RuntimeException e) {
            c.storage().close();
            throw e;
        }
    }

    /** The storage and config of an encrypted repository (the caller closes the storage). */
    private static RemoteRepositories.Connected connect(RepositoryLocation location) throws IOException {
        RemoteRepositories.Connected c;
        if (location instanceof RepositoryLocation.Local l) {
            RepositoryConfig config = RepositoryConfig.read(l.dir());
            c = new RemoteRepositories.Connected(Storage.local(l.dir()), config);
        } else {
            c = RemoteRepositories.connect((RepositoryLocation.Remote) location);
        }
        if (c.config().encryption() == Encryption.NONE) {
            c.storage().close();
            throw new RepositoryException("repository " + location.describe() + " is not encrypted; it has no keys "
                + "(an encrypted repository is made with: jbackup init --encryption aes-256-gcm)");
        }
        return c;
    }

    /** The id of the slot that opened the repository. */
    public String currentId() {
        return currentId;
    }

    /** Every slot, by id, damaged ones included (with their problem). */
    public List<KeyInfo> list() throws IOException {
        checkOpen();
        List<KeyInfo> out = new ArrayList<>();
        for (String id : KeySlots.ids(storage)) {
            try {
                KeyFile k = read(id);
                out.add(new KeyInfo(id, k.created(), k.label(), k.host(), id.equals(currentId), null));
            } catch (RepositoryException e) {
                out.add(new KeyInfo(id, null, null, null, false, e.getMessage()));
            }
        }
        return out;
    }

    /** Adds a slot for {@code newPassphrase} (not wiped); {@code label} may be null. Returns it. */
    public KeyInfo add(char[] newPassphrase, String label) throws IOException {
        checkOpen();
        try (KeyLock l = lock("key add")) {
            return info(addSlot(newPassphrase, label), false);
        }
    }

    /**
     * Changes the passphrase: adds a slot for {@code newPassphrase} (keeping the current slot's label), then removes
     * the current slot. Returns the new slot, which becomes the current one.
     */
    public KeyInfo passwd(char[] newPassphrase) throws IOException {
        checkOpen();
        try (KeyLock l = lock("key passwd")) {
            KeyFile cur = read(currentId);
            KeyFile k = addSlot(newPassphrase, cur.label());
            l.check();
            KeySlots.delete(storage, currentId);
            LOG.info("passphrase changed: key slot {} replaced by {}", currentId, k.id());
            currentId = k.id();
            return info(k, true);
        }
    }

    /**
     * Removes the slot {@code idOrPrefix} (an id or a unique prefix). Refuses the last slot and the current one
     * ({@link KeyRefusedException}).
     */
    public String remove(String idOrPrefix) throws IOException {
        checkOpen();
        String where = storage.location();
        try (KeyLock l = lock("key remove")) {
            List<String> ids = KeySlots.ids(storage);
            List<String> match = new ArrayList<>();
            for (String id : ids) {
                if (id.equals(idOrPrefix)) {
                    match = List.of(id);
                    break;
                }
                if (!idOrPrefix.isEmpty() && id.startsWith(idOrPrefix)) {
                    match.add(id);
                }
            }
            if (match.isEmpty()) {
                throw new KeyRefusedException("no key '" + idOrPrefix + "' in repository " + where + "; see the ids "
                    + "with: jbackup key list --repo " + where);
            }
            if (match.size() > 1) {
                throw new KeyRefusedException("'" + idOrPrefix + "' matches " + match.size() + " keys; type more of "
                    + "the id (see jbackup key list --repo " + where + ")");
            }
            String id = match.get(0);
            if (ids.size() == 1) {
                throw new KeyRefusedException("key " + id + " is the last key of repository " + where + "; without "
                    + "it nobody can read the backups. Add another first (jbackup key add), or change its passphrase "
                    + "with jbackup key passwd. Nothing was removed");
            }
            if (id.equals(currentId)) {
                throw new KeyRefusedException("key " + id + " is the one whose passphrase opened the repository "
                    + "for this command; to remove it, give another key's passphrase, or change its passphrase with "
                    + "jbackup key passwd. Nothing was removed");
            }
            l.check();
            KeySlots.delete(storage, id);
            LOG.info("removed key slot {} of repository {}", id, where);
            return id;
        }
    }

    private KeyFile read(String id) throws IOException {
        return KeySlots.read(storage, id, config.id());
    }

    private KeyFile addSlot(char[] newPassphrase, String label) throws IOException {
        if (newPassphrase == null || newPassphrase.length == 0) {
            throw new KeyRefusedException("the new passphrase is empty; nothing was changed");
        }
        if (read(currentId).unseal(newPassphrase).isPresent()) {
            throw new KeyRefusedException("the new passphrase is the same as the current one (key " + currentId
                + "); nothing was changed");
        }
        KeyFile k = KeySlots.add(storage, config.id(), master, newPassphrase, label, RANDOM);
        LOG.info("added key slot {} to repository {}", k.id(), storage.location());
        return k;
    }

    private KeyInfo info(KeyFile k, boolean current) {
        return new KeyInfo(k.id(), k.created(), k.label(), k.host(), current, null);
    }

    /** Held while the slots change: {@code keys/lock} of a directory, the deletion lease of an object store. */
    private interface KeyLock extends AutoCloseable {
        /** Throws if the lock was lost (a lease that could not be renewed): then nothing more may change. */
        void check() throws IOException;

        @Override
        void close() throws IOException;
    }

    private KeyLock lock(String what) throws IOException {
        if (!storage.remote()) {
            FileMutex m = FileMutex.acquire(storage.hostDir().resolve(KeyFile.DIR).resolve(LOCK_FILE), what,
                waitLock);
            return new KeyLock() {
                @Override
                public void check() {
                }

                @Override
                public void close() throws IOException {
                    m.close();
                }
            };
        }
        DeletionLease lease = DeletionLease.acquire(storage.objects(), RepositoryLayout.DELETION_LEASE, what,
            DeletionLease.DEFAULT_TTL, waitLock);
        return new KeyLock() {
            @Override
            public void check() throws IOException {
                lease.check();
            }

            @Override
            public void close() {
                lease.close();
            }
        };
    }

    private void checkOpen() {
        if (master == null) {
            throw new IllegalStateException("key manager of " + storage.location() + " is closed");
        }
    }

    /** {@link #export(RepositoryLocation, String)} of the repository directory {@code dir}. */
    public static String export(Path dir, String idOrNull) throws IOException {
        return export(new RepositoryLocation.Local(dir), idOrNull);
    }

    /**
     * Needs no passphrase: the sealed key slots for safekeeping. With {@code idOrNull}, that slot's file as it is
     * (put it back as {@code keys/ID.key}); otherwise one JSON object listing every readable slot:
     * {@code {"format": "jbackup-keys", "repository": ID, "keys": [{"id", "file", "key": <slot file>}]}}.
     */
    public static String export(RepositoryLocation location, String idOrNull) throws IOException {
        RemoteRepositories.Connected c = connect(location);
        try (Storage storage = c.storage()) {
            String where = storage.location();
            String repoId = c.config().id();
            if (idOrNull != null) {
                if (!KeySlots.ids(storage).contains(idOrNull)) {
                    throw new KeyRefusedException("no key '" + idOrNull + "' in repository " + where + "; see the "
                        + "ids with: jbackup key list --repo " + where);
                }
                KeySlots.read(storage, idOrNull, repoId); // validates
                return new String(KeySlots.bytes(storage, idOrNull), StandardCharsets.UTF_8);
            }
            ObjectNode o = Json.MAPPER.createObjectNode();
            o.put("format", "jbackup-keys");
            o.put("repository", repoId);
            ArrayNode keys = o.putArray("keys");
            for (String id : KeySlots.ids(storage)) {
                String key = RepositoryLayout.keySlot(id);
                byte[] b;
                try {
                    KeySlots.read(storage, id, repoId);
                    b = KeySlots.bytes(storage, id);
                } catch (RepositoryException e) {
                    LOG.warn("not exporting key slot {}: {}", storage.describe(key), e.getMessage());
                    continue;
                }
                ObjectNode k = keys.addObject();
                k.put("id", id);
                k.put("file", key);
                k.set("key", Json.parse(b, storage.describe(key)));
            }
            if (keys.isEmpty()) {
                throw new RepositoryException("repository " + where + " has no readable key slot in " + KeyFile.DIR
                    + "/ to export; put back your copy from an earlier jbackup key export");
            }
            return new String(Json.bytes(o), StandardCharsets.UTF_8);
        }
    }

    /** Wipes the master key and closes the storage. */
    @Override
    public void close() {
        if (master != null) {
            Arrays.fill(master, (byte) 0);
            master = null;
            storage.close();
        }
    }
}
