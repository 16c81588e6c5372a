package io.jbackup.catalog;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.model.AttachmentInfo;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;
import io.jbackup.model.RepositoryException;

import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Types;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/** The {@link BackupCatalog} in SQLite: tables {@code disks}, {@code backups}, {@code labels}
 * and {@code attachments}. */
final class SqliteBackups implements BackupCatalog {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String BACKUP_COLUMNS = "b.id, d.vm, d.name, b.type, b.parent_id, b.created_ms, "
        + "b.completed_ms, b.image_size, b.chunk_size, b.state, b.note, b.source_json, b.chunks_total, b.chunks_new, "
        + "b.chunks_dedup, b.chunks_zero, b.bytes_new, b.bytes_dedup, b.bytes_zero, b.bytes_stored "
        + "FROM backups b JOIN disks d ON d.id = b.disk_id ";

    private final SqliteDb db;

    SqliteBackups(SqliteDb db) {
        this.db = db;
    }

    @Override
    public void insertBackup(BackupInfo b, String uuid, String owner) throws RepositoryException {
        boolean[] duplicate = {false};
        try {
            db.writeRaw(c -> {
                long diskId = diskId(c, b.vm(), b.disk());
                try (PreparedStatement ps = c.prepareStatement("INSERT INTO backups (id, uuid, disk_id, type, "
                    + "parent_id, created_ms, completed_ms, image_size, chunk_size, state, note, source_json, "
                    + "chunks_total, chunks_new, chunks_dedup, chunks_zero, bytes_new, bytes_dedup, bytes_zero, "
                    + "bytes_stored, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    // a backup of that id already: no row, told apart from every other failure without its message
                    + "ON CONFLICT (id) DO NOTHING")) {
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
                    if (ps.executeUpdate() == 0) {
                        duplicate[0] = true;
                        return null;
                    }
                }
                try (PreparedStatement ps = c.prepareStatement(
                    "INSERT INTO labels (backup_id, key, value) VALUES (?, ?, ?)")) {
                    for (Map.Entry<String, String> e : new TreeMap<>(b.labels()).entrySet()) {
                        ps.setString(1, b.id());
                        ps.setString(2, e.getKey());
                        ps.setString(3, e.getValue());
                        ps.addBatch();
                    }
                    ps.executeBatch();
                }
                return null;
            });
        } catch (SQLException e) {
            throw db.fail("insert backup " + b.id(), e);
        }
        if (duplicate[0]) {
            throw new DuplicateBackupIdException(b.id());
        }
    }

    private static long diskId(java.sql.Connection c, String vm, String disk) throws SQLException {
        String v = vm == null ? "" : vm;
        try (PreparedStatement ps = c.prepareStatement("INSERT OR IGNORE INTO disks (vm, name) VALUES (?, ?)")) {
            ps.setString(1, v);
            ps.setString(2, disk);
            ps.executeUpdate();
        }
        try (PreparedStatement ps = c.prepareStatement("SELECT id FROM disks WHERE vm = ? AND name = ?")) {
            ps.setString(1, v);
            ps.setString(2, disk);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        }
    }

    @Override
    public void setAttachments(String backupId, List<AttachmentInfo> attachments) throws RepositoryException {
        db.write("record the attachments of backup " + backupId, c -> {
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM attachments WHERE backup_id = ?")) {
                ps.setString(1, backupId);
                ps.executeUpdate();
            }
            try (PreparedStatement ps = c.prepareStatement(
                "INSERT INTO attachments (backup_id, name, size) VALUES (?, ?, ?)")) {
                for (AttachmentInfo a : attachments) {
                    ps.setString(1, backupId);
                    ps.setString(2, a.name());
                    ps.setLong(3, a.size());
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            return null;
        });
    }

    @Override
    public List<AttachmentInfo> attachments(String backupId) throws RepositoryException {
        return db.queryList("SELECT name, size FROM attachments WHERE backup_id = ? ORDER BY name",
            ps -> ps.setString(1, backupId), rs -> new AttachmentInfo(rs.getString(1), rs.getLong(2)));
    }

    @Override
    public void completeBackup(String id, Instant completed, BackupStats stats) throws RepositoryException {
        int n = db.updateOne("complete backup " + id, "UPDATE backups SET state = 'complete', completed_ms = ?, "
            + "chunks_total = ?, chunks_new = ?, chunks_dedup = ?, chunks_zero = ?, bytes_new = ?, bytes_dedup = ?, "
            + "bytes_zero = ?, bytes_stored = ?, owner = NULL WHERE id = ?", ps -> {
                ps.setLong(1, completed.toEpochMilli());
                setStats(ps, 2, stats);
                ps.setString(10, id);
            });
        if (n != 1) {
            throw new RepositoryException("backup " + id + " vanished from catalog " + db.file()
                + " while being committed");
        }
    }

    @Override
    public boolean setState(String id, String state, String reason) throws RepositoryException {
        return db.updateOne("mark backup " + id + " " + state,
            "UPDATE backups SET state = ?, state_reason = ? WHERE id = ? AND state <> 'incomplete'", ps -> {
                ps.setString(1, state);
                ps.setString(2, reason);
                ps.setString(3, id);
            }) == 1;
    }

    @Override
    public void deleteBackup(String id) throws RepositoryException {
        db.updateOne("delete backup " + id, "DELETE FROM backups WHERE id = ?", ps -> ps.setString(1, id));
    }

    @Override
    public String stateReason(String id) throws RepositoryException {
        return db.queryOne("SELECT state_reason FROM backups WHERE id = ?", ps -> ps.setString(1, id),
            rs -> rs.getString(1)).orElse(null);
    }

    @Override
    public Optional<BackupInfo> backup(String id) throws RepositoryException {
        List<BackupInfo> l = backups("WHERE b.id = ?", ps -> ps.setString(1, id));
        return l.isEmpty() ? Optional.empty() : Optional.of(l.get(0));
    }

    @Override
    public List<BackupInfo> backups() throws RepositoryException {
        return backups("", ps -> { });
    }

    @Override
    public List<BackupInfo> backupsByPrefix(String prefix) throws RepositoryException {
        String escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_");
        return backups("WHERE b.id LIKE ? ESCAPE '\\'", ps -> ps.setString(1, escaped + "%"));
    }

    @Override
    public Optional<BackupInfo> latestComplete(String vm, String disk, Instant notAfter) throws RepositoryException {
        List<BackupInfo> l = backups("WHERE d.vm = ? AND d.name = ? AND b.state = 'complete' AND b.created_ms <= ? "
            + "ORDER BY b.created_ms DESC, b.id DESC LIMIT 1", ps -> {
                ps.setString(1, vm == null ? "" : vm);
                ps.setString(2, disk);
                ps.setLong(3, notAfter == null ? Long.MAX_VALUE : notAfter.toEpochMilli());
            });
        return l.isEmpty() ? Optional.empty() : Optional.of(l.get(0));
    }

    @Override
    public Map<String, String> incompleteBackups() throws RepositoryException {
        return idMap("SELECT id, owner FROM backups WHERE state = 'incomplete' ORDER BY id");
    }

    /** The first two string columns of a query as an ordered map. */
    private Map<String, String> idMap(String sql) throws RepositoryException {
        Map<String, String> m = new LinkedHashMap<>();
        for (String[] row : db.queryList(sql, ps -> { }, rs -> new String[] {rs.getString(1), rs.getString(2)})) {
            m.put(row[0], row[1]);
        }
        return m;
    }

    private List<BackupInfo> backups(String where, SqliteDb.Binder binder) throws RepositoryException {
        String order = where.contains("ORDER BY") ? "" : " ORDER BY b.created_ms, b.id";
        List<BackupInfo> rows = db.queryList("SELECT " + BACKUP_COLUMNS + where + order, binder, rs -> {
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
        for (String[] l : db.queryList(labelSql, ps -> {
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

    @Override
    public boolean setProtected(String id, boolean protect, String reason) throws RepositoryException {
        return db.updateOne((protect ? "protect" : "unprotect") + " backup " + id,
            "UPDATE backups SET protected = ?, protect_reason = ? WHERE id = ? AND state <> 'incomplete'", ps -> {
                ps.setInt(1, protect ? 1 : 0);
                ps.setString(2, protect ? reason : null);
                ps.setString(3, id);
            }) == 1;
    }

    @Override
    public Map<String, String> protectedBackups() throws RepositoryException {
        return idMap("SELECT id, protect_reason FROM backups WHERE protected <> 0 ORDER BY id");
    }

    @Override
    public void setVerified(List<String> ids, Instant when, double samplePercent) throws RepositoryException {
        db.update("record verification", "UPDATE backups SET verified_ms = ?, verified_sample = ? WHERE id = ?", ids,
            (ps, id) -> {
                ps.setLong(1, when.toEpochMilli());
                ps.setDouble(2, samplePercent);
                ps.setString(3, id);
            });
    }

    @Override
    public Map<String, Verification> verifications() throws RepositoryException {
        Map<String, Verification> m = new HashMap<>();
        for (Object[] r : db.queryList("SELECT id, verified_ms, verified_sample FROM backups "
            + "WHERE verified_ms IS NOT NULL", ps -> { }, rs -> new Object[] {rs.getString(1), rs.getLong(2),
                rs.getDouble(3)})) {
            m.put((String) r[0], new Verification(Instant.ofEpochMilli((Long) r[1]), (Double) r[2]));
        }
        return m;
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
            throw new SQLException("bad source_json in catalog " + db.file() + ": " + s, e);
        }
    }
}
