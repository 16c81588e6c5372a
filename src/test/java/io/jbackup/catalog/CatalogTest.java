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
}
