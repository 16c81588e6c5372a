package io.jbackup.catalog;

import io.jbackup.model.AttachmentInfo;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;
import io.jbackup.model.RepositoryException;

import java.nio.file.Path;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Instant;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The {@link Catalog} as an SQLite database ({@code catalog.db}, WAL journal; schema: {@link Migrations}). It owns
 * the connections ({@link SqliteDb}) and hands each call to the section that does it: {@link SqliteChunkIndex},
 * {@link SqliteBackups}, {@link SqliteGc}, {@link SqliteRunLog}. Thread-safe.
 */
public final class SqliteCatalog implements Catalog {
    /** The catalog's file name in the repository directory. */
    public static final String FILE_NAME = "catalog.db";

    private final SqliteDb db;
    private final ChunkIndex chunks;
    private final BackupCatalog backups;
    private final GcCatalog gc;
    private final RunLog runs;

    private SqliteCatalog(SqliteDb db) {
        this.db = db;
        this.chunks = new SqliteChunkIndex(db);
        this.backups = new SqliteBackups(db);
        this.gc = new SqliteGc(db);
        this.runs = new SqliteRunLog(db);
    }

    /**
     * Opens (and with {@code create}, creates) the catalog at {@code file}, applying pending migrations. A catalog
     * that belongs to another repository, or has a newer schema than this jbackup knows, is refused; so is one whose
     * leftover write-ahead log does not fit it.
     */
    public static SqliteCatalog open(Path file, String repositoryId, boolean create) throws RepositoryException {
        return new SqliteCatalog(SqliteDb.open(file, repositoryId, create));
    }

    /**
     * Checks the structure of the whole file ({@code PRAGMA quick_check}, which reads every page): throws when it is
     * damaged. For a catalog that is a cache, so that damage is found at open, when a rebuild is cheap, rather than
     * in the middle of a backup.
     */
    public void checkStructure() throws RepositoryException {
        db.checkStructure();
    }

    @Override
    public Path file() {
        return db.file();
    }

    @Override
    public Totals totals() throws RepositoryException {
        return db.withWriter("sum up the repository", c -> {
            try (Statement s = c.createStatement()) {
                long[] p = new long[2];
                try (ResultSet rs = s.executeQuery("SELECT count(*), coalesce(sum(size), 0) FROM packs")) {
                    rs.next();
                    p[0] = rs.getLong(1);
                    p[1] = rs.getLong(2);
                }
                long[] k = new long[3];
                try (ResultSet rs = s.executeQuery(
                    "SELECT count(*), coalesce(sum(raw_length), 0), coalesce(sum(length), 0) FROM chunks")) {
                    rs.next();
                    k[0] = rs.getLong(1);
                    k[1] = rs.getLong(2);
                    k[2] = rs.getLong(3);
                }
                long[] b = new long[8];
                try (ResultSet rs = s.executeQuery("SELECT count(*), coalesce(sum(state = 'complete'), 0), "
                    + "coalesce(sum(state = 'bad'), 0), count(DISTINCT disk_id), "
                    + "coalesce(sum(CASE WHEN state <> 'incomplete' THEN image_size END), 0), "
                    + "coalesce(sum(bytes_new), 0), coalesce(sum(bytes_dedup), 0), coalesce(sum(bytes_zero), 0) "
                    + "FROM backups")) {
                    rs.next();
                    for (int i = 0; i < b.length; i++) {
                        b[i] = rs.getLong(i + 1);
                    }
                }
                return new Totals(p[0], p[1], k[0], k[1], k[2], b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
            }
        });
    }

    @Override
    public void close() {
        db.close();
    }

    // ------------------------------------------------------------------------------------------------ chunk index

    @Override
    public ChunkLocation findChunk(byte[] digest) throws RepositoryException {
        return chunks.findChunk(digest);
    }

    @Override
    public boolean hasChunk(byte[] digest) throws RepositoryException {
        return chunks.hasChunk(digest);
    }

    @Override
    public BitSet hasChunks(List<byte[]> digests) throws RepositoryException {
        return chunks.hasChunks(digests);
    }

    @Override
    public void addPack(String name, long size, List<ChunkRow> rows) throws RepositoryException {
        chunks.addPack(name, size, rows);
    }

    @Override
    public void relocate(String name, long size, List<ChunkRow> rows) throws RepositoryException {
        chunks.relocate(name, size, rows);
    }

    @Override
    public int forgetPack(String name) throws RepositoryException {
        return chunks.forgetPack(name);
    }

    @Override
    public boolean hasPack(String name) throws RepositoryException {
        return chunks.hasPack(name);
    }

    @Override
    public List<PackRow> packs() throws RepositoryException {
        return chunks.packs();
    }

    @Override
    public long chunkCount() throws RepositoryException {
        return chunks.chunkCount();
    }

    @Override
    public void forEachChunk(ChunkVisitor v) throws RepositoryException {
        chunks.forEachChunk(v);
    }

    @Override
    public void deleteChunks(List<byte[]> digests) throws RepositoryException {
        chunks.deleteChunks(digests);
    }

    @Override
    public boolean quarantine(byte[] digest, ChunkLocation at, String problem) throws RepositoryException {
        return chunks.quarantine(digest, at, problem);
    }

    @Override
    public Optional<DamagedChunk> damagedChunk(byte[] digest) throws RepositoryException {
        return chunks.damagedChunk(digest);
    }

    @Override
    public Map<byte[], DamagedChunk> damagedChunks() throws RepositoryException {
        return chunks.damagedChunks();
    }

    @Override
    public boolean reinstate(byte[] digest) throws RepositoryException {
        return chunks.reinstate(digest);
    }

    // ---------------------------------------------------------------------------------------------------- backups

    @Override
    public void insertBackup(BackupInfo b, String uuid, String owner) throws RepositoryException {
        backups.insertBackup(b, uuid, owner);
    }

    @Override
    public void setAttachments(String backupId, List<AttachmentInfo> attachments) throws RepositoryException {
        backups.setAttachments(backupId, attachments);
    }

    @Override
    public List<AttachmentInfo> attachments(String backupId) throws RepositoryException {
        return backups.attachments(backupId);
    }

    @Override
    public void completeBackup(String id, Instant completed, BackupStats stats) throws RepositoryException {
        backups.completeBackup(id, completed, stats);
    }

    @Override
    public boolean setState(String id, String state, String reason) throws RepositoryException {
        return backups.setState(id, state, reason);
    }

    @Override
    public void deleteBackup(String id) throws RepositoryException {
        backups.deleteBackup(id);
    }

    @Override
    public String stateReason(String id) throws RepositoryException {
        return backups.stateReason(id);
    }

    @Override
    public Optional<BackupInfo> backup(String id) throws RepositoryException {
        return backups.backup(id);
    }

    @Override
    public List<BackupInfo> backups() throws RepositoryException {
        return backups.backups();
    }

    @Override
    public List<BackupInfo> backupsByPrefix(String prefix) throws RepositoryException {
        return backups.backupsByPrefix(prefix);
    }

    @Override
    public Optional<BackupInfo> latestComplete(String vm, String disk, Instant notAfter) throws RepositoryException {
        return backups.latestComplete(vm, disk, notAfter);
    }

    @Override
    public Map<String, String> incompleteBackups() throws RepositoryException {
        return backups.incompleteBackups();
    }

    @Override
    public boolean setProtected(String id, boolean protect, String reason) throws RepositoryException {
        return backups.setProtected(id, protect, reason);
    }

    @Override
    public Map<String, String> protectedBackups() throws RepositoryException {
        return backups.protectedBackups();
    }

    @Override
    public void setVerified(List<String> ids, Instant when, double samplePercent) throws RepositoryException {
        backups.setVerified(ids, when, samplePercent);
    }

    @Override
    public Map<String, Verification> verifications() throws RepositoryException {
        return backups.verifications();
    }

    // ------------------------------------------------------------------------------------------------ gc, runs

    @Override
    public long maxPackId() throws RepositoryException {
        return gc.maxPackId();
    }

    @Override
    public void forEachChunkUpTo(long maxPackId, ChunkVisitor v) throws RepositoryException {
        gc.forEachChunkUpTo(maxPackId, v);
    }

    @Override
    public int condemn(List<byte[]> digests) throws RepositoryException {
        return gc.condemn(digests);
    }

    @Override
    public boolean isCondemned(byte[] digest) throws RepositoryException {
        return gc.isCondemned(digest);
    }

    @Override
    public int resurrect(List<byte[]> digests) throws RepositoryException {
        return gc.resurrect(digests);
    }

    @Override
    public int resurrectAll() throws RepositoryException {
        return gc.resurrectAll();
    }

    @Override
    public long condemnedCount() throws RepositoryException {
        return gc.condemnedCount();
    }

    @Override
    public List<PackUsage> packUsage(long maxPackId, int headerBytes, int footerEntryBytes, int trailerBytes)
        throws RepositoryException {
        return gc.packUsage(maxPackId, headerBytes, footerEntryBytes, trailerBytes);
    }

    @Override
    public List<ChunkRow> chunksOfPack(String name) throws RepositoryException {
        return gc.chunksOfPack(name);
    }

    @Override
    public void releasePack(String name) throws RepositoryException {
        gc.releasePack(name);
    }

    @Override
    public void deletePack(String name) throws RepositoryException {
        gc.deletePack(name);
    }

    @Override
    public long startRun(String command, String owner) throws RepositoryException {
        return runs.startRun(command, owner);
    }

    @Override
    public void finishRun(long runId, String status, String message) throws RepositoryException {
        runs.finishRun(runId, status, message);
    }

    @Override
    public List<Run> runs(int limit) throws RepositoryException {
        return runs.runs(limit);
    }
}
