package io.jbackup.catalog;

import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;
import io.jbackup.model.RepositoryException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What every implementation of the {@link Catalog} port must do, section by section: the chunk index (with batch
 * lookups, condemned and quarantined chunks), backups, gc and the run log. A subclass supplies the implementation.
 */
abstract class CatalogContract {
    static final String PACK_A = "aa".repeat(16);
    static final String PACK_B = "bb".repeat(16);
    static final String PACK_C = "cc".repeat(16);
    static final Instant T0 = Instant.ofEpochMilli(1_800_000_000_000L);

    @TempDir
    Path tmp;
    Catalog c;

    /** A new, empty catalog of repository {@code repositoryId}, kept under {@code dir}. */
    protected abstract Catalog create(Path dir, String repositoryId) throws RepositoryException;

    @BeforeEach
    void open() throws RepositoryException {
        c = create(tmp, "repo-1");
    }

    @AfterEach
    void close() {
        c.close();
    }

    static byte[] digest(int n) {
        byte[] d = new byte[32];
        d[0] = (byte) n;
        d[1] = (byte) (n >> 8);
        d[31] = (byte) 0x5a;
        return d;
    }

    static ChunkRow row(int n, long offset) {
        return new ChunkRow(digest(n), offset, 100, 200);
    }

    static BackupInfo backup(String id, String vm, String disk, Instant created) {
        return new BackupInfo(id, vm, disk, "full", null, created, null, 4096, 65536, BackupInfo.INCOMPLETE,
            Map.of("a", "1", "b", "2"), "note", Map.of("uri", "nbd://h/e"), BackupStats.EMPTY);
    }

    // -------------------------------------------------------------------------------------------- chunk index

    @Test
    void packsAndChunksRoundTripAndTheFirstLocationWins() throws Exception {
        c.addPack(PACK_A, 1000, List.of(row(1, 32), row(2, 132)));
        c.addPack(PACK_A, 1000, List.of(row(1, 32)));
        c.addPack(PACK_B, 500, List.of(new ChunkRow(digest(1), 32, 99, 200), row(3, 132)));
        assertEquals(new ChunkLocation(PACK_A, 32, 100, 200), c.findChunk(digest(1)));
        assertEquals(new ChunkLocation(PACK_B, 132, 100, 200), c.findChunk(digest(3)));
        assertTrue(c.hasChunk(digest(2)));
        assertFalse(c.hasChunk(digest(4)));
        assertNull(c.findChunk(digest(4)));
        assertEquals(3, c.chunkCount());
        assertEquals(List.of(PACK_A, PACK_B), c.packs().stream().map(PackRow::name).toList());
        assertEquals(1000, c.packs().get(0).size());
        assertEquals(2, c.packs().get(0).chunkCount());
        assertTrue(c.hasPack(PACK_B));
        assertFalse(c.hasPack(PACK_C));
        List<String> seen = new ArrayList<>();
        c.forEachChunk((d, loc) -> seen.add(d[0] + "@" + loc.pack().charAt(0) + loc.offset()));
        assertEquals(List.of("1@a32", "2@a132", "3@b132"), seen, "pack order, then offset order");
    }

    @Test
    void aForgottenPackTakesItsChunksAlongAndReRegisteringAnotherCopyBringsThemBack() throws Exception {
        c.addPack(PACK_A, 1000, List.of(row(1, 32), row(2, 132)));
        c.addPack(PACK_B, 1000, List.of(row(2, 32), row(3, 132))); // digest 2 stays in A
        assertEquals(2, c.forgetPack(PACK_A));
        assertFalse(c.hasPack(PACK_A));
        assertNull(c.findChunk(digest(1)));
        assertNull(c.findChunk(digest(2)), "B's copy of 2 was never registered");
        c.addPack(PACK_B, 1000, List.of(row(2, 32), row(3, 132)));
        assertEquals(new ChunkLocation(PACK_B, 32, 100, 200), c.findChunk(digest(2)));
        assertEquals(0, c.forgetPack(PACK_C), "an unknown pack is nothing to forget");
    }

    @Test
    void batchLookupAnswersEveryDigestLikeTheSingleLookup() throws Exception {
        List<ChunkRow> rows = new ArrayList<>();
        for (int n = 0; n < 1300; n += 3) {
            rows.add(row(n, 32 + n * 100L));
        }
        c.addPack(PACK_A, 200_000, rows);
        List<byte[]> asked = new ArrayList<>();
        for (int n = 1299; n >= 0; n--) {
            asked.add(digest(n));
        }
        asked.add(digest(3));
        asked.add(digest(4));
        BitSet known = c.hasChunks(asked);
        for (int i = 0; i < asked.size(); i++) {
            assertEquals(c.hasChunk(asked.get(i)), known.get(i), "digest " + i + " of the batch");
        }
        assertEquals(434 + 1, known.cardinality(), "a digest asked twice is answered twice");
        assertEquals(new BitSet(), c.hasChunks(List.of()));
        for (int size : new int[] {1, 2, 3, 511, 512, 513}) {
            List<byte[]> batch = asked.subList(asked.size() - size, asked.size());
            BitSet k = c.hasChunks(batch);
            for (int i = 0; i < size; i++) {
                assertEquals(c.hasChunk(batch.get(i)), k.get(i), "digest " + i + " of a batch of " + size);
            }
        }
    }

    @Test
    void relocatePointsChunksAtTheNewPack() throws Exception {
        c.addPack(PACK_A, 1000, List.of(row(1, 32), row(2, 132)));
        c.relocate(PACK_B, 300, List.of(new ChunkRow(digest(2), 32, 100, 200)));
        assertEquals(new ChunkLocation(PACK_B, 32, 100, 200), c.findChunk(digest(2)));
        assertEquals(new ChunkLocation(PACK_A, 32, 100, 200), c.findChunk(digest(1)));
        assertEquals(List.of(1L), c.chunksOfPack(PACK_A).stream().map(r -> (long) r.digest()[0]).toList());
    }

    @Test
    void quarantinedChunksLeaveDeduplicationUntilStoredAgainOrReinstated() throws Exception {
        c.addPack(PACK_A, 1000, List.of(row(1, 32), row(2, 132), row(3, 232)));
        assertFalse(c.quarantine(digest(1), new ChunkLocation(PACK_A, 999, 100, 200), "x"), "elsewhere: kept");
        assertTrue(c.quarantine(digest(1), new ChunkLocation(PACK_A, 32, 100, 200), "bad checksum"));
        assertTrue(c.quarantine(digest(2), new ChunkLocation(PACK_A, 132, 100, 200), null));
        assertFalse(c.hasChunk(digest(1)));
        assertNull(c.findChunk(digest(1)));
        assertEquals("[false, false, true]", bits(c.hasChunks(List.of(digest(1), digest(2), digest(3))), 3));
        ChunkIndex.DamagedChunk d = c.damagedChunk(digest(1)).orElseThrow();
        assertEquals(new ChunkLocation(PACK_A, 32, 100, 200), d.location());
        assertEquals("bad checksum", d.problem());
        assertEquals("damaged", c.damagedChunk(digest(2)).orElseThrow().problem());
        assertEquals(2, c.damagedChunks().size());
        // stored again: healed
        c.addPack(PACK_B, 300, List.of(row(1, 32)));
        assertTrue(c.hasChunk(digest(1)));
        assertTrue(c.damagedChunk(digest(1)).isEmpty());
        // found intact later: its row comes back
        assertTrue(c.reinstate(digest(2)));
        assertEquals(new ChunkLocation(PACK_A, 132, 100, 200), c.findChunk(digest(2)));
        assertTrue(c.damagedChunks().isEmpty());
        assertFalse(c.reinstate(digest(2)));
    }

    @Test
    void deletedChunksAreForgotten() throws Exception {
        c.addPack(PACK_A, 1000, List.of(row(1, 32), row(2, 132)));
        c.condemn(List.of(digest(2)));
        c.deleteChunks(List.of(digest(1), digest(2)));
        assertNull(c.findChunk(digest(1)));
        assertNull(c.findChunk(digest(2)));
        assertEquals(0, c.chunkCount());
        assertEquals(0, c.condemnedCount());
    }

    private static String bits(BitSet b, int n) {
        List<Boolean> l = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            l.add(b.get(i));
        }
        return l.toString();
    }

    // ---------------------------------------------------------------------------------------------------- gc

    @Test
    void condemnedChunksAreReadableButNotForDedupUntilResurrected() throws Exception {
        c.addPack(PACK_A, 1000, List.of(row(1, 32), row(2, 132), row(3, 232)));
        long maxA = c.maxPackId();
        c.addPack(PACK_B, 300, List.of(row(4, 32)));
        assertTrue(c.maxPackId() > maxA);
        List<Integer> upToA = new ArrayList<>();
        c.forEachChunkUpTo(maxA, (d, loc) -> upToA.add((int) d[0]));
        upToA.sort(null);
        assertEquals(List.of(1, 2, 3), upToA);

        assertEquals(2, c.condemn(List.of(digest(1), digest(2), digest(9))));
        assertTrue(c.isCondemned(digest(1)));
        assertFalse(c.isCondemned(digest(3)));
        assertEquals(2, c.condemnedCount());
        assertFalse(c.hasChunk(digest(1)), "no dedup against condemned chunks");
        assertEquals("[false, false, true]", bits(c.hasChunks(List.of(digest(1), digest(2), digest(3))), 3));
        assertEquals(new ChunkLocation(PACK_A, 32, 100, 200), c.findChunk(digest(1)), "still readable");
        List<Integer> all = new ArrayList<>();
        c.forEachChunk((d, loc) -> all.add((int) d[0]));
        assertEquals(List.of(1, 2, 3, 4), all, "forEachChunk includes condemned chunks");
        List<Integer> live = new ArrayList<>();
        c.forEachChunkUpTo(maxA, (d, loc) -> live.add((int) d[0]));
        assertEquals(List.of(3), live, "forEachChunkUpTo leaves them out");
        assertEquals(2, c.chunkCount());

        assertEquals(1, c.resurrect(List.of(digest(1))));
        assertTrue(c.hasChunk(digest(1)));
        assertEquals(1, c.resurrectAll());
        assertEquals(0, c.condemnedCount());
        assertEquals(4, c.chunkCount());
    }

    @Test
    void packUsageCountsLiveChunksAndPacksAreDeletedOnlyWhenEmpty() throws Exception {
        c.addPack(PACK_A, 1000, List.of(row(1, 32), row(2, 132), row(3, 232)));
        c.addPack(PACK_B, 300, List.of(row(4, 32)));
        c.condemn(List.of(digest(2)));
        List<GcCatalog.PackUsage> usage = c.packUsage(c.maxPackId(), 32, 48, 16);
        assertEquals(new GcCatalog.PackUsage(PACK_A, 1000, 3, 1000 - 32 - 3 * 48 - 16, 2, 200), usage.get(0));
        assertEquals(new GcCatalog.PackUsage(PACK_B, 300, 1, 300 - 32 - 48 - 16, 1, 100), usage.get(1));
        assertEquals(List.of(1, 3), c.chunksOfPack(PACK_A).stream().map(r -> (int) r.digest()[0]).toList());

        RepositoryException e = assertThrows(RepositoryException.class, () -> c.releasePack(PACK_A));
        assertTrue(e.getMessage().contains("live chunks"), e.getMessage());
        c.deletePack(PACK_A);
        assertTrue(c.hasPack(PACK_A), "a pack that chunks point at stays");
        c.deleteChunks(List.of(digest(1), digest(3)));
        c.releasePack(PACK_A);
        assertEquals(0, c.condemnedCount(), "release forgets the pack's condemned rows");
        c.deletePack(PACK_A);
        assertFalse(c.hasPack(PACK_A));
        c.releasePack(PACK_C);
    }

    // ----------------------------------------------------------------------------------------------- backups

    @Test
    void backupsGoFromIncompleteToCompleteAndAreFoundByIdPrefixAndTime() throws Exception {
        BackupInfo b1 = backup("20260101-000000-abcdef", null, "disk.img", T0);
        BackupInfo b2 = backup("20260102-000000-123456", "vm1", "sda", T0.plusSeconds(60));
        BackupInfo b3 = backup("20260103-000000-aaaaaa", null, "disk.img", T0.plusSeconds(120));
        c.insertBackup(b1, "uuid-1", "host/1/2");
        c.insertBackup(b2, "uuid-2", "host/1/2");
        c.insertBackup(b3, "uuid-3", null);
        assertThrows(BackupCatalog.DuplicateBackupIdException.class, () -> c.insertBackup(b1, "uuid-4", "x"));
        assertEquals(List.of(b1, b2, b3), c.backups());
        assertEquals(Map.of(b1.id(), "host/1/2", b2.id(), "host/1/2", b3.id(), "(none)"),
            withoutNull(c.incompleteBackups()));
        assertFalse(c.setState(b1.id(), BackupInfo.BAD, "no"), "an incomplete backup cannot be marked");
        assertTrue(c.latestComplete(null, "disk.img", null).isEmpty());

        BackupStats st = new BackupStats(1, 1, 0, 0, 4096, 0, 0, 100);
        c.completeBackup(b1.id(), T0.plusSeconds(5), st);
        c.completeBackup(b3.id(), T0.plusSeconds(125), st);
        c.completeBackup(b2.id(), T0.plusSeconds(65), st);
        assertThrows(RepositoryException.class, () -> c.completeBackup("20990101-000000-000000", T0, st));
        BackupInfo done1 = b1.completedAt(T0.plusSeconds(5), st);
        BackupInfo done3 = b3.completedAt(T0.plusSeconds(125), st);
        assertEquals(done3, c.latestComplete(null, "disk.img", null).orElseThrow());
        assertEquals(done1, c.latestComplete(null, "disk.img", T0.plusSeconds(119)).orElseThrow());
        assertTrue(c.latestComplete(null, "disk.img", T0.minusSeconds(1)).isEmpty());
        assertEquals(b2.id(), c.latestComplete("vm1", "sda", null).orElseThrow().id());
        assertTrue(c.latestComplete(null, "sda", null).isEmpty(), "vm1/sda is not the standalone disk sda");
        assertEquals(done1, c.backup(b1.id()).orElseThrow());
        assertEquals(Map.of("a", "1", "b", "2"), c.backup(b1.id()).orElseThrow().labels());
        assertTrue(c.backup("2026").isEmpty(), "backup() takes the exact id");
        assertEquals(List.of(done1), c.backupsByPrefix("20260101"));
        assertEquals(3, c.backupsByPrefix("2026").size());
        assertTrue(c.backupsByPrefix("2026010_").isEmpty(), "LIKE wildcards are taken literally");
        assertTrue(c.backupsByPrefix("%").isEmpty());
        assertTrue(c.incompleteBackups().isEmpty());

        assertTrue(c.setState(b3.id(), BackupInfo.BAD, "why"));
        assertEquals("why", c.stateReason(b3.id()));
        assertEquals(done1, c.latestComplete(null, "disk.img", null).orElseThrow(), "a bad backup is not the latest");
        assertNull(c.stateReason("none"));

        c.deleteBackup(b3.id());
        assertEquals(List.of(b1.id(), b2.id()), c.backups().stream().map(BackupInfo::id).toList());
    }

    private static Map<String, String> withoutNull(Map<String, String> m) {
        Map<String, String> out = new java.util.TreeMap<>();
        m.forEach((k, v) -> out.put(k, v == null ? "(none)" : v));
        return out;
    }

    @Test
    void protectionAndVerificationAreRecordedPerBackup() throws Exception {
        BackupInfo b1 = backup("20260101-000000-abcdef", null, "disk.img", T0);
        BackupInfo b2 = backup("20260102-000000-123456", null, "disk.img", T0.plusSeconds(60));
        c.insertBackup(b1, "u1", null);
        c.insertBackup(b2, "u2", null);
        assertFalse(c.setProtected(b1.id(), true, "keep"), "an incomplete backup cannot be protected");
        c.completeBackup(b1.id(), T0, BackupStats.EMPTY);
        c.completeBackup(b2.id(), T0, BackupStats.EMPTY);
        assertTrue(c.setProtected(b1.id(), true, "legal hold"));
        assertTrue(c.setProtected(b2.id(), true, null));
        Map<String, String> prot = c.protectedBackups();
        assertEquals(List.of(b1.id(), b2.id()), List.copyOf(prot.keySet()));
        assertEquals("legal hold", prot.get(b1.id()));
        assertNull(prot.get(b2.id()));
        assertTrue(c.setProtected(b2.id(), false, "ignored"));
        assertEquals(List.of(b1.id()), List.copyOf(c.protectedBackups().keySet()));
        assertFalse(c.setProtected("20990101-000000-000000", true, null));

        assertTrue(c.verifications().isEmpty());
        c.setVerified(List.of(b1.id(), b2.id()), T0.plusSeconds(10), 25.0);
        c.setVerified(List.of(b2.id()), T0.plusSeconds(20), 100.0);
        assertEquals(new BackupCatalog.Verification(T0.plusSeconds(10), 25.0), c.verifications().get(b1.id()));
        assertEquals(new BackupCatalog.Verification(T0.plusSeconds(20), 100.0), c.verifications().get(b2.id()));
    }

    // ------------------------------------------------------------------------------------------- runs, totals

    @Test
    void runsAreLoggedNewestFirst() throws Exception {
        long r1 = c.startRun("backup", "host/1/2");
        long r2 = c.startRun("verify", "host/1/3");
        c.finishRun(r1, "ok", null);
        List<RunLog.Run> runs = c.runs(10);
        assertEquals(List.of(r2, r1), runs.stream().map(RunLog.Run::id).toList());
        assertEquals("running", runs.get(0).status());
        assertNull(runs.get(0).finished());
        assertEquals("ok", runs.get(1).status());
        assertEquals("host/1/2", runs.get(1).owner());
        assertEquals(1, c.runs(1).size());
    }

    @Test
    void totalsSumPacksChunksAndBackups() throws Exception {
        c.addPack(PACK_A, 1000, List.of(row(1, 32), new ChunkRow(digest(2), 132, 50, 60)));
        BackupInfo b1 = backup("20260101-000000-abcdef", null, "disk.img", T0);
        BackupInfo b2 = backup("20260102-000000-123456", "vm", "sda", T0);
        c.insertBackup(b1, "u1", null);
        c.insertBackup(b2, "u2", null);
        c.completeBackup(b1.id(), T0, new BackupStats(2, 1, 1, 0, 10, 20, 30, 40));
        Catalog.Totals t = c.totals();
        assertEquals(new Catalog.Totals(1, 1000, 2, 260, 150, 2, 1, 0, 2, 4096, 10, 20, 30), t);
    }

    @Test
    void aClosedCatalogRefusesWork() throws Exception {
        c.close();
        assertThrows(RepositoryException.class, () -> c.hasChunk(digest(1)));
        assertThrows(RepositoryException.class, () -> c.hasChunks(List.of(digest(1))));
        assertThrows(RepositoryException.class, () -> c.backups());
        assertThrows(RepositoryException.class, () -> c.addPack(PACK_A, 1, List.of()));
    }
}
