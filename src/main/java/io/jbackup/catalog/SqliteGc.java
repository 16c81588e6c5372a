package io.jbackup.catalog;

import io.jbackup.model.RepositoryException;

import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;

/**
 * The {@link GcCatalog} in SQLite: condemned chunks move from {@code chunks} to {@code gc_condemned} (same columns)
 * and back; pack usage is counted from {@code chunks} per {@code packs} row.
 */
final class SqliteGc implements GcCatalog {
    private final SqliteDb db;

    SqliteGc(SqliteDb db) {
        this.db = db;
    }

    @Override
    public long maxPackId() throws RepositoryException {
        return db.queryOne("SELECT coalesce(max(id), 0) FROM packs", ps -> { }, rs -> rs.getLong(1)).orElse(0L);
    }

    @Override
    public void forEachChunkUpTo(long maxPackId, ChunkIndex.ChunkVisitor v) throws RepositoryException {
        db.stream("list chunks", "SELECT c.digest, p.name, c.offset, c.length, c.raw_length "
            + "FROM chunks c JOIN packs p ON p.id = c.pack_id WHERE c.pack_id <= ?", ps -> ps.setLong(1, maxPackId),
            rs -> v.visit(rs.getBytes(1), SqliteChunkIndex.location(rs, 2)));
    }

    @Override
    public int condemn(List<byte[]> digests) throws RepositoryException {
        return move("condemn chunks", "chunks", "gc_condemned", digests, true);
    }

    @Override
    public boolean isCondemned(byte[] digest) throws RepositoryException {
        return db.queryOne("SELECT 1 FROM gc_condemned WHERE digest = ?", ps -> ps.setBytes(1, digest), rs -> true)
            .isPresent();
    }

    @Override
    public int resurrect(List<byte[]> digests) throws RepositoryException {
        return move("resurrect chunks", "gc_condemned", "chunks", digests, false);
    }

    /**
     * Moves the rows of {@code digests} from table {@code from} to {@code to} (a row already in {@code to} is kept),
     * in one transaction; counts the rows inserted ({@code countInserted}) or those deleted from {@code from}.
     */
    private int move(String what, String from, String to, List<byte[]> digests, boolean countInserted)
        throws RepositoryException {
        return db.write(what, c -> {
            int n = 0;
            try (PreparedStatement ins = c.prepareStatement("INSERT OR IGNORE INTO " + to
                + " SELECT digest, pack_id, offset, length, raw_length FROM " + from + " WHERE digest = ?");
                 PreparedStatement del = c.prepareStatement("DELETE FROM " + from + " WHERE digest = ?")) {
                for (byte[] d : digests) {
                    ins.setBytes(1, d);
                    int inserted = ins.executeUpdate();
                    del.setBytes(1, d);
                    int deleted = del.executeUpdate();
                    n += countInserted ? inserted : deleted;
                }
            }
            return n;
        });
    }

    @Override
    public int resurrectAll() throws RepositoryException {
        return db.write("resurrect condemned chunks", c -> {
            try (Statement s = c.createStatement()) {
                s.executeUpdate("INSERT OR IGNORE INTO chunks SELECT digest, pack_id, offset, length, raw_length "
                    + "FROM gc_condemned");
                return s.executeUpdate("DELETE FROM gc_condemned");
            }
        });
    }

    @Override
    public long condemnedCount() throws RepositoryException {
        return db.queryOne("SELECT count(*) FROM gc_condemned", ps -> { }, rs -> rs.getLong(1)).orElse(0L);
    }

    @Override
    public List<PackUsage> packUsage(long maxPackId, int headerBytes, int footerEntryBytes, int trailerBytes)
        throws RepositoryException {
        return db.queryList("SELECT p.name, p.size, p.chunk_count, count(c.digest), coalesce(sum(c.length), 0) "
            + "FROM packs p LEFT JOIN chunks c ON c.pack_id = p.id WHERE p.id <= ? GROUP BY p.id ORDER BY p.id",
            ps -> ps.setLong(1, maxPackId), rs -> new PackUsage(rs.getString(1), rs.getLong(2), rs.getInt(3),
                rs.getLong(2) - headerBytes - (long) footerEntryBytes * rs.getInt(3) - trailerBytes, rs.getLong(4),
                rs.getLong(5)));
    }

    @Override
    public List<ChunkRow> chunksOfPack(String name) throws RepositoryException {
        return db.queryList("SELECT c.digest, c.offset, c.length, c.raw_length FROM chunks c JOIN packs p "
            + "ON p.id = c.pack_id WHERE p.name = ? ORDER BY c.offset", ps -> ps.setString(1, name),
            rs -> new ChunkRow(rs.getBytes(1), rs.getLong(2), rs.getInt(3), rs.getInt(4)));
    }

    @Override
    public void releasePack(String name) throws RepositoryException {
        db.write("release pack " + name, c -> {
            long packId;
            try (PreparedStatement ps = c.prepareStatement("SELECT id FROM packs WHERE name = ?")) {
                ps.setString(1, name);
                try (ResultSet rs = ps.executeQuery()) {
                    if (!rs.next()) {
                        return null;
                    }
                    packId = rs.getLong(1);
                }
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM chunks WHERE pack_id = ?")) {
                ps.setLong(1, packId);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    if (rs.getLong(1) != 0) {
                        throw new SQLException("pack " + name + " still holds " + rs.getLong(1)
                            + " live chunks; it cannot be deleted");
                    }
                }
            }
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM gc_condemned WHERE pack_id = ?")) {
                ps.setLong(1, packId);
                ps.executeUpdate();
            }
            return null;
        });
    }

    @Override
    public void deletePack(String name) throws RepositoryException {
        db.updateOne("delete pack " + name, "DELETE FROM packs WHERE name = ? AND NOT EXISTS (SELECT 1 FROM chunks c "
            + "WHERE c.pack_id = packs.id)", ps -> ps.setString(1, name));
    }
}
