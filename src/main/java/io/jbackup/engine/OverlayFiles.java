package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.RepositoryException;
import io.jbackup.nbd.server.OverlayExport;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;

/**
 * The files of one writable overlay of a backup ({@code jbackup serve --writable}), and the lock that keeps two
 * processes from using them at once.
 *
 * <p>An overlay of backup {@code ID} of disk {@code DISK} (of VM {@code VM}) lives in the overlay directory as:
 * <pre>
 *   [VM_]DISK@ID.overlay        the changed blocks at their disk offsets (sparse)       - {@link OverlayExport}
 *   [VM_]DISK@ID.overlay.map    which blocks changed (written on FLUSH and close)      - {@link OverlayExport}
 *   [VM_]DISK@ID.overlay.json   what the overlay belongs to (this class), also the lock file
 * </pre>
 * The JSON sidecar holds {@code {"format": "jbackup-overlay", "version": 1, "repository": REPO-ID,
 * "backup": ID, "vm": VM|null, "disk": DISK, "imageSize": N, "chunkSize": N, "created": ISO-8601}}. Characters of
 * the disk label outside {@code [A-Za-z0-9._-]} become {@code _} in the file name; the backup id keeps names
 * unique. Whoever uses an overlay holds an exclusive {@link FileLock} on the sidecar: {@code serve} from the first
 * open of the export until shutdown, {@code commit-overlay} while it reads.
 */
public final class OverlayFiles implements AutoCloseable {
    /** Suffix of the overlay data file. */
    public static final String SUFFIX = ".overlay";
    static final String FORMAT = "jbackup-overlay";
    private static final int MAX_META = 64 * 1024;
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What an overlay belongs to. */
    public record Meta(String repositoryId, String backupId, String vm, String disk, long imageSize, int chunkSize,
                       Instant created) {
    }

    private final Path data;
    private final Meta meta;
    private final FileChannel lockChannel;
    private final FileLock lock;

    private OverlayFiles(Path data, Meta meta, FileChannel lockChannel, FileLock lock) {
        this.data = data;
        this.meta = meta;
        this.lockChannel = lockChannel;
        this.lock = lock;
    }

    /** The default overlay directory of a repository: {@code REPO/overlays}. */
    public static Path defaultDir(Path repoDir) {
        return repoDir.resolve("overlays");
    }

    /** The overlay data file of a backup in {@code dir}. */
    public static Path fileFor(Path dir, BackupInfo b) {
        return dir.resolve(safe(b.diskLabel()) + "@" + b.id() + SUFFIX);
    }

    static String safe(String s) {
        StringBuilder out = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            out.append((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
                || c == '-' ? c : '_');
        }
        return out.toString();
    }

    /** The JSON sidecar of an overlay data file. */
    public static Path metaFileOf(Path data) {
        return data.resolveSibling(data.getFileName() + ".json");
    }

    public Path data() {
        return data;
    }

    public Path map() {
        return OverlayExport.mapFileOf(data);
    }

    public Path metaFile() {
        return metaFileOf(data);
    }

    public Meta meta() {
        return meta;
    }

    /**
     * Locks the overlay of backup {@code b} in {@code dir} for use, creating its sidecar if it does not exist (the
     * data and map files are created by {@link OverlayExport#open}). An existing sidecar must belong to the same
     * repository and backup.
     */
    public static OverlayFiles openOrCreate(Path dir, String repositoryId, BackupInfo b) throws IOException {
        Files.createDirectories(dir);
        Path data = fileFor(dir, b);
        Path metaFile = metaFileOf(data);
        FileChannel ch = FileChannel.open(metaFile, StandardOpenOption.CREATE, StandardOpenOption.READ,
            StandardOpenOption.WRITE);
        try {
            FileLock lock = lock(ch, data);
            Meta m;
            if (ch.size() == 0) {
                m = new Meta(repositoryId, b.id(), b.vm(), b.disk(), b.imageSize(), b.chunkSize(), Instant.now());
                write(ch, m);
            } else {
                m = read(ch, metaFile);
                if (!m.repositoryId().equals(repositoryId) || !m.backupId().equals(b.id())) {
                    throw new RepositoryException("overlay " + data + " belongs to backup " + m.backupId() + " of repository "
                        + m.repositoryId() + ", not to backup " + b.id() + " of repository " + repositoryId
                        + "; move it away or choose another --overlay-dir");
                }
            }
            return new OverlayFiles(data, m, ch, lock);
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    /** Locks an existing overlay, given its data file (or its {@code .json} or {@code .map} file). */
    public static OverlayFiles openExisting(Path file) throws IOException {
        Path data = file;
        String n = file.getFileName().toString();
        if (n.endsWith(SUFFIX + ".json")) {
            data = file.resolveSibling(n.substring(0, n.length() - 5));
        } else if (n.endsWith(SUFFIX + ".map")) {
            data = file.resolveSibling(n.substring(0, n.length() - 4));
        }
        Path metaFile = metaFileOf(data);
        FileChannel ch;
        try {
            ch = FileChannel.open(metaFile, StandardOpenOption.READ, StandardOpenOption.WRITE);
        } catch (NoSuchFileException e) {
            throw new NotFoundException("no overlay at " + data + " (its description " + metaFile
                + " is missing); overlays are made by jbackup serve --writable");
        }
        try {
            FileLock lock = lock(ch, data);
            Meta m = read(ch, metaFile);
            if (!Files.exists(data) || !Files.exists(OverlayExport.mapFileOf(data))) {
                throw new UsageException("overlay " + data + " has no data or map file: nothing was ever "
                    + "written through it, or it was discarded");
            }
            return new OverlayFiles(data, m, ch, lock);
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    private static FileLock lock(FileChannel ch, Path data) throws IOException {
        FileLock l;
        try {
            l = ch.tryLock();
        } catch (OverlappingFileLockException e) {
            l = null;
        }
        if (l == null) {
            throw new OverlayBusyException("overlay " + data + " is in use by another jbackup (serve or "
                + "commit-overlay); stop that one first (nothing was changed)");
        }
        return l;
    }

    private static void write(FileChannel ch, Meta m) throws IOException {
        ObjectNode o = JSON.createObjectNode();
        o.put("format", FORMAT).put("version", 1).put("repository", m.repositoryId()).put("backup", m.backupId())
            .put("vm", m.vm()).put("disk", m.disk()).put("imageSize", m.imageSize()).put("chunkSize", m.chunkSize())
            .put("created", m.created().toString());
        ByteBuffer b = ByteBuffer.wrap(JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(o));
        ch.truncate(0);
        long pos = 0;
        while (b.hasRemaining()) {
            pos += ch.write(b, pos);
        }
        ch.force(true);
    }

    private static Meta read(FileChannel ch, Path file) throws IOException {
        long size = ch.size();
        if (size > MAX_META) {
            throw new RepositoryException("overlay description " + file + " has " + size + " bytes (at most " + MAX_META
                + "); it is not an overlay description");
        }
        ByteBuffer b = ByteBuffer.allocate((int) size);
        while (b.hasRemaining() && ch.read(b, b.position()) >= 0) {
            // read all
        }
        try {
            JsonNode o = JSON.readTree(b.array());
            if (o == null || !FORMAT.equals(o.path("format").asText()) || o.path("version").asInt() != 1) {
                throw new RepositoryException("overlay description " + file + " is not a version 1 " + FORMAT + " file");
            }
            return new Meta(o.path("repository").asText(), o.path("backup").asText(),
                o.path("vm").isNull() || o.path("vm").isMissingNode() ? null : o.path("vm").asText(),
                o.path("disk").asText(), o.path("imageSize").asLong(), o.path("chunkSize").asInt(),
                Instant.parse(o.path("created").asText()));
        } catch (com.fasterxml.jackson.core.JacksonException | java.time.format.DateTimeParseException e) {
            throw new RepositoryException("overlay description " + file + " is damaged: " + e.getMessage(), e);
        }
    }

    /** Deletes the data, map and description files (call while holding the lock, instead of {@link #close}). */
    public void delete() throws IOException {
        Files.deleteIfExists(data);
        Files.deleteIfExists(map());
        Files.deleteIfExists(map().resolveSibling(map().getFileName() + ".tmp"));
        Files.deleteIfExists(metaFile());
        close();
    }

    /** Releases the lock. */
    @Override
    public void close() throws IOException {
        if (lockChannel.isOpen()) {
            lock.release();
            lockChannel.close();
        }
    }
}
