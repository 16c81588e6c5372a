package io.jbackup.store;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.model.RepositoryException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
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
 * packs, indexes or the catalog. Opened with one passphrase; the slot it opens is the <em>current</em> one.
 *
 * <p>Rules: the last slot is never removed, and neither is the current one (open with another slot's passphrase to
 * remove it, or use {@link #passwd}), so after every change the passphrase just typed still opens the repository.
 * {@link #passwd} writes the new slot first and then removes the current one: a crash in between leaves both, each
 * opening. Changes hold {@code keys/lock}, so two of them never interleave.
 */
public final class KeyManager implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(KeyManager.class);
    private static final SecureRandom RANDOM = new SecureRandom();
    static final String LOCK_FILE = "lock";

    private final Path dir;
    private final RepositoryConfig config;
    private final Duration waitLock;
    private byte[] master;
    private String currentId;

    private KeyManager(Path dir, RepositoryConfig config, Duration waitLock, KeySlots.Unlocked u) {
        this.dir = dir;
        this.config = config;
        this.waitLock = waitLock;
        this.master = u.masterKey();
        this.currentId = u.slot().id();
    }

    /**
     * Opens the keys of the encrypted repository at {@code dir} with the passphrase {@code passphrase} supplies
     * (the array is wiped); the config MAC is checked, so the key is known to be this repository's.
     */
    public static KeyManager open(Path dir, Supplier<char[]> passphrase, Duration waitLock) throws IOException {
        RepositoryConfig config = encryptedConfig(dir);
        char[] pass = KeySlots.passphrase(dir, passphrase);
        KeySlots.Unlocked u;
        try {
            u = KeySlots.unlock(dir, config.id(), pass);
        } finally {
            Arrays.fill(pass, '\0');
        }
        try {
            config.checkMac(RepositoryKeys.derive(u.masterKey(), config.id()), dir);
        } catch (IOException | RuntimeException e) {
            Arrays.fill(u.masterKey(), (byte) 0);
            throw e;
        }
        return new KeyManager(dir, config, waitLock, u);
    }

    private static RepositoryConfig encryptedConfig(Path dir) throws IOException {
        RepositoryConfig config = RepositoryConfig.read(dir);
        if (config.encryption() == Encryption.NONE) {
            throw new RepositoryException("repository " + dir + " is not encrypted; it has no keys (an encrypted "
                + "repository is made with: jbackup init --encryption aes-256-gcm)");
        }
        return config;
    }

    /** The id of the slot that opened the repository. */
    public String currentId() {
        return currentId;
    }

    /** Every slot, by id, damaged ones included (with their problem). */
    public List<KeyInfo> list() throws IOException {
        checkOpen();
        List<KeyInfo> out = new ArrayList<>();
        for (Path f : KeySlots.files(dir)) {
            String id = KeyFile.idOf(f);
            try {
                KeyFile k = KeyFile.read(f, config.id());
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
        try (FileMutex m = lock("key add")) {
            return info(addSlot(newPassphrase, label), false);
        }
    }

    /**
     * Changes the passphrase: adds a slot for {@code newPassphrase} (keeping the current slot's label), then removes
     * the current slot. Returns the new slot, which becomes the current one.
     */
    public KeyInfo passwd(char[] newPassphrase) throws IOException {
        checkOpen();
        try (FileMutex m = lock("key passwd")) {
            Path old = KeyFile.path(dir, currentId);
            KeyFile cur = KeyFile.read(old, config.id());
            KeyFile k = addSlot(newPassphrase, cur.label());
            KeySlots.delete(old);
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
        try (FileMutex m = lock("key remove")) {
            List<Path> files = KeySlots.files(dir);
            List<Path> match = new ArrayList<>();
            for (Path f : files) {
                String id = KeyFile.idOf(f);
                if (id.equals(idOrPrefix)) {
                    match = List.of(f);
                    break;
                }
                if (!idOrPrefix.isEmpty() && id.startsWith(idOrPrefix)) {
                    match.add(f);
                }
            }
            if (match.isEmpty()) {
                throw new KeyRefusedException("no key '" + idOrPrefix + "' in repository " + dir + "; see the ids "
                    + "with: jbackup key list --repo " + dir);
            }
            if (match.size() > 1) {
                throw new KeyRefusedException("'" + idOrPrefix + "' matches " + match.size() + " keys; type more of "
                    + "the id (see jbackup key list --repo " + dir + ")");
            }
            String id = KeyFile.idOf(match.get(0));
            if (files.size() == 1) {
                throw new KeyRefusedException("key " + id + " is the last key of repository " + dir + "; without it "
                    + "nobody can read the backups. Add another first (jbackup key add), or change its passphrase "
                    + "with jbackup key passwd. Nothing was removed");
            }
            if (id.equals(currentId)) {
                throw new KeyRefusedException("key " + id + " is the one whose passphrase opened the repository "
                    + "for this command; to remove it, give another key's passphrase, or change its passphrase with "
                    + "jbackup key passwd. Nothing was removed");
            }
            KeySlots.delete(match.get(0));
            LOG.info("removed key slot {} of repository {}", id, dir);
            return id;
        }
    }

    private KeyFile addSlot(char[] newPassphrase, String label) throws IOException {
        if (newPassphrase == null || newPassphrase.length == 0) {
            throw new KeyRefusedException("the new passphrase is empty; nothing was changed");
        }
        if (KeyFile.read(KeyFile.path(dir, currentId), config.id()).unseal(newPassphrase).isPresent()) {
            throw new KeyRefusedException("the new passphrase is the same as the current one (key " + currentId
                + "); nothing was changed");
        }
        KeyFile k = KeySlots.add(dir, config.id(), master, newPassphrase, label, RANDOM);
        LOG.info("added key slot {} to repository {}", k.id(), dir);
        return k;
    }

    private KeyInfo info(KeyFile k, boolean current) {
        return new KeyInfo(k.id(), k.created(), k.label(), k.host(), current, null);
    }

    private FileMutex lock(String what) throws IOException {
        return FileMutex.acquire(dir.resolve(KeyFile.DIR).resolve(LOCK_FILE), what, waitLock);
    }

    private void checkOpen() {
        if (master == null) {
            throw new IllegalStateException("key manager of " + dir + " is closed");
        }
    }

    /**
     * Needs no passphrase: the sealed key slots for safekeeping. With {@code idOrNull}, that slot's file as it is
     * (put it back as {@code keys/ID.key}); otherwise one JSON object listing every readable slot:
     * {@code {"format": "jbackup-keys", "repository": ID, "keys": [{"id", "file", "key": <slot file>}]}}.
     */
    public static String export(Path dir, String idOrNull) throws IOException {
        RepositoryConfig config = encryptedConfig(dir);
        if (idOrNull != null) {
            Path f = KeyFile.path(dir, idOrNull);
            if (!KeyFile.idOf(f).equals(idOrNull) || idOrNull.contains("/") || !Files.isRegularFile(f)) {
                throw new KeyRefusedException("no key '" + idOrNull + "' in repository " + dir + "; see the ids with: "
                    + "jbackup key list --repo " + dir);
            }
            KeyFile.read(f, config.id()); // validates
            return Files.readString(f);
        }
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("format", "jbackup-keys");
        o.put("repository", config.id());
        ArrayNode keys = o.putArray("keys");
        for (Path f : KeySlots.files(dir)) {
            try {
                KeyFile.read(f, config.id());
            } catch (RepositoryException e) {
                LOG.warn("not exporting key slot {}: {}", f, e.getMessage());
                continue;
            }
            ObjectNode k = keys.addObject();
            k.put("id", KeyFile.idOf(f));
            k.put("file", KeyFile.DIR + "/" + f.getFileName());
            k.set("key", Json.parse(Files.readAllBytes(f), f));
        }
        if (keys.isEmpty()) {
            throw new RepositoryException("repository " + dir + " has no readable key slot in " + KeyFile.DIR
                + "/ to export; put back your copy from an earlier jbackup key export");
        }
        return new String(Json.bytes(o), java.nio.charset.StandardCharsets.UTF_8);
    }

    /** Wipes the master key. */
    @Override
    public void close() {
        if (master != null) {
            Arrays.fill(master, (byte) 0);
            master = null;
        }
    }
}
