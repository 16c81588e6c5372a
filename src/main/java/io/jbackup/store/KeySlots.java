package io.jbackup.store;

import io.jbackup.model.RepositoryException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;
import io.jbackup.store.layout.RepositoryLayout;

/**
 * The key slots of an encrypted repository: every file {@code keys/*.key} is one {@link KeyFile}, the same master key
 * sealed under a different passphrase. Any slot opens the repository; a slot that cannot be read is skipped (and
 * named if no other slot opens), so one damaged file does not lock the others out. Slots are written atomically
 * (temporary file created 0600, fsync, rename, directory fsync) and never rewrite anything else.
 */
final class KeySlots {
    private static final Logger LOG = LoggerFactory.getLogger(KeySlots.class);
    private static final int ID_BYTES = 4;

    /** The master key and the slot whose passphrase opened it. */
    record Unlocked(KeyFile slot, byte[] masterKey) {
    }

    private KeySlots() {
    }

    /** The slot files, by name; empty if there is no {@code keys/} directory. */
    static List<Path> files(Path dir) throws IOException {
        Path keys = dir.resolve(KeyFile.DIR);
        List<Path> out = new ArrayList<>();
        if (!Files.isDirectory(keys)) {
            return out;
        }
        try (DirectoryStream<Path> s = Files.newDirectoryStream(keys, "*" + KeyFile.SUFFIX)) {
            for (Path p : s) {
                if (Files.isRegularFile(p)) {
                    out.add(p);
                }
            }
        }
        out.sort(null);
        return out;
    }

    /** The ids of the slots in {@code storage} ({@code keys/ID.key}), sorted. */
    static List<String> ids(Storage storage) throws IOException {
        List<String> out = new ArrayList<>();
        if (!storage.remote()) {
            for (Path f : files(storage.hostDir())) {
                out.add(KeyFile.idOf(f));
            }
            return out;
        }
        for (io.jbackup.objectstore.ObjectInfo o : storage.objects().listAll(RepositoryLayout.KEYS)) {
            RepositoryLayout.parse(o.key()).filter(e -> e.kind() == RepositoryLayout.Kind.KEY_SLOT)
                .ifPresent(e -> out.add(e.name()));
        }
        out.sort(null);
        return out;
    }

    /** {@link #unlock(Path, String, char[])} of the slots in {@code storage} (local or remote). */
    static Unlocked unlock(Storage storage, String repositoryId, char[] passphrase) throws IOException {
        if (!storage.remote()) {
            return unlock(storage.hostDir(), repositoryId, passphrase);
        }
        List<KeyFile> slots = new ArrayList<>();
        List<String> damaged = new ArrayList<>();
        for (String id : ids(storage)) {
            String key = RepositoryLayout.keySlot(id);
            try {
                byte[] b = storage.read(key).orElseThrow(() -> new RepositoryException(storage.describe(key)
                    + " vanished while it was read"));
                slots.add(KeyFile.parse(b, storage.describe(key), id, repositoryId));
            } catch (RepositoryException e) {
                LOG.warn("skipping key slot {}: {}", storage.describe(key), e.getMessage());
                damaged.add(e.getMessage());
            }
        }
        return unlock(storage.location(), slots, damaged, passphrase);
    }

    /** Writes slot {@code k} to {@code storage}: a file of mode 0600 when local ({@link #write}), else an object. */
    static void write(Storage storage, KeyFile k) throws IOException {
        if (storage.remote()) {
            storage.write(RepositoryLayout.keySlot(k.id()), k.toJson());
        } else {
            write(storage.hostDir(), k);
        }
    }

    /** The bytes of slot {@code id} in {@code storage}, as stored. */
    static byte[] bytes(Storage storage, String id) throws IOException {
        String key = RepositoryLayout.keySlot(id);
        return storage.read(key).orElseThrow(() -> new RepositoryException("key file " + storage.describe(key)
            + " is missing (removed meanwhile?); see the keys with jbackup key list, or restore it from your exported "
            + "copy (jbackup key export)"));
    }

    /** Reads and validates slot {@code id} of repository {@code repositoryId} in {@code storage}. */
    static KeyFile read(Storage storage, String id, String repositoryId) throws IOException {
        if (!storage.remote()) {
            return KeyFile.read(KeyFile.path(storage.hostDir(), id), repositoryId);
        }
        return KeyFile.parse(bytes(storage, id), storage.describe(RepositoryLayout.keySlot(id)), id, repositoryId);
    }

    /**
     * Seals {@code masterKey} under {@code passphrase} in a new slot of {@code storage} with a random id and writes
     * it; in an object store with a conditional create, so that a slot another host wrote under the same id at the
     * same moment is never replaced (another id is drawn). Returns the slot.
     */
    static KeyFile add(Storage storage, String repositoryId, byte[] masterKey, char[] passphrase, String label,
                       SecureRandom random) throws IOException {
        if (!storage.remote()) {
            return add(storage.hostDir(), repositoryId, masterKey, passphrase, label, random);
        }
        while (true) {
            KeyFile k = KeyFile.seal(randomId(random), masterKey, passphrase, repositoryId, label,
                Owner.current().host(), random);
            if (storage.objects().putIfAbsent(RepositoryLayout.keySlot(k.id()), k.toJson())) {
                return k;
            }
            LOG.debug("key slot id {} is taken; drawing another", k.id());
        }
    }

    /** Deletes slot {@code id} of {@code storage} (durably: the directory is fsynced when local). */
    static void delete(Storage storage, String id) throws IOException {
        if (storage.remote()) {
            storage.objects().delete(RepositoryLayout.keySlot(id));
        } else {
            delete(KeyFile.path(storage.hostDir(), id));
        }
    }

    private static String randomId(SecureRandom random) {
        byte[] b = new byte[ID_BYTES];
        random.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    /**
     * The passphrase from {@code supplier}, or a {@link PassphraseRequiredException} naming the ways to give it.
     */
    static char[] passphrase(Path dir, Supplier<char[]> supplier) throws PassphraseRequiredException {
        return passphrase(dir.toString(), supplier);
    }

    /** {@link #passphrase(Path, Supplier)} for the repository at {@code dir} ({@code s3://...} too). */
    static char[] passphrase(String dir, Supplier<char[]> supplier) throws PassphraseRequiredException {
        char[] pass = supplier == null ? null : supplier.get();
        if (pass == null || pass.length == 0) {
            throw new PassphraseRequiredException("repository " + dir + " is encrypted: give its passphrase with "
                + "JBACKUP_PASSPHRASE, --passphrase-file FILE, or type it on a terminal");
        }
        return pass;
    }

    /**
     * Finds the slot {@code passphrase} opens. Unreadable slots are skipped with a warning; if none opens, the
     * error is a {@link WrongPassphraseException} that also names the unreadable ones (the passphrase may be theirs).
     */
    static Unlocked unlock(Path dir, String repositoryId, char[] passphrase) throws IOException {
        List<Path> files = files(dir);
        List<String> damaged = new ArrayList<>();
        List<KeyFile> slots = new ArrayList<>();
        for (Path f : files) {
            try {
                slots.add(KeyFile.read(f, repositoryId));
            } catch (RepositoryException e) {
                LOG.warn("skipping key slot {}: {}", f, e.getMessage());
                damaged.add(e.getMessage());
            }
        }
        if (files.isEmpty()) {
            throw new RepositoryException("repository " + dir + " is encrypted but " + dir.resolve(KeyFile.DIR)
                + " holds no key file (*.key); put back your copy from jbackup key export");
        }
        return unlock(dir.toString(), slots, damaged, passphrase);
    }

    private static Unlocked unlock(String dir, List<KeyFile> slots, List<String> damaged, char[] passphrase)
        throws IOException {
        if (slots.isEmpty() && damaged.isEmpty()) {
            throw new RepositoryException("repository " + dir + " is encrypted but " + dir + "/" + KeyFile.DIR
                + " holds no key file (*.key); put back your copy from jbackup key export");
        }
        List<String> tried = new ArrayList<>();
        for (KeyFile k : slots) {
            tried.add(KeyFile.DIR + "/" + k.id() + KeyFile.SUFFIX);
            Optional<byte[]> master = k.unseal(passphrase);
            if (master.isPresent()) {
                LOG.debug("repository {} opened with key slot {}", dir, k.id());
                return new Unlocked(k, master.get());
            }
        }
        if (tried.isEmpty()) {
            throw new RepositoryException("no key slot of repository " + dir + " can be read: "
                + String.join("; ", damaged));
        }
        throw new WrongPassphraseException("wrong passphrase for repository " + dir + ": it opens none of its "
            + "keys (" + String.join(", ", tried) + ")"
            + (damaged.isEmpty() ? "" : " (unreadable, and perhaps the one it would open: "
            + String.join("; ", damaged) + ")")
            + "; check JBACKUP_PASSPHRASE or --passphrase-file. Nothing was changed");
    }

    /**
     * Seals {@code masterKey} under {@code passphrase} in a new slot with a random id and writes it; returns it.
     */
    static KeyFile add(Path dir, String repositoryId, byte[] masterKey, char[] passphrase, String label,
                       SecureRandom random) throws IOException {
        String id;
        do {
            id = randomId(random);
        } while (Files.exists(KeyFile.path(dir, id)));
        KeyFile k = KeyFile.seal(id, masterKey, passphrase, repositoryId, label, Owner.current().host(), random);
        write(dir, k);
        return k;
    }

    /** Writes slot {@code k} atomically to {@code keys/ID.key}, mode 0600 from its first byte on. */
    static void write(Path dir, KeyFile k) throws IOException {
        Path keyDir = dir.resolve(KeyFile.DIR);
        if (!Files.isDirectory(keyDir)) {
            Files.createDirectories(keyDir);
            FilePermissions.restrict(keyDir, FilePermissions.OWNER_DIR);
        }
        Path file = KeyFile.path(dir, k.id());
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp"); // the name FileSync.writeAtomically writes
        Files.deleteIfExists(tmp);
        Files.createFile(tmp);
        FilePermissions.restrict(tmp, FilePermissions.OWNER_FILE);
        FileSync.writeAtomically(file, k.toJson());
    }

    /** Deletes slot file {@code file} durably. */
    static void delete(Path file) throws IOException {
        Files.delete(file);
        FileSync.syncDir(file.getParent());
    }
}
