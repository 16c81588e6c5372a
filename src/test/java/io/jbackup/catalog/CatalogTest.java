package io.jbackup.catalog;

import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;
import io.jbackup.model.RepositoryException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Instant;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CatalogTest {
    @TempDir
    Path tmp;

    private static byte[] digest(int n) {
        byte[] d = new byte[32];
        d[0] = (byte) n;
        d[31] = (byte) (n >> 8);
        return d;
    }

    @Test
    void migratesToTheCurrentSchemaInWalModeAndRefusesForeignOrNewerCatalogs() throws Exception {
        Path db = tmp.resolve("catalog.db");
        SqliteCatalog.open(db, "repo-1", true).close();
        try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + db); Statement s = c.createStatement()) {
            try (ResultSet rs = s.executeQuery("PRAGMA user_version")) {
                assertEquals(Migrations.ALL.size(), rs.getInt(1));
            }
            try (ResultSet rs = s.executeQuery("PRAGMA journal_mode")) {
                assertEquals("wal", rs.getString(1));
            }
        }
        RepositoryException e = assertThrows(RepositoryException.class, () -> SqliteCatalog.open(db, "repo-2", false));
        assertTrue(e.getMessage().contains("belongs to repository repo-1"), e.getMessage());
        try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + db); Statement s = c.createStatement()) {
            s.execute("PRAGMA user_version=" + (Migrations.ALL.size() + 1));
        }
        e = assertThrows(RepositoryException.class, () -> SqliteCatalog.open(db, "repo-1", false));
        assertTrue(e.getMessage().contains("upgrade jbackup"), e.getMessage());
        e = assertThrows(RepositoryException.class, () -> SqliteCatalog.open(tmp.resolve("none.db"), "x", false));
        assertTrue(e.getMessage().contains("repair --rebuild-catalog"), e.getMessage());
    }

    @Test
    void packsChunksAndBackupsRoundTrip() throws Exception {
        try (Catalog c = SqliteCatalog.open(tmp.resolve("catalog.db"), "r", true)) {
            c.addPack("aa".repeat(16), 1000, List.of(new ChunkRow(digest(1), 32, 100, 200),
                new ChunkRow(digest(2), 132, 50, 60)));
            // idempotent, and a digest already known keeps its first location
            c.addPack("aa".repeat(16), 1000, List.of(new ChunkRow(digest(1), 32, 100, 200)));
            c.addPack("bb".repeat(16), 500, List.of(new ChunkRow(digest(1), 32, 99, 200)));
            assertEquals(new ChunkLocation("aa".repeat(16), 32, 100, 200), c.findChunk(digest(1)));
            assertTrue(c.hasChunk(digest(2)));
            assertFalse(c.hasChunk(digest(3)));
            assertNull(c.findChunk(digest(3)));
            assertEquals(2, c.chunkCount());
            assertEquals(2, c.packs().size());
            List<byte[]> seen = new java.util.ArrayList<>();
            c.forEachChunk((d, loc) -> seen.add(d));
            assertArrayEquals(digest(1), seen.get(0));

            Instant t = Instant.ofEpochMilli(1_800_000_000_000L);
            BackupInfo b = new BackupInfo("20260101-000000-abcdef", null, "disk.img", "full", null, t, null, 4096,
                65536, BackupInfo.INCOMPLETE, Map.of("a", "1", "b", "2"), "n", Map.of("uri", "nbd://h/e"),
                BackupStats.EMPTY);
            c.insertBackup(b, "uuid-1", "host/1/2");
            assertThrows(Catalog.DuplicateBackupIdException.class, () -> c.insertBackup(b, "uuid-2", "x"));
            assertEquals(Map.of(b.id(), "host/1/2"), c.incompleteBackups());
            assertTrue(c.latestComplete(null, "disk.img", null).isEmpty());
            BackupStats st = new BackupStats(1, 1, 0, 0, 4096, 0, 0, 100);
            c.completeBackup(b.id(), t.plusSeconds(5), st);
            BackupInfo done = c.latestComplete(null, "disk.img", null).orElseThrow();
            assertEquals(b.completedAt(t.plusSeconds(5), st), done);
            assertEquals(List.of(done), c.backupsByPrefix("2026"));
            assertTrue(c.backupsByPrefix("2026_").isEmpty(), "LIKE wildcards are escaped");
            assertTrue(c.setState(b.id(), BackupInfo.BAD, "why"));
            assertEquals("why", c.stateReason(b.id()));
            long run = c.startRun("verify", "me");
            c.finishRun(run, "ok", "fine");
            assertEquals("ok", c.runs(1).get(0).status());
            c.deleteBackup(b.id());
            assertTrue(c.backups().isEmpty());
        }
    }
}
