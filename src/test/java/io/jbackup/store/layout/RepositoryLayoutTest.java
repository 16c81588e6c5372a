package io.jbackup.store.layout;

import io.jbackup.store.layout.RepositoryLayout.Entry;
import io.jbackup.store.layout.RepositoryLayout.Kind;
import io.jbackup.store.layout.RepositoryLayout.Scope;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RepositoryLayoutTest {
    static final String PACK = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    static final String ID = "20261206-051500-9b0c3c1e";

    @Test
    void namesEveryObject() {
        assertEquals("packs/0f/" + PACK + ".pack", RepositoryLayout.pack(PACK));
        assertEquals("indexes/" + ID + ".idx", RepositoryLayout.index(ID));
        assertEquals("indexes/" + ID + ".bad", RepositoryLayout.badMarker(ID));
        assertEquals("manifests/" + ID + ".json", RepositoryLayout.manifest(ID));
        assertEquals("indexes/" + ID + ".keep", RepositoryLayout.keepMarker(ID));
        assertEquals("indexes/" + ID + ".deleted", RepositoryLayout.deletedIndex(ID));
        assertEquals("keys/a1b2c3d4.key", RepositoryLayout.keySlot("a1b2c3d4"));
        assertEquals("keys/repository.key", RepositoryLayout.keySlot("repository"));
        assertEquals("tmp/host-12-1700/3/", RepositoryLayout.tmpDir("host-12-1700", 3));
        assertEquals("locks/host-12-1700.json", RepositoryLayout.lockRecord("host-12-1700"));
        assertEquals("locks/disk-_--disk.img.lock", RepositoryLayout.diskLock(null, "disk.img"));
        assertEquals("locks/disk-vm1--vda.lock", RepositoryLayout.diskLock("vm1", "vda"));
        assertEquals("locks/task-job-nightly.lock", RepositoryLayout.taskLock("job:nightly"));
        assertEquals("logs/R1.log", RepositoryLayout.runLog("R1"));
        assertEquals("logs/R1.json", RepositoryLayout.runSummary("R1"));
        assertEquals("schedule/my_job.json", RepositoryLayout.scheduleState("my job"));
        assertEquals(Path.of("/srv/repo/packs/0f/" + PACK + ".pack"),
            RepositoryLayout.file(Path.of("/srv/repo"), RepositoryLayout.pack(PACK)));
    }

    @Test
    void parseInvertsEveryName() {
        Map<String, Entry> cases = Map.ofEntries(
            Map.entry("config.json", new Entry(Kind.CONFIG, "")),
            Map.entry("catalog.db", new Entry(Kind.CATALOG, "")),
            Map.entry("catalog.db-wal", new Entry(Kind.CATALOG, "")),
            Map.entry("keys/lock", new Entry(Kind.KEY_LOCK, "")),
            Map.entry("lock", new Entry(Kind.REPOSITORY_LOCK, "")),
            Map.entry("gc.lock", new Entry(Kind.GC_LOCK, "")),
            Map.entry("deletion.lease", new Entry(Kind.DELETION_LEASE, "")),
            Map.entry(RepositoryLayout.pack(PACK), new Entry(Kind.PACK, PACK)),
            Map.entry(RepositoryLayout.index(ID), new Entry(Kind.INDEX, ID)),
            Map.entry(RepositoryLayout.manifest(ID), new Entry(Kind.MANIFEST, ID)),
            Map.entry(RepositoryLayout.badMarker(ID), new Entry(Kind.BAD_MARKER, ID)),
            Map.entry(RepositoryLayout.keepMarker(ID), new Entry(Kind.KEEP_MARKER, ID)),
            Map.entry(RepositoryLayout.deletedIndex(ID), new Entry(Kind.DELETED_INDEX, ID)),
            Map.entry(RepositoryLayout.FIRST_KEY_SLOT, new Entry(Kind.KEY_SLOT, "repository")),
            Map.entry(RepositoryLayout.tmpDir("o", 1) + PACK + ".pack", new Entry(Kind.TMP, "o/1/" + PACK + ".pack")),
            Map.entry(RepositoryLayout.lockRecord("h-1-2"), new Entry(Kind.LOCK_RECORD, "h-1-2")),
            Map.entry(RepositoryLayout.diskLock("vm", "vda"), new Entry(Kind.DISK_LOCK, "vm--vda")),
            Map.entry(RepositoryLayout.taskLock("verify"), new Entry(Kind.TASK_LOCK, "verify")),
            Map.entry("overlays/vda@" + ID + ".overlay", new Entry(Kind.OVERLAY, "vda@" + ID + ".overlay")),
            Map.entry(RepositoryLayout.runLog("R"), new Entry(Kind.RUN_LOG, "R")),
            Map.entry(RepositoryLayout.runSummary("R"), new Entry(Kind.RUN_SUMMARY, "R")),
            Map.entry(RepositoryLayout.scheduleState("j"), new Entry(Kind.SCHEDULE_STATE, "j")));
        Set<Kind> seen = EnumSet.noneOf(Kind.class);
        cases.forEach((key, entry) -> {
            assertEquals(Optional.of(entry), RepositoryLayout.parse(key), key);
            seen.add(entry.kind());
        });
        assertEquals(EnumSet.allOf(Kind.class), seen, "every kind has a case");
    }

    @Test
    void strangersDoNotParse() {
        for (String k : List.of("packs/0f/" + PACK + ".pack-0ef53306-0d6a-4aaf-82e8-cdd859914a8a",
                "packs/aa/" + PACK + ".pack", "packs/0f/" + PACK.toUpperCase() + ".pack", "packs/0f/x.pack",
                "packs/" + PACK + ".pack", "indexes/.idx", "indexes/a/b.idx", "indexes/x.tmp", "keys/x.txt",
                "readme", "catalog.db.old-1-wal", "tmp/", "locks/x")) {
            assertEquals(Optional.empty(), RepositoryLayout.parse(k), k);
        }
    }

    @Test
    void onlyTheBackupsAreRepositoryScoped() {
        Set<Kind> repository = EnumSet.noneOf(Kind.class);
        for (Kind k : Kind.values()) {
            if (k.scope() == Scope.REPOSITORY) {
                repository.add(k);
            }
        }
        assertEquals(EnumSet.of(Kind.CONFIG, Kind.KEY_SLOT, Kind.PACK, Kind.INDEX, Kind.MANIFEST, Kind.DELETION_LEASE, Kind.BAD_MARKER,
            Kind.KEEP_MARKER, Kind.DELETED_INDEX), repository);
    }

    @Test
    void badNamesAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> RepositoryLayout.pack("abc"));
        assertThrows(IllegalArgumentException.class, () -> RepositoryLayout.index("a/b"));
        assertThrows(IllegalArgumentException.class, () -> RepositoryLayout.index(""));
        assertThrows(IllegalArgumentException.class, () -> RepositoryLayout.keySlot(".hidden"));
        assertTrue(RepositoryLayout.isPackName(PACK));
        assertFalse(RepositoryLayout.isPackName(PACK + "0"));
    }
}
