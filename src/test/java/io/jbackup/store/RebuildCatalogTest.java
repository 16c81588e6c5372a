package io.jbackup.store;

import io.jbackup.catalog.SqliteCatalog;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.RepositoryException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Tag("reliability")
class RebuildCatalogTest {
    static final int CS = 64 * 1024;
    static final long SIZE = 50L * CS + 7;

    @TempDir
    Path tmp;

    @Test
    void deletedCatalogIsRebuiltFromPacksAndIndexesAndRestoresBitExact() throws Exception {
        Path dir = tmp.resolve("repo");
        OpenOptions o = OpenOptions.defaults().withPassphrase("pw");
        List<BackupInfo> before;
        try (Repository repo = Repository.init(dir, new RepositoryOptions(CS, Encryption.AES_256_GCM, 3, 1 << 20),
            "pw".toCharArray())) {
            String parent = null;
            for (int v = 1; v <= 3; v++) {
                ImageModel m = new ImageModel(SIZE, CS, v, 16);
                ImageModel pm = v == 1 ? null : new ImageModel(SIZE, CS, v - 1, 16);
                try (BackupWriter w = repo.beginBackup(new BackupSpec("vm", "vda", SIZE, 0, parent,
                    parent == null ? "full" : "incremental", java.util.Map.of("version", "" + v), "note " + v,
                    java.util.Map.of("uri", "nbd+unix:///vda")))) {
                    for (long i = 0; i < m.chunkCount(); i++) {
                        if (pm == null || m.differs(pm, i)) {
                            w.putChunk(i, m.chunk(i), m.length(i));
                        }
                    }
                    parent = w.commit().id();
                }
            }
            repo.markBad(parent, "suspicious");
            before = repo.listBackups();
            assertTrue(repo.catalog().packs().size() > 2, "several packs");
        }
        for (String f : List.of("catalog.db", "catalog.db-wal", "catalog.db-shm")) {
            Files.deleteIfExists(dir.resolve(f));
        }
        RepositoryException e = assertThrows(RepositoryException.class, () -> Repository.open(dir, o));
        assertTrue(e.getMessage().contains("repair --rebuild-catalog"), e.getMessage());

        RebuildReport report = Repository.rebuildCatalog(dir, o);
        assertEquals(3, report.backups());
        assertEquals(1, report.badBackups());
        assertTrue(report.problems().isEmpty(), report.problems().toString());

        try (Repository repo = Repository.open(dir, o)) {
            assertEquals(before, repo.listBackups(), "same backups, states, labels, notes, sources and stats");
            assertEquals("suspicious", repo.badReason(before.get(2).id()));
            for (BackupInfo b : repo.listBackups()) {
                ImageModel m = new ImageModel(SIZE, CS, Long.parseLong(b.labels().get("version")), 16);
                try (BackupReader r = repo.openBackup(b.id())) {
                    assertArrayEquals(m.sha256(), ImageModel.restoredSha256(r), b.id());
                }
            }
            assertTrue(repo.verify(VerifyOptions.all()).ok());
        }
        // rebuilding again keeps the previous catalog aside
        RebuildReport again = Repository.rebuildCatalog(dir, o);
        assertTrue(again.oldCatalog() != null && Files.exists(Path.of(again.oldCatalog())), again.toString());
        assertTrue(Files.exists(dir.resolve(SqliteCatalog.FILE_NAME)));
    }

    @Test
    void damagedFooterFallsBackToScanningRecords() throws Exception {
        Path dir = tmp.resolve("repo");
        String id;
        try (Repository repo = Repository.init(dir, new RepositoryOptions(CS, Encryption.NONE, 1), null)) {
            ImageModel m = new ImageModel(8L * CS, CS, 1, 0);
            try (BackupWriter w = repo.beginBackup(BackupSpec.full(null, "d", m.size()))) {
                for (long i = 0; i < m.chunkCount(); i++) {
                    w.putChunk(i, m.chunk(i), m.length(i));
                }
                id = w.commit().id();
            }
        }
        Path pack;
        try (var s = Files.walk(dir.resolve("packs"))) {
            pack = s.filter(p -> p.toString().endsWith(".pack")).findFirst().orElseThrow();
        }
        byte[] b = Files.readAllBytes(pack);
        b[b.length - 40] ^= 1; // inside the footer MAC
        Files.write(pack, b);
        Files.delete(dir.resolve("catalog.db"));
        RebuildReport r = Repository.rebuildCatalog(dir, OpenOptions.defaults());
        assertEquals(1, r.problems().size(), r.toString());
        assertTrue(r.problems().get(0).contains("footer") && r.problems().get(0).contains("scanning"), r.toString());
        try (Repository repo = Repository.open(dir, OpenOptions.defaults()); BackupReader br = repo.openBackup(id)) {
            assertArrayEquals(new ImageModel(8L * CS, CS, 1, 0).sha256(), ImageModel.restoredSha256(br));
        }
    }
}
