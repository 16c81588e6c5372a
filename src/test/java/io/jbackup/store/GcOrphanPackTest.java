package io.jbackup.store;

import io.jbackup.catalog.PackRow;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A sealed pack whose catalog rows were never written (the catalog failed after the rename, e.g. on a full disk,
 * and no process died, so no crash recovery registers it): gc registers it and reclaims what no backup uses.
 */
@Tag("reliability")
class GcOrphanPackTest {
    @TempDir
    Path tmp;

    @Test
    void gcRegistersAndReclaimsASealedPackMissingFromTheCatalog() throws Exception {
        Path dir = tmp.resolve("repo");
        try (Repository r = Repository.init(dir, new RepositoryOptions(GcTest.CS, Encryption.NONE, 1, 1 << 20), null)) {
            String kept = GcTest.backup(r, "a", GcTest.range(1, 20));
            // a failed backup's pack: sealed, then its rows are lost
            try (BackupWriter w = r.beginBackup(BackupSpec.full("vm", "b", 20L * GcTest.CS))) {
                GcTest.put(w, 0, GcTest.range(100, 20));
                w.abort(); // seals what was written, so the chunks stay reusable
            }
            List<String> before = r.catalog().packs().stream().map(PackRow::name).toList();
            long files = GcTest.packFiles(dir);
            assertEquals(before.size(), files);
            String orphan = before.get(before.size() - 1);
            // as if registering it had failed: no chunk rows, no pack row
            PackReader.Contents c = PackReader.readFooter(r.packFile(orphan), orphan, r::metaMac, false);
            r.catalog().deleteChunks(c.entries().stream().map(io.jbackup.catalog.ChunkRow::digest).toList());
            r.catalog().deletePack(orphan);
            assertEquals(files - 1, r.catalog().packs().size());

            GcReport report = r.gc(GcOptions.defaults());
            assertTrue(report.packsDeleted() >= 1, report.toString());
            assertEquals(r.catalog().packs().size(), GcTest.packFiles(dir), "no pack file outside the catalog");
            assertTrue(r.catalog().packs().stream().noneMatch(p -> p.name().equals(orphan)));
            GcTest.assertRestores(r, kept, GcTest.range(1, 20));
        }
    }
}
