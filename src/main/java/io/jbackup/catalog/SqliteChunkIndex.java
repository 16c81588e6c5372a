package io.jbackup.catalog;

import io.jbackup.model.RepositoryException;

import java.nio.ByteBuffer;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Instant;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The {@link ChunkIndex} in SQLite: tables {@code packs}, {@code chunks} (digest → pack id, offset, lengths) and
 * {@code damaged_chunks}; condemned rows ({@code gc_condemned}, see {@link SqliteGc}) are found for reads, never
 * for deduplication. Lookups run on pooled read connections.
 */
final class SqliteChunkIndex implements ChunkIndex {
    /** The most digests one batch lookup binds ({@code IN (?, ...)}); SQLite allows 32766 parameters. */
    static final int MAX_BATCH = 512;
    /** {@code IN} queries for 1, 2, 4, ... {@link #MAX_BATCH} digests: a batch is padded to the next size. */
    private static final List<String> IN_QUERIES = inQueries();
    private static final String FIND = "SELECT p.name, c.offset, c.length, c.raw_length FROM chunks c "
        + "JOIN packs p ON p.id = c.pack_id WHERE c.digest = ?1 UNION ALL "
        + "SELECT p.name, g.offset, g.length, g.raw_length FROM gc_condemned g "
        + "JOIN packs p ON p.id = g.pack_id WHERE g.digest = ?1 LIMIT 1";
    private static final String HAS = "SELECT 1 FROM chunks WHERE digest = ?";

    private final SqliteDb db;

    SqliteChunkIndex(SqliteDb db) {
        this.db = db;
    }

    private static List<String> inQueries() {
        List<String> l = new ArrayList<>();
        for (int n = 1; n <= MAX_BATCH; n *= 2) {
            l.add("SELECT digest FROM chunks WHERE digest IN (" + String.join(", ", Collections.nCopies(n, "?")) + ")");
        }
        return List.copyOf(l);
    }

    @Override
    public ChunkLocation findChunk(byte[] digest) throws RepositoryException {
        return lookup(FIND, digest, rs -> location(rs, 1), null);
    }

    /** The first row of the hot-path query {@code sql} for {@code digest}, mapped, or {@code absent}. */
    private <T> T lookup(String sql, byte[] digest, SqliteDb.RowMapper<T> found, T absent) throws RepositoryException {
        return db.read("look up a chunk", r -> {
            PreparedStatement ps = r.prepare(sql);
            ps.setBytes(1, digest);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? found.map(rs) : absent;
            }
        });
    }

    /** The location in columns {@code first} (pack name), offset, length, raw length of the current row. */
    static ChunkLocation location(ResultSet rs, int first) throws java.sql.SQLException {
        return new ChunkLocation(rs.getString(first), rs.getLong(first + 1), rs.getInt(first + 2), rs.getInt(first + 3));
    }

    @Override
    public boolean hasChunk(byte[] digest) throws RepositoryException {
        return lookup(HAS, digest, rs -> true, false);
    }

    @Override
    public BitSet hasChunks(List<byte[]> digests) throws RepositoryException {
        BitSet known = new BitSet(digests.size());
        if (digests.isEmpty()) {
            return known;
        }
        return db.read("look up chunks", r -> {
            for (int from = 0; from < digests.size(); from += MAX_BATCH) {
                int to = Math.min(digests.size(), from + MAX_BATCH);
                Map<ByteBuffer, List<Integer>> positions = new HashMap<>();
                for (int i = from; i < to; i++) {
                    positions.computeIfAbsent(ByteBuffer.wrap(digests.get(i)), k -> new ArrayList<>(1)).add(i);
                }
                int size = Integer.highestOneBit(to - from - 1) << 1;
                size = Math.max(1, size);
                PreparedStatement ps = r.prepare(IN_QUERIES.get(Integer.numberOfTrailingZeros(size)));
                for (int k = 0; k < size; k++) {
                    // padding repeats the last digest: the answer is the same
                    ps.setBytes(k + 1, digests.get(Math.min(from + k, to - 1)));
                }
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        for (int i : positions.getOrDefault(ByteBuffer.wrap(rs.getBytes(1)), List.of())) {
                            known.set(i);
                        }
                    }
                }
            }
            return known;
        });
    }

    @Override
    public void addPack(String name, long size, List<ChunkRow> chunks) throws RepositoryException {
        writePack(name, size, chunks, "INSERT OR IGNORE INTO chunks (digest, pack_id, offset, length, raw_length) "
            + "VALUES (?, ?, ?, ?, ?)", "register pack ");
    }

    @Override
    public void relocate(String name, long size, List<ChunkRow> chunks) throws RepositoryException {
        writePack(name, size, chunks, "INSERT INTO chunks (digest, pack_id, offset, length, raw_length) VALUES "
            + "(?, ?, ?, ?, ?) ON CONFLICT (digest) DO UPDATE SET pack_id = excluded.pack_id, offset = excluded.offset, "
            + "length = excluded.length, raw_length = excluded.raw_length", "relocate chunks to pack ");
    }

    /** Registers pack {@code name} (if new) and writes its chunk rows with {@code chunkSql}, in one transaction. */
    private void writePack(String name, long size, List<ChunkRow> chunks, String chunkSql, String what)
        throws RepositoryException {
        db.write(what + name, c -> {
            try (PreparedStatement ps = c.prepareStatement(
                "INSERT OR IGNORE INTO packs (name, size, chunk_count, created_ms) VALUES (?, ?, ?, ?)")) {
                ps.setString(1, name);
                ps.setLong(2, size);
                ps.setInt(3, chunks.size());
                ps.setLong(4, System.currentTimeMillis());
                ps.executeUpdate();
            }
            long packId;
            try (PreparedStatement ps = c.prepareStatement("SELECT id FROM packs WHERE name = ?")) {
                ps.setString(1, name);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    packId = rs.getLong(1);
                }
            }
            try (PreparedStatement ps = c.prepareStatement(chunkSql)) {
                for (ChunkRow row : chunks) {
                    ps.setBytes(1, row.digest());
                    ps.setLong(2, packId);
                    ps.setLong(3, row.offset());
                    ps.setInt(4, row.length());
                    ps.setInt(5, row.rawLength());
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            // a chunk stored again is healed: backups that use it read the new copy
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM damaged_chunks WHERE digest = ?")) {
                for (ChunkRow row : chunks) {
                    ps.setBytes(1, row.digest());
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            return null;
        });
    }

    @Override
    public int forgetPack(String name) throws RepositoryException {
        return db.write("forget pack " + name, c -> {
            int n = 0;
            for (String table : new String[] {"chunks", "gc_condemned"}) {
                try (PreparedStatement ps = c.prepareStatement("DELETE FROM " + table
                    + " WHERE pack_id = (SELECT id FROM packs WHERE name = ?)")) {
                    ps.setString(1, name);
                    n += ps.executeUpdate();
                }
            }
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM packs WHERE name = ?")) {
                ps.setString(1, name);
                ps.executeUpdate();
            }
            return n;
        });
    }

    @Override
    public boolean hasPack(String name) throws RepositoryException {
        return db.queryOne("SELECT 1 FROM packs WHERE name = ?", ps -> ps.setString(1, name), rs -> true).isPresent();
    }

    @Override
    public List<PackRow> packs() throws RepositoryException {
        return db.queryList("SELECT name, size, chunk_count, created_ms FROM packs ORDER BY id", ps -> { },
            rs -> new PackRow(rs.getString(1), rs.getLong(2), rs.getInt(3), Instant.ofEpochMilli(rs.getLong(4))));
    }

    @Override
    public long chunkCount() throws RepositoryException {
        return db.queryOne("SELECT count(*) FROM chunks", ps -> { }, rs -> rs.getLong(1)).orElse(0L);
    }

    @Override
    public void forEachChunk(ChunkVisitor v) throws RepositoryException {
        db.stream("list chunks", "SELECT digest, name, offset, length, raw_length FROM ("
            + "SELECT c.digest, p.name, c.offset, c.length, c.raw_length, c.pack_id FROM chunks c "
            + "JOIN packs p ON p.id = c.pack_id UNION ALL "
            + "SELECT g.digest, p.name, g.offset, g.length, g.raw_length, g.pack_id FROM gc_condemned g "
            + "JOIN packs p ON p.id = g.pack_id) ORDER BY pack_id, offset", ps -> { },
            rs -> v.visit(rs.getBytes(1), location(rs, 2)));
    }

    @Override
    public void deleteChunks(List<byte[]> digests) throws RepositoryException {
        db.update("delete chunks", "DELETE FROM chunks WHERE digest = ?", digests, (ps, d) -> ps.setBytes(1, d));
        db.update("delete chunks", "DELETE FROM gc_condemned WHERE digest = ?", digests, (ps, d) -> ps.setBytes(1, d));
    }

    @Override
    public boolean quarantine(byte[] digest, ChunkLocation at, String problem) throws RepositoryException {
        return db.write("quarantine a damaged chunk", c -> {
            boolean moved = false;
            for (String table : new String[] {"chunks", "gc_condemned"}) {
                try (PreparedStatement del = c.prepareStatement("DELETE FROM " + table + " WHERE digest = ? "
                    + "AND offset = ? AND pack_id = (SELECT id FROM packs WHERE name = ?)")) {
                    del.setBytes(1, digest);
                    del.setLong(2, at.offset());
                    del.setString(3, at.pack());
                    moved |= del.executeUpdate() > 0;
                }
            }
            if (moved) {
                try (PreparedStatement ins = c.prepareStatement("INSERT OR REPLACE INTO damaged_chunks "
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
            return moved;
        });
    }

    private static final String DAMAGED = "pack, offset, length, raw_length, problem, found_ms FROM damaged_chunks";

    @Override
    public Optional<DamagedChunk> damagedChunk(byte[] digest) throws RepositoryException {
        return db.queryOne("SELECT " + DAMAGED + " WHERE digest = ?", ps -> ps.setBytes(1, digest),
            rs -> damaged(rs, 1));
    }

    private static DamagedChunk damaged(ResultSet rs, int first) throws java.sql.SQLException {
        return new DamagedChunk(location(rs, first), rs.getString(first + 4),
            Instant.ofEpochMilli(rs.getLong(first + 5)));
    }

    @Override
    public Map<byte[], DamagedChunk> damagedChunks() throws RepositoryException {
        Map<byte[], DamagedChunk> m = new LinkedHashMap<>();
        for (Object[] row : db.queryList("SELECT digest, " + DAMAGED + " ORDER BY pack, offset", ps -> { },
            rs -> new Object[] {rs.getBytes(1), damaged(rs, 2)})) {
            m.put((byte[]) row[0], (DamagedChunk) row[1]);
        }
        return m;
    }

    @Override
    public boolean reinstate(byte[] digest) throws RepositoryException {
        return db.write("reinstate a chunk", c -> {
            try (PreparedStatement ins = c.prepareStatement("INSERT OR IGNORE INTO chunks "
                + "SELECT d.digest, p.id, d.offset, d.length, d.raw_length FROM damaged_chunks d "
                + "JOIN packs p ON p.name = d.pack WHERE d.digest = ?");
                 PreparedStatement del = c.prepareStatement("DELETE FROM damaged_chunks WHERE digest = ?")) {
                ins.setBytes(1, digest);
                boolean done = ins.executeUpdate() > 0;
                del.setBytes(1, digest);
                del.executeUpdate();
                return done;
            }
        });
    }
}
