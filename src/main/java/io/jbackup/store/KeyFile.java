package io.jbackup.store;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.model.RepositoryException;
import org.bouncycastle.crypto.PBEParametersGenerator;
import org.bouncycastle.crypto.generators.SCrypt;

import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.time.Instant;
import java.util.Arrays;
import java.util.Base64;
import java.util.Optional;

/**
 * One key slot of an encrypted repository: the master key sealed under one passphrase, in {@code keys/ID.key}
 * ({@link KeySlots}; the first slot, written by {@code init}, is {@code keys/repository.key}, id {@code repository}).
 * JSON:
 *
 * <pre>{@code
 * {
 *   "format": "jbackup-key",
 *   "version": 1,
 *   "repository": "<repository id>",
 *   "created": "2026-11-24T20:15:30Z",
 *   "kdf": { "algorithm": "scrypt", "N": 32768, "r": 8, "p": 1, "salt": "<16 bytes, base64>" },
 *   "cipher": "aes-256-gcm",
 *   "nonce": "<12 bytes, base64>",
 *   "sealedKey": "<48 bytes, base64: the 32-byte master key encrypted, then the 16-byte GCM tag>",
 *   "label": "offsite admin",       // optional, informational
 *   "host": "backup1"               // optional: where the slot was added
 * }
 * }</pre>
 *
 * The slot's id is its file name without {@code .key}. {@code created}, {@code label} and {@code host} are
 * informational and not authenticated.
 *
 * The key-encryption key is scrypt(passphrase as UTF-8, salt, N, r, p, 32 bytes). The GCM additional data is
 * {@code "jbackup-key v1 " + repository id}, so the tag authenticates the whole sealed key and binds it to its
 * repository: a wrong passphrase (or a key file from another repository) fails the tag check and nothing else
 * happens. The scrypt parameters are read back bounded (N ≤ 2^20, r ≤ 32, p ≤ 16), so a doctored key file cannot
 * make opening the repository take unbounded memory or time.
 */
final class KeyFile {
    static final String DIR = "keys";
    static final String FILE_NAME = "repository.key";
    static final String SUFFIX = ".key";
    static final String FORMAT = "jbackup-key";
    static final int LOG2_N = 15;
    static final int R = 8;
    static final int P = 1;
    private static final int MAX_LOG2_N = 20;
    private static final int MAX_R = 32;
    private static final int MAX_P = 16;
    private static final int MAX_FILE_SIZE = 16 * 1024;

    private final String id;
    private final String repositoryId;
    private final int n;
    private final int r;
    private final int p;
    private final byte[] salt;
    private final byte[] nonce;
    private final byte[] sealedKey;
    private final Instant created;
    private final String label;
    private final String host;

    private KeyFile(String id, String repositoryId, int n, int r, int p, byte[] salt, byte[] nonce, byte[] sealedKey,
                    Instant created, String label, String host) {
        this.id = id;
        this.label = label;
        this.host = host;
        this.repositoryId = repositoryId;
        this.n = n;
        this.r = r;
        this.p = p;
        this.salt = salt;
        this.nonce = nonce;
        this.sealedKey = sealedKey;
        this.created = created;
    }

    /** The first slot, written by {@code init}. */
    static Path path(Path repoDir) {
        return repoDir.resolve(DIR).resolve(FILE_NAME);
    }

    /** The file of slot {@code id}. */
    static Path path(Path repoDir, String id) {
        return repoDir.resolve(DIR).resolve(id + SUFFIX);
    }

    /** The slot id of a key file: its name without {@code .key}. */
    static String idOf(Path file) {
        String n = file.getFileName().toString();
        return n.endsWith(SUFFIX) ? n.substring(0, n.length() - SUFFIX.length()) : n;
    }

    String id() {
        return id;
    }

    Instant created() {
        return created;
    }

    /** May be null. */
    String label() {
        return label;
    }

    /** May be null. */
    String host() {
        return host;
    }

    /** Seals {@code masterKey} under {@code passphrase} as slot {@code id}; {@code label}/{@code host} may be null. */
    static KeyFile seal(String id, byte[] masterKey, char[] passphrase, String repositoryId, String label, String host,
                        SecureRandom random) {
        byte[] salt = new byte[16];
        byte[] nonce = new byte[12];
        random.nextBytes(salt);
        random.nextBytes(nonce);
        int n = 1 << LOG2_N;
        byte[] kek = kek(passphrase, salt, n, R, P);
        try {
            Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
            c.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(kek, "AES"), new GCMParameterSpec(128, nonce));
            c.updateAAD(aad(repositoryId));
            byte[] sealed = c.doFinal(masterKey);
            return new KeyFile(id, repositoryId, n, R, P, salt, nonce, sealed,
                Instant.now().truncatedTo(java.time.temporal.ChronoUnit.SECONDS), label, host);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES-GCM is not available in this JVM", e);
        } finally {
            Arrays.fill(kek, (byte) 0);
        }
    }

    /** Opens the sealed key: the master key, or empty if the passphrase is not this slot's (the tag fails). */
    Optional<byte[]> unseal(char[] passphrase) {
        byte[] kek = kek(passphrase, salt, n, r, p);
        try {
            Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
            c.init(Cipher.DECRYPT_MODE, new SecretKeySpec(kek, "AES"), new GCMParameterSpec(128, nonce));
            c.updateAAD(aad(repositoryId));
            return Optional.of(c.doFinal(sealedKey));
        } catch (AEADBadTagException e) {
            return Optional.empty();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES-GCM is not available in this JVM", e);
        } finally {
            Arrays.fill(kek, (byte) 0);
        }
    }

    private static byte[] kek(char[] passphrase, byte[] salt, int n, int r, int p) {
        byte[] pw = PBEParametersGenerator.PKCS5PasswordToUTF8Bytes(passphrase);
        try {
            return SCrypt.generate(pw, salt, n, r, p, RepositoryKeys.KEY_LENGTH);
        } finally {
            Arrays.fill(pw, (byte) 0);
        }
    }

    private static byte[] aad(String repositoryId) {
        return ("jbackup-key v1 " + repositoryId).getBytes(StandardCharsets.UTF_8);
    }

    byte[] toJson() {
        Base64.Encoder b64 = Base64.getEncoder();
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("format", FORMAT);
        o.put("version", 1);
        o.put("repository", repositoryId);
        o.put("created", created.toString());
        ObjectNode kdf = o.putObject("kdf");
        kdf.put("algorithm", "scrypt");
        kdf.put("N", n);
        kdf.put("r", r);
        kdf.put("p", p);
        kdf.put("salt", b64.encodeToString(salt));
        o.put("cipher", "aes-256-gcm");
        o.put("nonce", b64.encodeToString(nonce));
        o.put("sealedKey", b64.encodeToString(sealedKey));
        if (label != null) {
            o.put("label", label);
        }
        if (host != null) {
            o.put("host", host);
        }
        return Json.bytes(o);
    }

    /** Reads and validates a key slot file of repository {@code expectedRepositoryId}. */
    static KeyFile read(Path file, String expectedRepositoryId) throws IOException {
        byte[] bytes;
        try {
            if (Files.size(file) > MAX_FILE_SIZE) {
                throw new RepositoryException("key file " + file + " is " + Files.size(file) + " bytes (expected: <= "
                    + MAX_FILE_SIZE + "); restore it from your exported copy (jbackup key export)");
            }
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new RepositoryException("key file " + file + " is missing; restore it from your exported copy "
                + "(jbackup key export)");
        }
        return parse(bytes, file.toString(), idOf(file), expectedRepositoryId);
    }

    /** Validates the bytes of key slot {@code id}, named {@code file} in messages. */
    static KeyFile parse(byte[] bytes, String file, String id, String expectedRepositoryId) throws IOException {
        if (bytes.length > MAX_FILE_SIZE) {
            throw new RepositoryException("key file " + file + " is " + bytes.length + " bytes (expected: <= "
                + MAX_FILE_SIZE + "); restore it from your exported copy (jbackup key export)");
        }
        try {
            JsonNode o = Json.parse(bytes, file);
            if (!FORMAT.equals(o.path("format").asText()) || o.path("version").asInt() != 1) {
                throw new IllegalArgumentException("not a version 1 jbackup key file");
            }
            JsonNode kdf = o.path("kdf");
            if (!"scrypt".equals(kdf.path("algorithm").asText()) || !"aes-256-gcm".equals(o.path("cipher").asText())) {
                throw new IllegalArgumentException("unsupported kdf or cipher");
            }
            int n = kdf.path("N").asInt();
            int r = kdf.path("r").asInt();
            int p = kdf.path("p").asInt();
            if (n < 2 || Integer.bitCount(n) != 1 || n > (1 << MAX_LOG2_N) || r < 1 || r > MAX_R || p < 1 || p > MAX_P) {
                throw new IllegalArgumentException("scrypt parameters N=" + n + " r=" + r + " p=" + p + " out of range "
                    + "(N a power of two <= 2^" + MAX_LOG2_N + ", r <= " + MAX_R + ", p <= " + MAX_P + ")");
            }
            Base64.Decoder d = Base64.getDecoder();
            byte[] salt = d.decode(kdf.path("salt").asText());
            byte[] nonce = d.decode(o.path("nonce").asText());
            byte[] sealed = d.decode(o.path("sealedKey").asText());
            if (salt.length < 16 || salt.length > 64 || nonce.length != 12 || sealed.length != RepositoryKeys.KEY_LENGTH + 16) {
                throw new IllegalArgumentException("salt, nonce or sealed key has the wrong length");
            }
            String repo = o.path("repository").asText();
            if (!repo.equals(expectedRepositoryId)) {
                throw new IllegalArgumentException("it belongs to repository " + repo + ", not " + expectedRepositoryId);
            }
            return new KeyFile(id, repo, n, r, p, salt, nonce, sealed, Instant.parse(o.path("created").asText()),
                text(o, "label"), text(o, "host"));
        } catch (IllegalArgumentException | java.time.DateTimeException | RepositoryException e) {
            throw new RepositoryException("key file " + file + " is invalid: " + e.getMessage()
                + "; restore it from your exported copy (jbackup key export)", e);
        }
    }

    private static String text(JsonNode o, String field) {
        JsonNode v = o.get(field);
        return v == null || v.isNull() ? null : v.asText();
    }
}
