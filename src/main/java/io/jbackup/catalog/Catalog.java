package io.jbackup.catalog;

import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;
import io.jbackup.model.RepositoryException;
import io.jbackup.model.RepositoryFullException;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * The repository catalog: an SQLite database ({@code catalog.db}, WAL journal) holding disks, backups, their
 * labels, sealed packs, chunk digest → pack location, and a log of runs. Schema: {@link Migrations}.
 *
 * <p>The catalog is a cache of what the repository's files say: packs (their footers) and index files alone rebuild
 * it ({@code jbackup repair --rebuild-catalog}). It never holds a row per backup × chunk.
 *
 * <p>Thread-safe. Writes go through one connection, serialised in this process and, across processes, by SQLite
 * ({@code BEGIN IMMEDIATE}, a 60 s busy timeout, short transactions). Chunk lookups on the hot path use a small pool
 * of read connections with prepared statements, so several worker threads look up concurrently (WAL readers never
 * block the writer). {@code synchronous=FULL}: a committed transaction is durable, which the repository's write
 * order (pack fsync → catalog rows → index rename → backup complete) relies on.
 */
public final class Catalog implements AutoCloseable {
    public static final String FILE_NAME = "catalog.db";
    private static final int BUSY_TIMEOUT_MS = 60_000;
    private static final int MAX_POOLED_READERS = 16;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path file;
    private final String url;
    private final Connection writer;
    private final Object writeLock = new Object();
    private final ConcurrentLinkedQueue<Reader> readers = new ConcurrentLinkedQueue<>();
    private final AtomicInteger pooled = new AtomicInteger();
    private volatile boolean closed;

    private Catalog(Path file, Connection writer) {
        this.file = file;
        this.url = "jdbc:sqlite:" + file.toAbsolutePath();
        this.writer = writer;
    }

    /**
     * Opens (and with {@code create}, creates) the catalog at {@code file}, applying pending migrations. A catalog
     * that belongs to another repository, or has a newer schema than this jbackup knows, is refused.
     */
    public static Catalog open(Path file, String repositoryId, boolean create) throws RepositoryException {
        if (!create && !Files.exists(file)) {
            throw new RepositoryException("catalog " + file + " is missing; rebuild it from the packs and index files "
                + "with: jbackup repair --rebuild-catalog --repo " + file.getParent());
        }
        Path wal = file.resolveSibling(file.getFileName() + "-wal");
        boolean walLeft;
        try {
            walLeft = Files.exists(wal) && Files.size(wal) > 0;
        } catch (java.io.IOException e) {
            walLeft = true;
        }
        // 0600 before SQLite writes anything; SQLite gives catalog.db-wal and -shm the mode of catalog.db
        try {
            if (!Files.exists(file)) {
                Files.createFile(file);
                restrictToOwner(file);
            }
        } catch (java.io.IOException e) {
            throw new RepositoryException("cannot create catalog " + file + ": " + e.getMessage(), e);
        }
        Catalog c;
        try {
            c = new Catalog(file, connect("jdbc:sqlite:" + file.toAbsolutePath(), true));
        } catch (SQLException e) {
            RepositoryFullException full = RepositoryFullException.of(file.getParent(), e);
            if (full != null) {
                throw new RepositoryException("cannot open catalog " + file + ": " + full.getMessage(), full);
            }
            throw damaged(file, e.getMessage(), e);
        }
        try {
            if (walLeft) {
                // a write-ahead log left by a crash, by a process using the catalog now, or copied from elsewhere:
                // SQLite applies it without knowing whose it is, so check the structure it yields
                c.quickCheck();
            }
            c.migrate(repositoryId);
        } catch (SQLException | RepositoryException e) {
            c.close();
            if (e instanceof RepositoryException r) {
                throw r;
            }
            throw damaged(file, e.getMessage(), e);
        }
        return c;
    }

    /** {@code rw-------} (as the store's {@code FilePermissions.OWNER_FILE}); nothing on a non-POSIX file system. */
    private static void restrictToOwner(Path file) throws java.io.IOException {
        try {
            Files.setPosixFilePermissions(file, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        } catch (UnsupportedOperationException e) {
            // no POSIX permissions on this file system
        }
    }

    private static RepositoryException damaged(Path file, String problem, Throwable cause) {
        return new RepositoryException("catalog " + file + " is damaged or not a catalog (" + problem + "); rebuild it "
            + "from the packs and index files with: jbackup repair --rebuild-catalog --repo " + file.getParent()
            + " (the damaged file is kept as catalog.db.old-TIME)", cause);
    }

    private void quickCheck() throws SQLException, RepositoryException {
        List<String> problems = new ArrayList<>();
        try (Statement s = writer.createStatement(); ResultSet rs = s.executeQuery("PRAGMA quick_check(5)")) {
            while (rs.next()) {
                if (!"ok".equals(rs.getString(1))) {
                    problems.add(rs.getString(1));
                }
            }
        }
        if (!problems.isEmpty()) {
            throw damaged(file, "its write-ahead log " + file.getFileName() + "-wal does not fit it: "
                + String.join("; ", problems), null);
        }
    }

    private static Connection connect(String url, boolean write) throws SQLException {
        Properties p = new Properties();
        if (write) {
            // write transactions take the write lock up front: no deadlock upgrading a read transaction
            p.setProperty("transaction_mode", "IMMEDIATE");
        }
        Connection c = DriverManager.getConnection(url, p);
        try (Statement s = c.createStatement()) {
            s.execute("PRAGMA busy_timeout=" + BUSY_TIMEOUT_MS);
            if (write) {
                s.execute("PRAGMA journal_mode=WAL");
            }
            s.execute("PRAGMA synchronous=FULL");
            s.execute("PRAGMA foreign_keys=ON");
        }
        return c;
    }

    private void migrate(String repositoryId) throws SQLException, RepositoryException {
        synchronized (writeLock) {
            int version;
            try (Statement s = writer.createStatement(); ResultSet rs = s.executeQuery("PRAGMA user_version")) {
                version = rs.next() ? rs.getInt(1) : 0;
            }
            if (version > Migrations.ALL.size()) {
                throw new RepositoryException("catalog " + file + " has schema version " + version + "; this jbackup "
                    + "knows versions up to " + Migrations.ALL.size() + " (upgrade jbackup)");
            }
            if (version < Migrations.ALL.size()) {
                int from = version;
                transaction(() -> {
                    try (Statement s = writer.createStatement()) {
                        for (int v = from; v < Migrations.ALL.size(); v++) {
                            for (String sql : Migrations.ALL.get(v)) {
                                s.execute(sql);
                            }
                        }
                        s.execute("PRAGMA user_version=" + Migrations.ALL.size());
                    }
                    if (from == 0) {
                        try (PreparedStatement ps = writer.prepareStatement(
                            "INSERT INTO meta (key, value) VALUES ('repository', ?)")) {
                            ps.setString(1, repositoryId);
                            ps.executeUpdate();
                        }
                    }
                });
            }
            try (PreparedStatement ps = writer.prepareStatement("SELECT value FROM meta WHERE key = 'repository'");
                 ResultSet rs = ps.executeQuery()) {
                String id = rs.next() ? rs.getString(1) : null;
                if (!repositoryId.equals(id)) {
                    throw new RepositoryException("catalog " + file + " belongs to repository " + id + ", not to "
                        + repositoryId + "; move it away and run: jbackup repair --rebuild-catalog --repo "
                        + file.getParent());
                }
            }
        }
    }

    /** The catalog file. */
    public Path file() {
        return file;
    }

    // ---------------------------------------------------------------------------------------------- chunks, packs

    /** Where the chunk with {@code digest} is stored, or null if the catalog does not know it. */
    public ChunkLocation findChunk(byte[] digest) throws RepositoryException {
        Reader r = borrow();
        try {
            r.find.setBytes(1, digest);
            try (ResultSet rs = r.find.executeQuery()) {
                if (!rs.next()) {
                    return null;
                }
                return new ChunkLocation(rs.getString(1), rs.getLong(2), rs.getInt(3), rs.getInt(4));
            }
        } catch (SQLException e) {
            r.broken = true;
            throw fail("look up a chunk", e);
        } finally {
            release(r);
        }
    }

    /** Whether the catalog knows a chunk with {@code digest}. */
    public boolean hasChunk(byte[] digest) throws RepositoryException {
        Reader r = borrow();
        try {
            r.has.setBytes(1, digest);
            try (ResultSet rs = r.has.executeQuery()) {
                return rs.next();
            }
        } catch (SQLException e) {
            r.broken = true;
            throw fail("look up a chunk", e);
        } finally {
            release(r);
        }
    }

    /**
     * Registers a sealed pack and its chunks in one transaction. Idempotent: a pack already registered is left as
     * is, and a digest already known elsewhere keeps its first location (the later copy is unreferenced).
     */
    public void addPack(String name, long size, List<ChunkRow> chunks) throws RepositoryException {
        writePack(name, size, chunks, "INSERT OR IGNORE INTO chunks (digest, pack_id, offset, length, raw_length) "
            + "VALUES (?, ?, ?, ?, ?)", "register pack ");
    }

    /** Registers pack {@code name} (if new) and writes its chunk rows with {@code chunkSql}, in one transaction. */
    private void writePack(String name, long size, List<ChunkRow> chunks, String chunkSql, String what)
        throws RepositoryException {
        synchronized (writeLock) {
            checkOpen();
            try {
                transaction(() -> {
                    try (PreparedStatement ps = writer.prepareStatement(
                        "INSERT OR IGNORE INTO packs (name, size, chunk_count, created_ms) VALUES (?, ?, ?, ?)")) {
                        ps.setString(1, name);
                        ps.setLong(2, size);
                        ps.setInt(3, chunks.size());
                        ps.setLong(4, System.currentTimeMillis());
                        ps.executeUpdate();
                    }
                    long packId;
                    try (PreparedStatement ps = writer.prepareStatement("SELECT id FROM packs WHERE name = ?")) {
                        ps.setString(1, name);
                        try (ResultSet rs = ps.executeQuery()) {
                            rs.next();
                            packId = rs.getLong(1);
                        }
                    }
                    try (PreparedStatement ps = writer.prepareStatement(chunkSql)) {
                        for (ChunkRow c : chunks) {
                            ps.setBytes(1, c.digest());
                            ps.setLong(2, packId);
                            ps.setLong(3, c.offset());
                            ps.setInt(4, c.length());
                            ps.setInt(5, c.rawLength());
                            ps.addBatch();
                        }
                        ps.executeBatch();
                    }
                    // a chunk stored again is healed: backups that use it read the new copy
                    try (PreparedStatement ps = writer.prepareStatement("DELETE FROM damaged_chunks WHERE digest = ?")) {
                        for (ChunkRow c : chunks) {
                            ps.setBytes(1, c.digest());
                            ps.addBatch();
                        }
                        ps.executeBatch();
                    }
                });
            } catch (SQLException e) {
                throw fail(what + name, e);
            }
        }
    }

    /** Whether a pack with this name is registered. */
    public boolean hasPack(String name) throws RepositoryException {
        return queryOne("SELECT 1 FROM packs WHERE name = ?", ps -> ps.setString(1, name), rs -> true).isPresent();
    }

    /** All registered packs. */
    public List<PackRow> packs() throws RepositoryException {
        return queryList("SELECT name, size, chunk_count, created_ms FROM packs ORDER BY id", ps -> { },
            rs -> new PackRow(rs.getString(1), rs.getLong(2), rs.getInt(3), Instant.ofEpochMilli(rs.getLong(4))));
    }

    /** Number of registered chunks. */
    public long chunkCount() throws RepositoryException {
        return queryOne("SELECT count(*) FROM chunks", ps -> { }, rs -> rs.getLong(1)).orElse(0L);
    }

    /**
     * Visits every chunk in pack order and offset order, streaming (bounded memory); chunks condemned by a running
     * gc are included (they are still readable).
     */
    public void forEachChunk(ChunkVisitor v) throws RepositoryException {
        Connection c = null;
        try {
            c = connect(url, false);
            try (PreparedStatement ps = c.prepareStatement("SELECT digest, name, offset, length, raw_length FROM ("
                + "SELECT c.digest, p.name, c.offset, c.length, c.raw_length, c.pack_id FROM chunks c "
                + "JOIN packs p ON p.id = c.pack_id UNION ALL "
                + "SELECT g.digest, p.name, g.offset, g.length, g.raw_length, g.pack_id FROM gc_condemned g "
                + "JOIN packs p ON p.id = g.pack_id) ORDER BY pack_id, offset");
                 ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    v.visit(rs.getBytes(1), new ChunkLocation(rs.getString(2), rs.getLong(3), rs.getInt(4), rs.getInt(5)));
                }
            }
        } catch (SQLException e) {
            throw fail("list chunks", e);
        } finally {
            closeQuietly(c);
        }
    }

    /** Receives chunks from {@link #forEachChunk}. */
    @FunctionalInterface
    public interface ChunkVisitor {
        void visit(byte[] digest, ChunkLocation location) throws RepositoryException;
    }

    /** Forgets chunks (e.g. damaged ones, so the next backup that meets their data stores it again). */
    public void deleteChunks(List<byte[]> digests) throws RepositoryException {
        update("delete chunks", "DELETE FROM chunks WHERE digest = ?", digests, (ps, d) -> ps.setBytes(1, d));
        update("delete chunks", "DELETE FROM gc_condemned WHERE digest = ?", digests, (ps, d) -> ps.setBytes(1, d));
    }

    /** A chunk found damaged at {@code location}: what was wrong and when it was found. */
    public record DamagedChunk(ChunkLocation location, String problem, Instant found) {
    }

    /**
     * Quarantines a damaged chunk: if its row still points at {@code at}, moves it from {@code chunks} (or
     * {@code gc_condemned}) to {@code damaged_chunks}, in one transaction. From then on no backup deduplicates
     * against it ({@link #hasChunk} is false), so the next backup that meets its data stores it again, which heals
     * every backup that uses it; {@link #damagedChunk} still tells readers where it was and what was wrong.
     * Returns false if the row points elsewhere (moved or stored again meanwhile) or is gone.
     */
    public boolean quarantine(byte[] digest, ChunkLocation at, String problem) throws RepositoryException {
        boolean[] moved = {false};
        synchronized (writeLock) {
            checkOpen();
            try {
                transaction(() -> {
                    for (String table : new String[] {"chunks", "gc_condemned"}) {
                        try (PreparedStatement del = writer.prepareStatement("DELETE FROM " + table + " WHERE digest = ? "
                            + "AND offset = ? AND pack_id = (SELECT id FROM packs WHERE name = ?)")) {
                            del.setBytes(1, digest);
                            del.setLong(2, at.offset());
                            del.setString(3, at.pack());
                            moved[0] |= del.executeUpdate() > 0;
                        }
                    }
                    if (moved[0]) {
                        try (PreparedStatement ins = writer.prepareStatement("INSERT OR REPLACE INTO damaged_chunks "
                            + "(digest, pack, offset, length, raw_length, problem, found_ms) VALUES (?, ?, ?, ?, ?, ?, ?)")) {
                            ins.setBytes(1, digest);
                            ins.setString(2, at.pack());
                            ins.setLong(3, at.offset());
                            ins.setInt(4, at.length());
                            ins.setInt(5, at.rawLength());
                            ins.setString(6, problem == null ? "damaged" : problem);
                            ins.setLong(7, System.currentTimeMillis());
                            ins.executeUpdate();
                        }
                    }
                });
            } catch (SQLException e) {
                throw fail("quarantine a damaged chunk", e);
            }
        }
        return moved[0];
    }

    /** Where a quarantined chunk was and what was wrong with it, or empty. */
    public Optional<DamagedChunk> damagedChunk(byte[] digest) throws RepositoryException {
        return queryOne("SELECT pack, offset, length, raw_length, problem, found_ms FROM damaged_chunks WHERE digest = ?",
            ps -> ps.setBytes(1, digest), rs -> new DamagedChunk(new ChunkLocation(rs.getString(1), rs.getLong(2),
                rs.getInt(3), rs.getInt(4)), rs.getString(5), Instant.ofEpochMilli(rs.getLong(6))));
    }

    /** Every quarantined chunk (digest to damage), for verify to check again. */
    public Map<byte[], DamagedChunk> damagedChunks() throws RepositoryException {
        Map<byte[], DamagedChunk> m = new LinkedHashMap<>();
        for (Object[] row : queryList("SELECT digest, pack, offset, length, raw_length, problem, found_ms "
            + "FROM damaged_chunks ORDER BY pack, offset", ps -> { }, rs -> new Object[] {rs.getBytes(1),
                new DamagedChunk(new ChunkLocation(rs.getString(2), rs.getLong(3), rs.getInt(4), rs.getInt(5)),
                    rs.getString(6), Instant.ofEpochMilli(rs.getLong(7)))})) {
            m.put((byte[]) row[0], (DamagedChunk) row[1]);
        }
        return m;
    }

    /**
     * Gives a quarantined chunk its row back (a later check found the record intact, e.g. the pack was restored
     * from a copy), unless the chunk was stored again meanwhile. Returns whether the row came back.
     */
    public boolean reinstate(byte[] digest) throws RepositoryException {
        boolean[] done = {false};
        synchronized (writeLock) {
            checkOpen();
            try {
                transaction(() -> {
                    try (PreparedStatement ins = writer.prepareStatement("INSERT OR IGNORE INTO chunks "
                        + "SELECT d.digest, p.id, d.offset, d.length, d.raw_length FROM damaged_chunks d "
                        + "JOIN packs p ON p.name = d.pack WHERE d.digest = ?");
                         PreparedStatement del = writer.prepareStatement("DELETE FROM damaged_chunks WHERE digest = ?")) {
                        ins.setBytes(1, digest);
                        done[0] = ins.executeUpdate() > 0;
                        del.setBytes(1, digest);
                        del.executeUpdate();
                    }
                });
            } catch (SQLException e) {
                throw fail("reinstate a chunk", e);
            }
        }
        return done[0];
    }

    // ---------------------------------------------------------------------------------------------------- backups

    /** Inserts a backup row (normally {@code incomplete}, owned by {@code owner}); the id must be new. */
    public void insertBackup(BackupInfo b, String uuid, String owner) throws RepositoryException {
        synchronized (writeLock) {
            checkOpen();
            try {
                transaction(() -> {
                    long diskId = diskId(b.vm(), b.disk());
                    try (PreparedStatement ps = writer.prepareStatement("INSERT INTO backups (id, uuid, disk_id, type, "
                        + "parent_id, created_ms, completed_ms, image_size, chunk_size, state, note, source_json, "
                        + "chunks_total, chunks_new, chunks_dedup, chunks_zero, bytes_new, bytes_dedup, bytes_zero, "
                        + "bytes_stored, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")) {
                        ps.setString(1, b.id());
                        ps.setString(2, uuid);
                        ps.setLong(3, diskId);
                        ps.setString(4, b.type());
                        ps.setString(5, b.parentId());
                        ps.setLong(6, b.created().toEpochMilli());
                        if (b.completed() == null) {
                            ps.setNull(7, Types.INTEGER);
                        } else {
                            ps.setLong(7, b.completed().toEpochMilli());
                        }
                        ps.setLong(8, b.imageSize());
                        ps.setInt(9, b.chunkSize());
                        ps.setString(10, b.state());
                        ps.setString(11, b.note());
                        ps.setString(12, toJson(b.source()));
                        setStats(ps, 13, b.stats());
                        ps.setString(21, owner);
                        ps.executeUpdate();
                    }
                    try (PreparedStatement ps = writer.prepareStatement(
                        "INSERT INTO labels (backup_id, key, value) VALUES (?, ?, ?)")) {
                        for (Map.Entry<String, String> e : new TreeMap<>(b.labels()).entrySet()) {
                            ps.setString(1, b.id());
                            ps.setString(2, e.getKey());
                            ps.setString(3, e.getValue());
                            ps.addBatch();
                        }
                        ps.executeBatch();
                    }
                });
            } catch (SQLException e) {
                if (e.getMessage() != null && e.getMessage().contains("UNIQUE constraint failed: backups.id")) {
                    throw new DuplicateBackupIdException(b.id());
                }
                throw fail("insert backup " + b.id(), e);
            }
        }
    }

    /** Thrown by {@link #insertBackup} when the id is taken (the caller draws a new one). */
    public static final class DuplicateBackupIdException extends RepositoryException {
        private static final long serialVersionUID = 1L;

        DuplicateBackupIdException(String id) {
            super("backup id " + id + " is already taken");
        }
    }

    private long diskId(String vm, String disk) throws SQLException {
        String v = vm == null ? "" : vm;
        try (PreparedStatement ps = writer.prepareStatement("INSERT OR IGNORE INTO disks (vm, name) VALUES (?, ?)")) {
            ps.setString(1, v);
            ps.setString(2, disk);
            ps.executeUpdate();
        }
        try (PreparedStatement ps = writer.prepareStatement("SELECT id FROM disks WHERE vm = ? AND name = ?")) {
            ps.setString(1, v);
            ps.setString(2, disk);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        }
    }

    /** Marks a backup complete with its final counters; its owner is cleared. */
    public void completeBackup(String id, Instant completed, BackupStats stats) throws RepositoryException {
        int n = updateOne("complete backup " + id, "UPDATE backups SET state = 'complete', completed_ms = ?, "
            + "chunks_total = ?, chunks_new = ?, chunks_dedup = ?, chunks_zero = ?, bytes_new = ?, bytes_dedup = ?, "
            + "bytes_zero = ?, bytes_stored = ?, owner = NULL WHERE id = ?", ps -> {
                ps.setLong(1, completed.toEpochMilli());
                setStats(ps, 2, stats);
                ps.setString(10, id);
            });
        if (n != 1) {
            throw new RepositoryException("backup " + id + " vanished from catalog " + file + " while being committed");
        }
    }

    /** Sets a backup's state ({@code complete}, {@code bad}) with an optional reason; returns false if unknown. */
    public boolean setState(String id, String state, String reason) throws RepositoryException {
        return updateOne("mark backup " + id + " " + state,
            "UPDATE backups SET state = ?, state_reason = ? WHERE id = ? AND state <> 'incomplete'", ps -> {
                ps.setString(1, state);
                ps.setString(2, reason);
                ps.setString(3, id);
            }) == 1;
    }

    /** Removes a backup row and its labels. */
    public void deleteBackup(String id) throws RepositoryException {
        updateOne("delete backup " + id, "DELETE FROM backups WHERE id = ?", ps -> ps.setString(1, id));
    }

    /** The reason recorded with a backup's state (why it is bad), or null. */
    public String stateReason(String id) throws RepositoryException {
        return queryOne("SELECT state_reason FROM backups WHERE id = ?", ps -> ps.setString(1, id), rs -> rs.getString(1))
            .orElse(null);
    }

    private static final String BACKUP_COLUMNS = "b.id, d.vm, d.name, b.type, b.parent_id, b.created_ms, "
        + "b.completed_ms, b.image_size, b.chunk_size, b.state, b.note, b.source_json, b.chunks_total, b.chunks_new, "
        + "b.chunks_dedup, b.chunks_zero, b.bytes_new, b.bytes_dedup, b.bytes_zero, b.bytes_stored "
        + "FROM backups b JOIN disks d ON d.id = b.disk_id ";

    /** The backup with exactly this id. */
    public Optional<BackupInfo> backup(String id) throws RepositoryException {
        List<BackupInfo> l = backups("WHERE b.id = ?", ps -> ps.setString(1, id));
        return l.isEmpty() ? Optional.empty() : Optional.of(l.get(0));
    }

    /** Every backup, oldest first. */
    public List<BackupInfo> backups() throws RepositoryException {
        return backups("", ps -> { });
    }

    /** Backups whose id starts with {@code prefix}, oldest first. */
    public List<BackupInfo> backupsByPrefix(String prefix) throws RepositoryException {
        String escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_");
        return backups("WHERE b.id LIKE ? ESCAPE '\\'", ps -> ps.setString(1, escaped + "%"));
    }

    /**
     * The newest complete backup of a disk ({@code vm} null for a standalone disk) created at or before
     * {@code notAfter} (null: any time).
     */
    public Optional<BackupInfo> latestComplete(String vm, String disk, Instant notAfter) throws RepositoryException {
        List<BackupInfo> l = backups("WHERE d.vm = ? AND d.name = ? AND b.state = 'complete' AND b.created_ms <= ? "
            + "ORDER BY b.created_ms DESC, b.id DESC LIMIT 1", ps -> {
                ps.setString(1, vm == null ? "" : vm);
                ps.setString(2, disk);
                ps.setLong(3, notAfter == null ? Long.MAX_VALUE : notAfter.toEpochMilli());
            });
        return l.isEmpty() ? Optional.empty() : Optional.of(l.get(0));
    }

    /** Incomplete backups with the owner recorded when they began ({@code host/pid/start}). */
    public Map<String, String> incompleteBackups() throws RepositoryException {
        Map<String, String> m = new LinkedHashMap<>();
        for (String[] row : queryList("SELECT id, owner FROM backups WHERE state = 'incomplete' ORDER BY id", ps -> { },
            rs -> new String[] {rs.getString(1), rs.getString(2)})) {
            m.put(row[0], row[1]);
        }
        return m;
    }

    private List<BackupInfo> backups(String where, Binder binder) throws RepositoryException {
        String order = where.contains("ORDER BY") ? "" : " ORDER BY b.created_ms, b.id";
        List<BackupInfo> rows = queryList("SELECT " + BACKUP_COLUMNS + where + order, binder, rs -> {
            String vm = rs.getString(2);
            long completed = rs.getLong(7);
            boolean noCompleted = rs.wasNull();
            return new BackupInfo(rs.getString(1), vm.isEmpty() ? null : vm, rs.getString(3), rs.getString(4),
                rs.getString(5), Instant.ofEpochMilli(rs.getLong(6)), noCompleted ? null : Instant.ofEpochMilli(completed),
                rs.getLong(8), rs.getInt(9), rs.getString(10), Map.of(), rs.getString(11), fromJson(rs.getString(12)),
                new BackupStats(rs.getLong(13), rs.getLong(14), rs.getLong(15), rs.getLong(16), rs.getLong(17),
                    rs.getLong(18), rs.getLong(19), rs.getLong(20)));
        });
        if (rows.isEmpty()) {
            return rows;
        }
        Map<String, Map<String, String>> labels = new HashMap<>();
        String labelSql = rows.size() == 1 ? "SELECT backup_id, key, value FROM labels WHERE backup_id = ?"
            : "SELECT backup_id, key, value FROM labels";
        for (String[] l : queryList(labelSql, ps -> {
            if (rows.size() == 1) {
                ps.setString(1, rows.get(0).id());
            }
        }, rs -> new String[] {rs.getString(1), rs.getString(2), rs.getString(3)})) {
            labels.computeIfAbsent(l[0], k -> new TreeMap<>()).put(l[1], l[2]);
        }
        List<BackupInfo> out = new ArrayList<>(rows.size());
        for (BackupInfo b : rows) {
            Map<String, String> lb = labels.get(b.id());
            out.add(lb == null ? b : new BackupInfo(b.id(), b.vm(), b.disk(), b.type(), b.parentId(), b.created(),
                b.completed(), b.imageSize(), b.chunkSize(), b.state(), lb, b.note(), b.source(), b.stats()));
        }
        return out;
    }

    // ----------------------------------------------------------------------------- protection, verification state

    /** Protects a backup from pruning (or lifts it); returns false if no complete or bad backup has this id. */
    public boolean setProtected(String id, boolean protect, String reason) throws RepositoryException {
        return updateOne((protect ? "protect" : "unprotect") + " backup " + id,
            "UPDATE backups SET protected = ?, protect_reason = ? WHERE id = ? AND state <> 'incomplete'", ps -> {
                ps.setInt(1, protect ? 1 : 0);
                ps.setString(2, protect ? reason : null);
                ps.setString(3, id);
            }) == 1;
    }

    /** Ids of protected backups, with the reason given (may be null). */
    public Map<String, String> protectedBackups() throws RepositoryException {
        Map<String, String> m = new LinkedHashMap<>();
        for (String[] r : queryList("SELECT id, protect_reason FROM backups WHERE protected <> 0 ORDER BY id",
            ps -> { }, rs -> new String[] {rs.getString(1), rs.getString(2)})) {
            m.put(r[0], r[1]);
        }
        return m;
    }

    /** When a backup was last verified and with which sample percentage. */
    public record Verification(Instant when, double samplePercent) {
    }

    /** Records that these backups passed a verify run (sampling {@code samplePercent} of their chunks). */
    public void setVerified(List<String> ids, Instant when, double samplePercent) throws RepositoryException {
        update("record verification", "UPDATE backups SET verified_ms = ?, verified_sample = ? WHERE id = ?", ids,
            (ps, id) -> {
                ps.setLong(1, when.toEpochMilli());
                ps.setDouble(2, samplePercent);
                ps.setString(3, id);
            });
    }

    /** The last successful verification of every backup that has one. */
    public Map<String, Verification> verifications() throws RepositoryException {
        Map<String, Verification> m = new HashMap<>();
        for (Object[] r : queryList("SELECT id, verified_ms, verified_sample FROM backups WHERE verified_ms IS NOT NULL",
            ps -> { }, rs -> new Object[] {rs.getString(1), rs.getLong(2), rs.getDouble(3)})) {
            m.put((String) r[0], new Verification(Instant.ofEpochMilli((Long) r[1]), (Double) r[2]));
        }
        return m;
    }

    // -------------------------------------------------------------------------------------------------- totals

    /** Repository totals from the catalog alone (no file is read). */
    public record Totals(long packs, long packBytes, long chunks, long chunkRawBytes, long chunkStoredBytes,
                         long backups, long completeBackups, long badBackups, long disks, long logicalBytes,
                         long bytesNew, long bytesDedup, long bytesZero) {
    }

    /** Counts and sums over packs, chunks and backups. */
    public Totals totals() throws RepositoryException {
        synchronized (writeLock) {
            checkOpen();
            try (Statement s = writer.createStatement()) {
                long[] p = new long[2];
                try (ResultSet rs = s.executeQuery("SELECT count(*), coalesce(sum(size), 0) FROM packs")) {
                    rs.next();
                    p[0] = rs.getLong(1);
                    p[1] = rs.getLong(2);
                }
                long[] c = new long[3];
                try (ResultSet rs = s.executeQuery(
                    "SELECT count(*), coalesce(sum(raw_length), 0), coalesce(sum(length), 0) FROM chunks")) {
                    rs.next();
                    c[0] = rs.getLong(1);
                    c[1] = rs.getLong(2);
                    c[2] = rs.getLong(3);
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
                return new Totals(p[0], p[1], c[0], c[1], c[2], b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
            } catch (SQLException e) {
                throw fail("sum up the repository", e);
            }
        }
    }

    // ------------------------------------------------------------------------------------------ garbage collection

    /** The highest pack row id: packs registered later have higher ids (while none above it is deleted). */
    public long maxPackId() throws RepositoryException {
        return queryOne("SELECT coalesce(max(id), 0) FROM packs", ps -> { }, rs -> rs.getLong(1)).orElse(0L);
    }

    /**
     * Visits every chunk (not condemned) in packs with id at most {@code maxPackId}, streaming (bounded memory), in
     * no particular order.
     */
    public void forEachChunkUpTo(long maxPackId, ChunkVisitor v) throws RepositoryException {
        Connection c = null;
        try {
            c = connect(url, false);
            try (PreparedStatement ps = c.prepareStatement("SELECT c.digest, p.name, c.offset, c.length, c.raw_length "
                + "FROM chunks c JOIN packs p ON p.id = c.pack_id WHERE c.pack_id <= ?")) {
                ps.setLong(1, maxPackId);
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        v.visit(rs.getBytes(1), new ChunkLocation(rs.getString(2), rs.getLong(3), rs.getInt(4),
                            rs.getInt(5)));
                    }
                }
            }
        } catch (SQLException e) {
            throw fail("list chunks", e);
        } finally {
            closeQuietly(c);
        }
    }

    /**
     * Condemns chunks: moves their rows from {@code chunks} to {@code gc_condemned} in one transaction. From then
     * on no writer deduplicates against them ({@link #hasChunk} is false), while reads still find them
     * ({@link #findChunk} falls back to condemned rows) until gc deletes their packs or resurrects them.
     */
    public int condemn(List<byte[]> digests) throws RepositoryException {
        int[] n = {0};
        synchronized (writeLock) {
            checkOpen();
            try {
                transaction(() -> {
                    try (PreparedStatement ins = writer.prepareStatement("INSERT OR IGNORE INTO gc_condemned "
                        + "SELECT digest, pack_id, offset, length, raw_length FROM chunks WHERE digest = ?");
                         PreparedStatement del = writer.prepareStatement("DELETE FROM chunks WHERE digest = ?")) {
                        for (byte[] d : digests) {
                            ins.setBytes(1, d);
                            n[0] += ins.executeUpdate();
                            del.setBytes(1, d);
                            del.executeUpdate();
                        }
                    }
                });
            } catch (SQLException e) {
                throw fail("condemn chunks", e);
            }
        }
        return n[0];
    }

    /** Whether {@code digest} is condemned. */
    public boolean isCondemned(byte[] digest) throws RepositoryException {
        return queryOne("SELECT 1 FROM gc_condemned WHERE digest = ?", ps -> ps.setBytes(1, digest), rs -> true)
            .isPresent();
    }

    /**
     * Gives condemned chunks back their rows (a backup turned out to use them). A digest that a writer has stored
     * again meanwhile keeps its new row; the condemned copy is then garbage.
     */
    public int resurrect(List<byte[]> digests) throws RepositoryException {
        int[] n = {0};
        synchronized (writeLock) {
            checkOpen();
            try {
                transaction(() -> {
                    try (PreparedStatement ins = writer.prepareStatement("INSERT OR IGNORE INTO chunks "
                        + "SELECT digest, pack_id, offset, length, raw_length FROM gc_condemned WHERE digest = ?");
                         PreparedStatement del = writer.prepareStatement("DELETE FROM gc_condemned WHERE digest = ?")) {
                        for (byte[] d : digests) {
                            ins.setBytes(1, d);
                            ins.executeUpdate();
                            del.setBytes(1, d);
                            n[0] += del.executeUpdate();
                        }
                    }
                });
            } catch (SQLException e) {
                throw fail("resurrect chunks", e);
            }
        }
        return n[0];
    }

    /** Gives every condemned chunk back its row (rolls back a gc that did not finish); returns how many. */
    public int resurrectAll() throws RepositoryException {
        int[] n = {0};
        synchronized (writeLock) {
            checkOpen();
            try {
                transaction(() -> {
                    try (Statement s = writer.createStatement()) {
                        s.executeUpdate("INSERT OR IGNORE INTO chunks SELECT digest, pack_id, offset, length, raw_length "
                            + "FROM gc_condemned");
                        n[0] = s.executeUpdate("DELETE FROM gc_condemned");
                    }
                });
            } catch (SQLException e) {
                throw fail("resurrect condemned chunks", e);
            }
        }
        return n[0];
    }

    /** Number of condemned chunks. */
    public long condemnedCount() throws RepositoryException {
        return queryOne("SELECT count(*) FROM gc_condemned", ps -> { }, rs -> rs.getLong(1)).orElse(0L);
    }

    /**
     * How much of a pack is still used.
     *
     * @param recordBytes bytes of all records in the pack (the file minus header, footer and trailer)
     * @param liveChunks  chunks of the pack with a catalog row
     * @param liveBytes   record bytes of those chunks
     */
    public record PackUsage(String name, long size, int chunkCount, long recordBytes, long liveChunks,
                            long liveBytes) {
    }

    /** Usage of every pack with id at most {@code maxPackId}, in id order. */
    public List<PackUsage> packUsage(long maxPackId, int headerBytes, int footerEntryBytes, int trailerBytes)
        throws RepositoryException {
        return queryList("SELECT p.name, p.size, p.chunk_count, count(c.digest), coalesce(sum(c.length), 0) "
            + "FROM packs p LEFT JOIN chunks c ON c.pack_id = p.id WHERE p.id <= ? GROUP BY p.id ORDER BY p.id",
            ps -> ps.setLong(1, maxPackId), rs -> new PackUsage(rs.getString(1), rs.getLong(2), rs.getInt(3),
                rs.getLong(2) - headerBytes - (long) footerEntryBytes * rs.getInt(3) - trailerBytes, rs.getLong(4),
                rs.getLong(5)));
    }

    /** The live chunks (with a catalog row) of a pack, in offset order. */
    public List<ChunkRow> chunksOfPack(String name) throws RepositoryException {
        return queryList("SELECT c.digest, c.offset, c.length, c.raw_length FROM chunks c JOIN packs p "
            + "ON p.id = c.pack_id WHERE p.name = ? ORDER BY c.offset", ps -> ps.setString(1, name),
            rs -> new ChunkRow(rs.getBytes(1), rs.getLong(2), rs.getInt(3), rs.getInt(4)));
    }

    /**
     * Registers a pack written by gc from live records of other packs, and points those chunks' rows at it, in
     * one transaction (the new pack is already sealed and synced).
     */
    public void relocate(String name, long size, List<ChunkRow> chunks) throws RepositoryException {
        writePack(name, size, chunks, "INSERT INTO chunks (digest, pack_id, offset, length, raw_length) VALUES "
            + "(?, ?, ?, ?, ?) ON CONFLICT (digest) DO UPDATE SET pack_id = excluded.pack_id, offset = excluded.offset, "
            + "length = excluded.length, raw_length = excluded.raw_length", "relocate chunks to pack ");
    }

    /**
     * Forgets the condemned rows of a pack that is about to be deleted; refuses if live chunks still point at it.
     */
    public void releasePack(String name) throws RepositoryException {
        synchronized (writeLock) {
            checkOpen();
            try {
                transaction(() -> {
                    long packId;
                    try (PreparedStatement ps = writer.prepareStatement("SELECT id FROM packs WHERE name = ?")) {
                        ps.setString(1, name);
                        try (ResultSet rs = ps.executeQuery()) {
                            if (!rs.next()) {
                                return;
                            }
                            packId = rs.getLong(1);
                        }
                    }
                    try (PreparedStatement ps = writer.prepareStatement("SELECT count(*) FROM chunks WHERE pack_id = ?")) {
                        ps.setLong(1, packId);
                        try (ResultSet rs = ps.executeQuery()) {
                            rs.next();
                            if (rs.getLong(1) != 0) {
                                throw new SQLException("pack " + name + " still holds " + rs.getLong(1)
                                    + " live chunks; it cannot be deleted");
                            }
                        }
                    }
                    try (PreparedStatement ps = writer.prepareStatement("DELETE FROM gc_condemned WHERE pack_id = ?")) {
                        ps.setLong(1, packId);
                        ps.executeUpdate();
                    }
                });
            } catch (SQLException e) {
                throw fail("release pack " + name, e);
            }
        }
    }

    /** Removes a pack row (its file is already deleted, and no chunk row points at it). */
    public void deletePack(String name) throws RepositoryException {
        updateOne("delete pack " + name, "DELETE FROM packs WHERE name = ? AND NOT EXISTS (SELECT 1 FROM chunks c "
            + "WHERE c.pack_id = packs.id)", ps -> ps.setString(1, name));
    }

    // ------------------------------------------------------------------------------------------------------- runs

    /** Records the start of a command run (backup, verify, repair, ...); returns its id. */
    public long startRun(String command, String owner) throws RepositoryException {
        synchronized (writeLock) {
            checkOpen();
            try (PreparedStatement ps = writer.prepareStatement(
                "INSERT INTO runs (command, started_ms, status, owner) VALUES (?, ?, 'running', ?)",
                Statement.RETURN_GENERATED_KEYS)) {
                ps.setString(1, command);
                ps.setLong(2, System.currentTimeMillis());
                ps.setString(3, owner);
                ps.executeUpdate();
                try (ResultSet rs = ps.getGeneratedKeys()) {
                    rs.next();
                    return rs.getLong(1);
                }
            } catch (SQLException e) {
                throw fail("record a run", e);
            }
        }
    }

    /** Records how a run ended ({@code ok}, {@code failed}, {@code damaged}, ...). */
    public void finishRun(long runId, String status, String message) throws RepositoryException {
        updateOne("finish run " + runId, "UPDATE runs SET finished_ms = ?, status = ?, message = ? WHERE id = ?", ps -> {
            ps.setLong(1, System.currentTimeMillis());
            ps.setString(2, status);
            ps.setString(3, message);
            ps.setLong(4, runId);
        });
    }

    /** A run as recorded. */
    public record Run(long id, String command, Instant started, Instant finished, String status, String owner,
                      String message) {
    }

    /** The most recent runs, newest first. */
    public List<Run> runs(int limit) throws RepositoryException {
        return queryList("SELECT id, command, started_ms, finished_ms, status, owner, message FROM runs "
            + "ORDER BY id DESC LIMIT ?", ps -> ps.setInt(1, limit), rs -> {
                long f = rs.getLong(4);
                boolean none = rs.wasNull();
                return new Run(rs.getLong(1), rs.getString(2), Instant.ofEpochMilli(rs.getLong(3)),
                    none ? null : Instant.ofEpochMilli(f), rs.getString(5), rs.getString(6), rs.getString(7));
            });
    }

    // ---------------------------------------------------------------------------------------------------- helpers

    @FunctionalInterface
    private interface Work {
        void run() throws SQLException;
    }

    /** Runs {@code work} in one write transaction on the writer connection; the caller holds {@code writeLock}. */
    private void transaction(Work work) throws SQLException {
        writer.setAutoCommit(false);
        try {
            work.run();
            writer.commit();
        } catch (SQLException | RuntimeException e) {
            // SQLite may have rolled back already (SQLITE_FULL, I/O errors): then rollback and the COMMIT of
            // setAutoCommit(true) fail with "no transaction is active", which must not hide the real error
            try {
                writer.rollback();
            } catch (SQLException r) {
                e.addSuppressed(r);
            }
            try {
                writer.setAutoCommit(true);
            } catch (SQLException r) {
                e.addSuppressed(r);
            }
            throw e;
        }
        writer.setAutoCommit(true);
    }

    @FunctionalInterface
    private interface Binder {
        void bind(PreparedStatement ps) throws SQLException;
    }

    @FunctionalInterface
    private interface RowMapper<T> {
        T map(ResultSet rs) throws SQLException;
    }

    @FunctionalInterface
    private interface BatchBinder<T> {
        void bind(PreparedStatement ps, T item) throws SQLException;
    }

    private <T> List<T> queryList(String sql, Binder binder, RowMapper<T> mapper) throws RepositoryException {
        synchronized (writeLock) {
            checkOpen();
            try (PreparedStatement ps = writer.prepareStatement(sql)) {
                binder.bind(ps);
                List<T> out = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        out.add(mapper.map(rs));
                    }
                }
                return out;
            } catch (SQLException e) {
                throw fail("query", e);
            }
        }
    }

    private <T> Optional<T> queryOne(String sql, Binder binder, RowMapper<T> mapper) throws RepositoryException {
        List<T> l = queryList(sql, binder, mapper);
        return l.isEmpty() ? Optional.empty() : Optional.of(l.get(0));
    }

    private int updateOne(String what, String sql, Binder binder) throws RepositoryException {
        synchronized (writeLock) {
            checkOpen();
            try (PreparedStatement ps = writer.prepareStatement(sql)) {
                binder.bind(ps);
                return ps.executeUpdate();
            } catch (SQLException e) {
                throw fail(what, e);
            }
        }
    }

    private <T> void update(String what, String sql, List<T> items, BatchBinder<T> binder) throws RepositoryException {
        synchronized (writeLock) {
            checkOpen();
            try {
                transaction(() -> {
                    try (PreparedStatement ps = writer.prepareStatement(sql)) {
                        for (T item : items) {
                            binder.bind(ps, item);
                            ps.addBatch();
                        }
                        ps.executeBatch();
                    }
                });
            } catch (SQLException e) {
                throw fail(what, e);
            }
        }
    }

    private static void setStats(PreparedStatement ps, int first, BackupStats s) throws SQLException {
        ps.setLong(first, s.chunksTotal());
        ps.setLong(first + 1, s.chunksNew());
        ps.setLong(first + 2, s.chunksDedup());
        ps.setLong(first + 3, s.chunksZero());
        ps.setLong(first + 4, s.bytesNew());
        ps.setLong(first + 5, s.bytesDedup());
        ps.setLong(first + 6, s.bytesZero());
        ps.setLong(first + 7, s.bytesStored());
    }

    private static String toJson(Map<String, String> m) {
        try {
            return JSON.writeValueAsString(new TreeMap<>(m));
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private Map<String, String> fromJson(String s) throws SQLException {
        if (s == null || s.isEmpty()) {
            return Map.of();
        }
        try {
            Map<String, String> m = new TreeMap<>();
            JSON.readTree(s).fields().forEachRemaining(e -> m.put(e.getKey(), e.getValue().asText()));
            return m;
        } catch (JsonProcessingException e) {
            throw new SQLException("bad source_json in catalog " + file + ": " + s, e);
        }
    }

    private RepositoryException fail(String what, SQLException e) {
        String msg = e.getMessage();
        RepositoryFullException full = RepositoryFullException.of(file.getParent(), e);
        if (full != null) {
            return new RepositoryException("catalog " + file + ": cannot " + what + ": " + full.getMessage(), full);
        }
        String hint = msg != null && (msg.contains("SQLITE_BUSY") || msg.contains("locked"))
            ? "; another process holds the catalog too long, retry"
            : msg != null && (msg.contains("SQLITE_CORRUPT") || msg.contains("malformed") || msg.contains("SQLITE_NOTADB"))
            ? "; the catalog is damaged: rebuild it from the packs and index files with: jbackup repair "
                + "--rebuild-catalog --repo " + file.getParent() + " (the damaged file is kept as catalog.db.old-TIME)"
            : "";
        return new RepositoryException("catalog " + file + ": cannot " + what + ": " + msg + hint, e);
    }

    private void checkOpen() throws RepositoryException {
        if (closed) {
            throw new RepositoryException("catalog " + file + " is closed");
        }
    }

    /** A pooled read connection with its prepared hot-path statements. */
    private static final class Reader {
        final Connection conn;
        final PreparedStatement find;
        final PreparedStatement has;
        boolean broken;

        Reader(Connection conn) throws SQLException {
            this.conn = conn;
            // condemned chunks (a running gc) are still found for reads, never for dedup (see condemn)
            this.find = conn.prepareStatement("SELECT p.name, c.offset, c.length, c.raw_length FROM chunks c "
                + "JOIN packs p ON p.id = c.pack_id WHERE c.digest = ?1 UNION ALL "
                + "SELECT p.name, g.offset, g.length, g.raw_length FROM gc_condemned g "
                + "JOIN packs p ON p.id = g.pack_id WHERE g.digest = ?1 LIMIT 1");
            this.has = conn.prepareStatement("SELECT 1 FROM chunks WHERE digest = ?");
        }
    }

    private Reader borrow() throws RepositoryException {
        checkOpen();
        Reader r = readers.poll();
        if (r != null) {
            pooled.decrementAndGet();
            return r;
        }
        try {
            return new Reader(connect(url, false));
        } catch (SQLException e) {
            throw fail("open a read connection", e);
        }
    }

    private void release(Reader r) {
        if (r.broken || closed || pooled.get() >= MAX_POOLED_READERS) {
            closeQuietly(r.conn);
            return;
        }
        pooled.incrementAndGet();
        readers.offer(r);
        if (closed && readers.remove(r)) {
            closeQuietly(r.conn);
        }
    }

    private static void closeQuietly(Connection c) {
        if (c != null) {
            try {
                c.close();
            } catch (SQLException ignored) {
                // closing: nothing to do
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Reader r; (r = readers.poll()) != null; ) {
            closeQuietly(r.conn);
        }
        synchronized (writeLock) {
            closeQuietly(writer);
        }
    }
}
