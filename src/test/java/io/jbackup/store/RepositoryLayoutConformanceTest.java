package io.jbackup.store;

import io.jbackup.catalog.SqliteCatalog;
import io.jbackup.engine.OverlayFiles;
import io.jbackup.schedule.RunLog;
import io.jbackup.store.layout.RepositoryLayout;
import io.jbackup.store.layout.RepositoryLayout.Kind;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link RepositoryLayout} names what today's code writes: the same paths as the store's own path builders, and a
 * real repository (encrypted, with backups, a bad and a protected one, a disk lock) holds nothing it cannot parse.
 * This keeps the coming rewiring of the store onto the layout from changing the format.
 */
class RepositoryLayoutConformanceTest {
    static final int CS = 64 * 1024;
    static final String PACK = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

    @TempDir
    Path tmp;

    @Test
    void sameNamesAsTheStoreBuilds() {
        Path r = tmp;
        assertEquals(PackFormat.path(r, PACK), RepositoryLayout.file(r, RepositoryLayout.pack(PACK)));
        assertEquals(IndexFile.path(r, "B1"), RepositoryLayout.file(r, RepositoryLayout.index("B1")));
        assertEquals(KeyFile.path(r), RepositoryLayout.file(r, RepositoryLayout.FIRST_KEY_SLOT));
        assertEquals(KeyFile.path(r, "a1b2c3d4"), RepositoryLayout.file(r, RepositoryLayout.keySlot("a1b2c3d4")));
        assertEquals(DiskLock.file(r, null, "d.img"),
            RepositoryLayout.file(r, RepositoryLayout.diskLock(null, "d.img")));
        assertEquals(DiskLock.file(r, "vm", "vda"), RepositoryLayout.file(r, RepositoryLayout.diskLock("vm", "vda")));
        assertEquals(RepositoryConfig.FILE_NAME, RepositoryLayout.CONFIG);
        assertEquals(SqliteCatalog.FILE_NAME, RepositoryLayout.CATALOG);
        assertEquals(PackFormat.DIR + "/", RepositoryLayout.PACKS);
        assertEquals(IndexFile.DIR + "/", RepositoryLayout.INDEXES);
        assertEquals(KeyFile.DIR + "/", RepositoryLayout.KEYS);
        assertEquals(KeyFile.DIR + "/" + KeyManager.LOCK_FILE, RepositoryLayout.KEY_LOCK);
        assertEquals(Repository.TMP_DIR + "/", RepositoryLayout.TMP);
        assertEquals(Repository.GC_LOCK, RepositoryLayout.GC_LOCK);
        assertEquals(RepositoryLock.LOCK_FILE, RepositoryLayout.REPOSITORY_LOCK);
        assertEquals(RepositoryLock.RECORD_DIR + "/", RepositoryLayout.LOCKS);
        assertEquals(RunLog.DIR + "/", RepositoryLayout.LOGS);
        assertEquals(OverlayFiles.defaultDir(r), RepositoryLayout.file(r, RepositoryLayout.OVERLAYS));
        assertEquals(r.resolve(PACK + ".idx").getFileName().toString(),
            Path.of(RepositoryLayout.index(PACK)).getFileName().toString());
        for (String s : List.of(PACK, "abc", PACK.toUpperCase(), PACK + "00")) {
            assertEquals(PackFormat.isName(s), RepositoryLayout.isPackName(s), s);
        }
        String bad = RepositoryLayout.badMarker("B1");
        assertTrue(bad.endsWith(Repository.BAD_SUFFIX));
        assertTrue(RepositoryLayout.keepMarker("B1").endsWith(Repository.KEEP_SUFFIX));
        assertTrue(RepositoryLayout.deletedIndex("B1").endsWith(Repository.DELETED_SUFFIX));
    }

    @Test
    void everyFileOfARealRepositoryParses() throws Exception {
        Path dir = tmp.resolve("repo");
        List<String> ids = new ArrayList<>();
        try (Repository repo = Repository.init(dir, new RepositoryOptions(CS, Encryption.AES_256_GCM, 1, 1 << 20),
                "secret".toCharArray());
             FileMutex disk = DiskLock.acquire(dir, "vm1", "vda", "test", Duration.ZERO, () -> false)) {
            for (int b = 0; b < 3; b++) {
                try (BackupWriter w = repo.beginBackup(BackupSpec.full(b == 0 ? null : "vm1", "vda", 4L * CS))) {
                    for (int c = 0; c < 4; c++) {
                        w.putChunk(c, Data.chunk(b * 10 + c, CS), CS).join();
                    }
                    ids.add(w.commit().id());
                }
            }
            repo.markBad(ids.get(0), "test");
            repo.setProtected(ids.get(1), true, "test");

            Set<Kind> kinds = EnumSet.noneOf(Kind.class);
            List<String> strangers = new ArrayList<>();
            try (Stream<Path> s = Files.walk(dir)) {
                for (Path p : (Iterable<Path>) s.filter(Files::isRegularFile)::iterator) {
                    String key = dir.relativize(p).toString();
                    RepositoryLayout.parse(key).ifPresentOrElse(e -> kinds.add(e.kind()), () -> strangers.add(key));
                }
            }
            assertEquals(List.of(), strangers, "files the layout does not name");
            assertEquals(EnumSet.of(Kind.CONFIG, Kind.KEY_SLOT, Kind.CATALOG, Kind.PACK, Kind.INDEX, Kind.BAD_MARKER,
                Kind.KEEP_MARKER, Kind.REPOSITORY_LOCK, Kind.LOCK_RECORD, Kind.DISK_LOCK), kinds);
            for (String id : ids) {
                assertTrue(Files.isRegularFile(RepositoryLayout.file(dir, RepositoryLayout.index(id))), id);
            }
        }
    }
}
