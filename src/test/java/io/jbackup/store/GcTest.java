package io.jbackup.store;

import io.jbackup.model.BackupInfo;
import io.jbackup.model.RepositoryException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** gc: mark and sweep, repacking, concurrency with a running backup, crash leftovers, damaged indexes. */
class GcTest {
    static final int CS = 64 * 1024;

    @TempDir
    Path tmp;

    private Repository init() throws IOException {
        return Repository.init(tmp.resolve("repo"), new RepositoryOptions(CS, Encryption.NONE, 1, 1 << 20), null);
    }

    /** Writes a full backup whose chunk i holds {@code Data.chunk(seeds[i])}. */
    static String backup(Repository r, String disk, long... seeds) throws IOException {
        try (BackupWriter w = r.beginBackup(BackupSpec.full("vm", disk, (long) seeds.length * CS))) {
            put(w, 0, seeds);
            return w.commit().id();
        }
    }

    static void put(BackupWriter w, int first, long... seeds) {
        List<CompletableFuture<Void>> fs = new ArrayList<>();
        for (int i = 0; i < seeds.length; i++) {
            fs.add(w.putChunk(first + i, Data.chunk(seeds[i], CS), CS));
        }
        CompletableFuture.allOf(fs.toArray(CompletableFuture[]::new)).join();
    }

    static void assertRestores(Repository r, String id, long... seeds) throws IOException {
        try (BackupReader b = r.openBackup(id)) {
            assertEquals(seeds.length, b.chunkCount());
            for (int i = 0; i < seeds.length; i++) {
                assertArrayEquals(Data.chunk(seeds[i], CS), b.readChunk(i), "backup " + id + " chunk " + i);
            }
        }
    }

    static long[] range(long from, int n) {
        long[] a = new long[n];
        for (int i = 0; i < n; i++) {
            a[i] = from + i;
        }
        return a;
    }

    static long[] concat(long[] a, long[] b) {
        long[] c = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    static long packFiles(Path repo) throws IOException {
        try (var s = Files.walk(repo.resolve("packs"))) {
            return s.filter(p -> p.toString().endsWith(".pack")).count();
        }
    }

    @Test
    void reclaimsChunksOfDeletedBackupsAndRepacksSparsePacks() throws Exception {
        try (Repository r = init()) {
            long[] seedsA = range(0, 32);
            long[] seedsB = concat(range(0, 8), range(100, 24));
            String a = backup(r, "vda", seedsA);
            String b = backup(r, "vda", seedsB);
            long chunksBefore = r.catalog().chunkCount();
            assertEquals(56, chunksBefore);
            long packsBefore = packFiles(r.dir());

            r.deleteBackup(a);
            assertFalse(Files.exists(IndexFile.path(r.dir(), a)));
            assertTrue(r.backup(a).isEmpty());

            GcReport dry = r.gc(GcOptions.defaults().withDryRun(true));
            assertTrue(dry.dryRun());
            assertEquals(24, dry.chunksCondemned(), dry.toString());
            assertTrue(dry.bytesReclaimed() > 0, dry.toString());
            assertEquals(chunksBefore, r.catalog().chunkCount(), "a dry run changes nothing");
            assertEquals(packsBefore, packFiles(r.dir()));

            List<String> phases = new ArrayList<>();
            GcReport rep = r.gc(GcOptions.defaults().withProgress(phases::add));
            assertEquals(24, rep.chunksCondemned(), rep.toString());
            assertEquals(0, rep.chunksResurrected());
            assertEquals(24, rep.chunksDeleted(), rep.toString());
            assertEquals(0, rep.duplicatesDeleted(), rep.toString());
            assertEquals(0, dry.duplicatesDeleted(), dry.toString());
            assertTrue(rep.packsDeleted() >= 1 && rep.bytesReclaimed() > 0, rep.toString());
            assertEquals(32, r.catalog().chunkCount());
            assertEquals(0, r.catalog().condemnedCount());
            assertEquals(rep.packBytesAfter(), r.totals().packBytes());
            assertTrue(phases.stream().anyMatch(p -> p.startsWith("mark")), phases.toString());
            assertRestores(r, b, seedsB);
            VerifyReport v = r.verify(new VerifyOptions(List.of(), 100, false));
            assertTrue(v.damagedChunks().isEmpty() && v.damagedIndexes().isEmpty(), v.toString());

            // a second gc finds nothing more to do
            GcReport again = r.gc(GcOptions.defaults());
            assertEquals(0, again.chunksCondemned());
            assertEquals(0, again.packsDeleted());
        }
    }

    @Test
    void copiesOfAChunkStoredTwiceByBackupsAtOnceAreCountedApartFromUnusedChunks() throws Exception {
        init().close();
        // two processes (as two hosts sharing a bucket) whose backups run at once both store the same new chunks:
        // neither sees the other's before its commit
        try (Repository r = Repository.open(tmp.resolve("repo"), OpenOptions.defaults());
             Repository other = Repository.open(tmp.resolve("repo"), OpenOptions.defaults())) {
            long[] seeds = range(500, 8);
            String a;
            String b;
            try (BackupWriter w1 = r.beginBackup(BackupSpec.full("vm", "vda", seeds.length * (long) CS));
                 BackupWriter w2 = other.beginBackup(BackupSpec.full("vm", "vdb", seeds.length * (long) CS))) {
                put(w1, 0, seeds);
                put(w2, 0, seeds);
                a = w1.commit().id();
                b = w2.commit().id();
            }
            assertEquals(8, r.catalog().chunkCount());
            GcReport dry = r.gc(GcOptions.defaults().withDryRun(true));
            GcReport rep = r.gc(GcOptions.defaults());
            for (GcReport g : List.of(dry, rep)) {
                assertEquals(0, g.chunksCondemned(), g.toString());
                assertEquals(8, g.chunksDeleted(), g.toString());
                assertEquals(8, g.duplicatesDeleted(), g.toString());
            }
            assertEquals(8, r.catalog().chunkCount());
            assertRestores(r, a, seeds);
            assertRestores(r, b, seeds);
        }
    }

    @Test
    void gcConcurrentWithARunningBackupKeepsWhatTheBackupUses() throws Exception {
        Path dir;
        String b;
        String c;
        long[] seedsB = concat(range(0, 4), range(200, 12));
        long[] seedsC = concat(concat(range(4, 4), range(8, 4)), range(300, 4));
        ExecutorService ex = Executors.newSingleThreadExecutor();
        try (Repository r = init()) {
            dir = r.dir();
            String a = backup(r, "vda", range(0, 16));
            b = backup(r, "vda", seedsB);
            r.deleteBackup(a); // seeds 4..15 are now garbage

            BackupWriter w = r.beginBackup(BackupSpec.full("vm", "vdb", (long) seedsC.length * CS));
            // the running backup deduplicates against garbage chunks 4..7 before gc condemns them
            put(w, 0, range(4, 4));
            assertEquals(4, w.stats().chunksDedup());

            CountDownLatch waiting = new CountDownLatch(1);
            Future<GcReport> gc = ex.submit(() -> r.gc(GcOptions.defaults().withRepackThreshold(60).withProgress(p -> {
                if (p.startsWith("wait:")) {
                    waiting.countDown();
                }
            })));
            assertTrue(waiting.await(60, TimeUnit.SECONDS), "gc waits for the running backup");
            // condemned now: the backup no longer deduplicates against chunks 8..11 but stores them again
            assertFalse(r.catalog().hasChunk(Data.sha256(Data.chunk(8, CS))));
            assertTrue(r.catalog().isCondemned(Data.sha256(Data.chunk(8, CS))));
            put(w, 4, range(8, 4));
            put(w, 8, range(300, 4));
            assertEquals(4, w.stats().chunksDedup(), "chunks 8..11 were stored again, not deduplicated");
            assertFalse(gc.isDone(), "gc deletes nothing while the backup runs");
            c = w.commit().id();

            GcReport rep = gc.get(60, TimeUnit.SECONDS);
            assertEquals(1, rep.writersWaited(), rep.toString());
            assertEquals(12, rep.chunksCondemned(), rep.toString());
            assertEquals(4, rep.chunksResurrected(), "chunks 4..7 are used by the backup that finished: " + rep);
            assertEquals(8, rep.chunksDeleted(), "the old copies of 8..11 and 12..15: " + rep);
            assertEquals(1, rep.packsRepacked(), rep.toString());
            assertTrue(rep.bytesReclaimed() > 0, rep.toString());
            assertRestores(r, b, seedsB);
            assertRestores(r, c, seedsC);
        } finally {
            ex.shutdownNow();
        }
        // and from a fresh process view: catalog and files agree
        try (Repository r = Repository.open(dir, OpenOptions.defaults())) {
            VerifyReport v = r.verify(new VerifyOptions(List.of(), 100, false));
            assertTrue(v.damagedChunks().isEmpty() && v.damagedIndexes().isEmpty(), v.toString());
            assertRestores(r, b, seedsB);
            assertRestores(r, c, seedsC);
        }
    }

    @Test
    void encryptedRepositoryRepacksAndStillAuthenticates() throws Exception {
        Path dir = tmp.resolve("enc");
        try (Repository r = Repository.init(dir, new RepositoryOptions(CS, Encryption.AES_256_GCM, 3, 1 << 20),
            "pw".toCharArray())) {
            String a = backup(r, "vda", range(0, 12));
            String b = backup(r, "vda", concat(range(0, 3), range(50, 3)));
            r.deleteBackup(a);
            GcReport rep = r.gc(GcOptions.defaults().withRepackThreshold(100));
            assertEquals(9, rep.chunksCondemned(), rep.toString());
            assertTrue(rep.packsRepacked() >= 1 && rep.packsWritten() >= 1, rep.toString());
            assertRestores(r, b, concat(range(0, 3), range(50, 3)));
        }
        // the new packs' footers carry the keyed MAC: a rebuilt catalog accepts them
        RebuildReport rb = Repository.rebuildCatalog(dir, OpenOptions.defaults().withPassphrase("pw"));
        assertTrue(rb.problems().isEmpty(), rb.toString());
        try (Repository r = Repository.open(dir, OpenOptions.defaults().withPassphrase("pw"))) {
            VerifyReport v = r.verify(new VerifyOptions(List.of(), 100, false));
            assertTrue(v.ok(), v.toString());
        }
    }

    @Test
    void condemnedChunksLeftByADeadGcAreStillReadAndRolledBack() throws Exception {
        try (Repository r = init()) {
            long[] seeds = range(0, 6);
            String id = backup(r, "vda", seeds);
            // what a gc killed after condemning leaves: rows moved to gc_condemned
            List<byte[]> ds = new ArrayList<>();
            for (long s : seeds) {
                ds.add(Data.sha256(Data.chunk(s, CS)));
            }
            r.catalog().condemn(ds);
            assertFalse(r.catalog().hasChunk(ds.get(0)), "no dedup against condemned chunks");
            assertRestores(r, id, seeds);
            VerifyReport v = r.verify(new VerifyOptions(List.of(), 100, false));
            assertTrue(v.damagedChunks().isEmpty(), "verify sees condemned chunks as present: " + v);
            GcReport rep = r.gc(GcOptions.defaults());
            assertEquals(0, rep.chunksCondemned(), "rolled back first, then nothing is garbage: " + rep);
            assertEquals(0, r.catalog().condemnedCount());
            assertTrue(r.catalog().hasChunk(ds.get(0)));
            assertRestores(r, id, seeds);
        }
    }

    @Test
    void aDamagedIndexStopsGcBeforeAnythingIsCondemned() throws Exception {
        try (Repository r = init()) {
            String a = backup(r, "vda", range(0, 4));
            String b = backup(r, "vdb", range(10, 4));
            Path idx = IndexFile.path(r.dir(), b);
            byte[] bytes = Files.readAllBytes(idx);
            bytes[IndexFile.PREAMBLE_SIZE + 3] ^= 1;
            Files.write(idx, bytes);
            RepositoryException e = assertThrows(RepositoryException.class, () -> r.gc(GcOptions.defaults()));
            assertTrue(e.getMessage().contains("gc stopped") && e.getMessage().contains(b), e.getMessage());
            assertEquals(0, r.catalog().condemnedCount());
            assertEquals(8, r.catalog().chunkCount());
            assertRestores(r, a, range(0, 4));
        }
    }

    @Test
    void protectedBackupsCannotBeDeletedAndPruneHonoursThem() throws Exception {
        try (Repository r = init()) {
            String first = backup(r, "vda", range(0, 2));
            String second = backup(r, "vda", range(2, 2));
            String third = backup(r, "vda", range(4, 2));
            r.setProtected(first, true, "before upgrade");
            assertThrows(io.jbackup.error.UsageException.class, () -> r.deleteBackup(first));
            assertTrue(Files.exists(r.dir().resolve("indexes").resolve(first + ".keep")));

            PruneReport dry = r.prune(RetentionPolicy.keepLast(1), "vm", "vda", true, java.time.Duration.ZERO);
            assertEquals(2, dry.kept());
            assertEquals(1, dry.removed());
            assertEquals(3, r.listBackups().size(), "dry run removes nothing");

            PruneReport rep = r.prune(RetentionPolicy.keepLast(1), null, null, false, java.time.Duration.ZERO);
            assertEquals(1, rep.removed());
            List<String> ids = r.listBackups().stream().map(BackupInfo::id).toList();
            assertEquals(List.of(first, third), ids);
            assertFalse(ids.contains(second));
            r.setProtected(first, false, null);
            assertFalse(Files.exists(r.dir().resolve("indexes").resolve(first + ".keep")));
            r.deleteBackup(first);
            assertRestores(r, third, range(4, 2));
        }
    }

    @Test
    void anInterruptedDeletionIsFinishedByTheNextOpen() throws Exception {
        Path dir;
        String a;
        try (Repository r = init()) {
            dir = r.dir();
            a = backup(r, "vda", range(0, 2));
            backup(r, "vda", range(2, 2));
        }
        // a prune killed right after renaming the index
        Path idx = IndexFile.path(dir, a);
        Files.move(idx, idx.resolveSibling(a + Repository.DELETED_SUFFIX));
        try (Repository r = Repository.open(dir, OpenOptions.defaults())) {
            assertTrue(r.backup(a).isEmpty());
            assertFalse(Files.exists(idx.resolveSibling(a + Repository.DELETED_SUFFIX)));
            assertEquals(1, r.listBackups().size());
        }
    }
}
