package io.jbackup.catalog;

import io.jbackup.model.RepositoryException;

import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Instant;
import java.util.List;

/** The {@link RunLog} in SQLite: table {@code runs}. */
final class SqliteRunLog implements RunLog {
    private final SqliteDb db;

    SqliteRunLog(SqliteDb db) {
        this.db = db;
    }

    @Override
    public long startRun(String command, String owner) throws RepositoryException {
        return db.withWriter("record a run", c -> {
            try (PreparedStatement ps = c.prepareStatement(
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
            }
        });
    }

    @Override
    public void finishRun(long runId, String status, String message) throws RepositoryException {
        db.updateOne("finish run " + runId, "UPDATE runs SET finished_ms = ?, status = ?, message = ? WHERE id = ?",
            ps -> {
                ps.setLong(1, System.currentTimeMillis());
                ps.setString(2, status);
                ps.setString(3, message);
                ps.setLong(4, runId);
            });
    }

    @Override
    public List<Run> runs(int limit) throws RepositoryException {
        return db.queryList("SELECT id, command, started_ms, finished_ms, status, owner, message FROM runs "
            + "ORDER BY id DESC LIMIT ?", ps -> ps.setInt(1, limit), rs -> {
                long f = rs.getLong(4);
                boolean none = rs.wasNull();
                return new Run(rs.getLong(1), rs.getString(2), Instant.ofEpochMilli(rs.getLong(3)),
                    none ? null : Instant.ofEpochMilli(f), rs.getString(5), rs.getString(6), rs.getString(7));
            });
    }
}
