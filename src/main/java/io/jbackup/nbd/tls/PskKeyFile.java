package io.jbackup.nbd.tls;

import io.jbackup.error.UsageException;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A qemu / GnuTLS {@code keys.psk} file: the pre-shared keys for TLS-PSK.
 *
 * <p>Format (as written by GnuTLS {@code psktool -u NAME -p keys.psk} and read by qemu's
 * {@code tls-creds-psk} object from {@code DIR/keys.psk}): UTF-8 text, one entry per line,
 * <pre>
 *   username:hexkey
 * </pre>
 * where {@code username} is the PSK identity (non-empty, no {@code ':'}; qemu's default is {@code qemu})
 * and {@code hexkey} is the key as an even number of hex digits (upper or lower case). Lines end in
 * {@code \n} (a trailing {@code \r} is tolerated); empty lines are skipped. There are no comments.
 * When an identity appears twice, the first entry wins (as in GnuTLS) and a warning is logged.
 *
 * <p>Limits, checked before anything is used: the file is at most {@value #MAX_FILE_BYTES} bytes and
 * {@value #MAX_LINES} lines, an identity at most {@value #MAX_IDENTITY_BYTES} UTF-8 bytes, a key at most
 * {@value #MAX_KEY_BYTES} bytes. Any other line is rejected with the file name and line number.
 *
 * <p>Instances are immutable; {@link #key(String)} returns a copy of the key.
 */
public final class PskKeyFile {
    private static final Logger LOG = LoggerFactory.getLogger(PskKeyFile.class);

    /** Largest file accepted (1 MiB). */
    public static final int MAX_FILE_BYTES = 1 << 20;
    /** Most lines accepted. */
    public static final int MAX_LINES = 10_000;
    /** Longest identity accepted, in UTF-8 bytes (GnuTLS allows 128). */
    public static final int MAX_IDENTITY_BYTES = 255;
    /** Longest key accepted, in bytes. */
    public static final int MAX_KEY_BYTES = 512;

    private final Path file;
    private final Map<String, byte[]> keys;

    private PskKeyFile(Path file, Map<String, byte[]> keys) {
        this.file = file;
        this.keys = keys;
    }

    /**
     * Reads and validates a {@code keys.psk} file.
     *
     * @throws NbdTlsException if the file is missing, too large, not UTF-8, or has a malformed line
     */
    public static PskKeyFile load(Path file) throws NbdTlsException {
        byte[] raw;
        try (InputStream in = Files.newInputStream(file)) {
            raw = in.readNBytes(MAX_FILE_BYTES + 1);
        } catch (NoSuchFileException e) {
            throw new NbdTlsException("PSK key file " + file + " does not exist; create it with lines of "
                + "username:hexkey (e.g. psktool -u qemu -p " + file + ") or fix --tls-psk-file", e);
        } catch (IOException e) {
            throw new NbdTlsException("cannot read PSK key file " + file + ": " + e, e);
        }
        if (raw.length > MAX_FILE_BYTES) {
            throw new NbdTlsException("PSK key file " + file + " is larger than " + MAX_FILE_BYTES
                + " bytes; a keys.psk file holds one short username:hexkey line per identity");
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(raw)).toString();
        } catch (CharacterCodingException e) {
            throw new NbdTlsException("PSK key file " + file + " is not UTF-8 text", e);
        }
        return parse(file, text);
    }

    static PskKeyFile parse(Path file, String text) throws NbdTlsException {
        Map<String, byte[]> keys = new LinkedHashMap<>();
        int lineNo = 0;
        int start = 0;
        while (start < text.length()) {
            int end = text.indexOf('\n', start);
            if (end < 0) {
                end = text.length();
            }
            lineNo++;
            if (lineNo > MAX_LINES) {
                throw new NbdTlsException("PSK key file " + file + " has more than " + MAX_LINES + " lines");
            }
            String line = text.substring(start, end);
            start = end + 1;
            if (line.endsWith("\r")) {
                line = line.substring(0, line.length() - 1);
            }
            if (line.isEmpty()) {
                continue;
            }
            int colon = line.indexOf(':');
            if (colon < 0) {
                throw malformed(file, lineNo, "no ':' between username and key");
            }
            String user = line.substring(0, colon);
            String hex = line.substring(colon + 1);
            if (user.isEmpty()) {
                throw malformed(file, lineNo, "empty username");
            }
            if (user.getBytes(StandardCharsets.UTF_8).length > MAX_IDENTITY_BYTES) {
                throw malformed(file, lineNo, "username longer than " + MAX_IDENTITY_BYTES + " bytes");
            }
            if (hex.isEmpty()) {
                throw malformed(file, lineNo, "empty key for '" + user + "'");
            }
            if (hex.length() > 2 * MAX_KEY_BYTES) {
                throw malformed(file, lineNo, "key for '" + user + "' is longer than " + MAX_KEY_BYTES + " bytes");
            }
            if (hex.length() % 2 != 0) {
                throw malformed(file, lineNo, "key for '" + user + "' has an odd number of hex digits ("
                    + hex.length() + ")");
            }
            byte[] key;
            try {
                key = HexFormat.of().parseHex(hex);
            } catch (IllegalArgumentException e) {
                throw malformed(file, lineNo, "key for '" + user + "' is not hex (only 0-9, a-f allowed, "
                    + "no spaces)");
            }
            if (keys.putIfAbsent(user, key) != null) {
                LOG.warn("{}:{}: identity '{}' appears again; the first entry is used", file, lineNo, user);
            }
        }
        return new PskKeyFile(file, Collections.unmodifiableMap(keys));
    }

    private static NbdTlsException malformed(Path file, int line, String what) {
        return new NbdTlsException("PSK key file " + file + " line " + line + ": " + what
            + "; expected username:hexkey");
    }

    /**
     * Writes a {@code keys.psk} file holding the single entry {@code user:hex(key)}, replacing any
     * existing file. The file is created with permissions {@code 0600} (where the file system supports
     * POSIX permissions) and renamed into place, so readers never see a partial file.
     *
     * @throws IllegalArgumentException if the user is empty or contains ':' or a line break, or the key is
     *                                  empty or longer than {@value #MAX_KEY_BYTES} bytes
     */
    public static void write(Path file, String user, byte[] key) throws IOException {
        if (user == null || user.isEmpty() || user.indexOf(':') >= 0 || user.indexOf('\n') >= 0
            || user.indexOf('\r') >= 0) {
            throw new UsageException("PSK username must be non-empty without ':' or line breaks: '"
                + user + "'");
        }
        if (user.getBytes(StandardCharsets.UTF_8).length > MAX_IDENTITY_BYTES) {
            throw new UsageException("PSK username longer than " + MAX_IDENTITY_BYTES + " bytes");
        }
        if (key == null || key.length == 0 || key.length > MAX_KEY_BYTES) {
            throw new UsageException("PSK key must be 1.." + MAX_KEY_BYTES + " bytes");
        }
        Path abs = file.toAbsolutePath();
        Path dir = abs.getParent();
        byte[] content = (user + ":" + HexFormat.of().formatHex(key) + "\n").getBytes(StandardCharsets.UTF_8);
        Path tmp = dir.resolve("." + abs.getFileName() + ".tmp" + System.nanoTime());
        boolean posix = Files.getFileStore(dir).supportsFileAttributeView("posix");
        FileAttribute<?>[] attrs = posix
            ? new FileAttribute<?>[] {PosixFilePermissions.asFileAttribute(
                Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE))}
            : new FileAttribute<?>[0];
        try {
            Files.createFile(tmp, attrs);
            Files.write(tmp, content, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.SYNC);
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (FileAlreadyExistsException e) {
            throw new IOException("temporary file " + tmp + " already exists", e);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /** The file this was loaded from. */
    public Path file() {
        return file;
    }

    /** The key for {@code identity}, as a fresh copy, or empty if the file has no such identity. */
    public Optional<byte[]> key(String identity) {
        byte[] k = keys.get(identity);
        return k == null ? Optional.empty() : Optional.of(k.clone());
    }

    /** The identities in file order (the first entry of duplicates). */
    public Set<String> identities() {
        return keys.keySet();
    }

    @Override
    public String toString() {
        return "PskKeyFile[" + file + ", identities=" + keys.keySet() + "]";
    }
}
