package io.jbackup.store;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.model.RepositoryException;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Instant;
import java.time.format.DateTimeParseException;

/**
 * The repository's {@code config.json}, written once by {@code jbackup init} and never changed:
 *
 * <pre>{@code
 * {
 *   "format": "jbackup-repository",
 *   "formatVersion": 1,
 *   "id": "9b0c3c1e-3f7a-4bb2-a0a5-0d7f0d6c4e11",
 *   "created": "2026-11-24T20:15:30Z",
 *   "chunkSize": 1048576,
 *   "encryption": "none",            // or "aes-256-gcm"
 *   "compressionLevel": 1,           // zstd level; 0 = stored uncompressed
 *   "packSize": 33554432
 * }
 * }</pre>
 *
 * A reader refuses a {@code formatVersion} newer than {@link #FORMAT_VERSION} (the repository was written by a newer
 * jbackup) rather than guess.
 *
 * <p><b>Integrity in an encrypted repository.</b> The file also holds {@code "mac"}: 64 hex digits, HMAC-SHA256 under
 * the metadata subkey over the canonical form of the other fields ({@link #canonical}: the JSON above without
 * {@code mac}, fields in this order, no whitespace). {@link Repository#open} checks it right after unlocking the key,
 * so nobody without the key can change the chunk size, compression or pack size undetected; an encrypted config
 * without a valid MAC is refused. The key cannot check a config that says {@code "encryption": "none"}, so a plain
 * config is refused while a key slot {@code keys/*.key} exists or an index file is keyed: a config edited to disable
 * encryption (a downgrade that would write new backups in plaintext) does not open.
 */
public record RepositoryConfig(String id, int formatVersion, int defaultChunkSize, Encryption encryption,
                               int compressionLevel, long packSize, Instant created, String mac) {
    public static final String FORMAT = "jbackup-repository";
    public static final int FORMAT_VERSION = 1;
    static final String FILE_NAME = "config.json";
    private static final int MAX_FILE_SIZE = 64 * 1024;

    /** The options this repository was created with. */
    public RepositoryOptions options() {
        return new RepositoryOptions(defaultChunkSize, encryption, compressionLevel, packSize);
    }

    /** The bytes the MAC covers: every field but {@code mac}, in a fixed order. */
    byte[] canonical() {
        return Json.bytes(node());
    }

    /** The file's content: the canonical fields, plus {@code mac} when set. */
    byte[] toJson() {
        ObjectNode n = node();
        if (mac != null) {
            n.put("mac", mac);
        }
        return Json.bytes(n);
    }

    /** This config with its MAC under {@code keys} (an encrypted repository). */
    RepositoryConfig withMac(RepositoryKeys keys) {
        return new RepositoryConfig(id, formatVersion, defaultChunkSize, encryption, compressionLevel, packSize,
            created, computeMac(keys));
    }

    private String computeMac(RepositoryKeys keys) {
        return java.util.HexFormat.of().formatHex(MetaMac.create(keys).update(canonical()).finish());
    }

    /** Checks the MAC of an encrypted repository's config against {@code keys}, the key just unlocked. */
    void checkMac(RepositoryKeys keys, Path dir) throws RepositoryException {
        checkMac(keys, dir.resolve(FILE_NAME).toString());
    }

    /** {@link #checkMac(RepositoryKeys, Path)} of the config named {@code file} in messages. */
    void checkMac(RepositoryKeys keys, String file) throws RepositoryException {
        if (mac == null) {
            throw new RepositoryException(file + " has no \"mac\" field, but the repository is encrypted: the file was "
                + "replaced or edited (or written by an older jbackup); restore it from a copy");
        }
        if (!java.security.MessageDigest.isEqual(mac.getBytes(java.nio.charset.StandardCharsets.US_ASCII),
            computeMac(keys).getBytes(java.nio.charset.StandardCharsets.US_ASCII))) {
            throw new RepositoryException(file + " fails its MAC: it was altered by someone without the repository key "
                + "(or belongs to another repository); restore it from a copy. Nothing was changed");
        }
    }

    private ObjectNode node() {
        ObjectNode n = Json.MAPPER.createObjectNode();
        n.put("format", FORMAT);
        n.put("formatVersion", formatVersion);
        n.put("id", id);
        n.put("created", created.toString());
        n.put("chunkSize", defaultChunkSize);
        n.put("encryption", encryption.text());
        n.put("compressionLevel", compressionLevel);
        n.put("packSize", packSize);
        return n;
    }

    /** Reads and validates {@code dir/config.json}. */
    static RepositoryConfig read(Path dir) throws IOException {
        Path file = dir.resolve(FILE_NAME);
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new NotARepositoryException(dir + " is not a directory, so it is not a jbackup repository; give the "
                + "repository directory with --repo DIR (create one with: jbackup init --repo NEWDIR)");
        }
        byte[] bytes;
        try {
            if (Files.size(file) > MAX_FILE_SIZE) {
                throw new RepositoryException(file + " is " + Files.size(file) + " bytes (expected: <= " + MAX_FILE_SIZE
                    + "); it is not a jbackup repository config");
            }
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new NotARepositoryException("no jbackup repository at " + dir + " (" + file + " is missing); create "
                + "one with: jbackup init --repo " + dir);
        } catch (AccessDeniedException e) {
            throw new NotARepositoryException("cannot read " + file + ": permission denied; run jbackup as the user "
                + "that owns the repository (or root)", e);
        } catch (FileSystemException e) {
            throw new NotARepositoryException("cannot read the repository config " + file + ": " + e.getMessage(), e);
        }
        return parse(bytes, file.toString(), dir.toString());
    }

    /** Validates the bytes of the config {@code file} of repository {@code dir} (names for messages). */
    static RepositoryConfig parse(byte[] bytes, String file, String dir) throws IOException {
        if (bytes.length > MAX_FILE_SIZE) {
            throw new RepositoryException(file + " is " + bytes.length + " bytes (expected: <= " + MAX_FILE_SIZE
                + "); it is not a jbackup repository config");
        }
        JsonNode n = Json.parse(bytes, file);
        if (!FORMAT.equals(n.path("format").asText())) {
            throw new RepositoryException(file + " is not a jbackup repository config (format '"
                + n.path("format").asText() + "', expected '" + FORMAT + "')");
        }
        int version = n.path("formatVersion").asInt(-1);
        if (version < 1 || version > FORMAT_VERSION) {
            throw new RepositoryException("repository " + dir + " has format version " + version + "; this jbackup "
                + "reads versions 1.." + FORMAT_VERSION + " (upgrade jbackup)");
        }
        try {
            RepositoryOptions o = new RepositoryOptions(n.path("chunkSize").asInt(),
                Encryption.parse(n.path("encryption").asText()), n.path("compressionLevel").asInt(-1),
                n.path("packSize").asLong());
            String id = n.path("id").asText();
            if (id.isEmpty()) {
                throw new IllegalArgumentException("id is missing");
            }
            String mac = n.hasNonNull("mac") ? n.get("mac").asText() : null;
            if (mac != null && !mac.matches("[0-9a-f]{64}")) {
                throw new IllegalArgumentException("mac is not 64 hex digits");
            }
            return new RepositoryConfig(id, version, o.chunkSize(), o.encryption(), o.compressionLevel(),
                o.packSize(), Instant.parse(n.path("created").asText()), mac);
        } catch (IllegalArgumentException | DateTimeParseException e) {
            throw new RepositoryException(file + " is invalid: " + e.getMessage(), e);
        }
    }
}
