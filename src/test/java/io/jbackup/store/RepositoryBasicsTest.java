package io.jbackup.store;

import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;
import io.jbackup.model.RepositoryException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RepositoryBasicsTest {
    static final int CS = 64 * 1024;

    @TempDir
    Path tmp;

    private Repository init() throws IOException {
        return Repository.init(tmp.resolve("repo"), new RepositoryOptions(CS, Encryption.NONE, 1, 1 << 20), null);
    }

    @Test
    void fullBackupRoundTripsWithZeroAndDuplicateChunksAndPartialLastChunk() throws Exception {
        long size = 10L * CS + 1000; // 11 chunks, last one 1000 bytes
        try (Repository repo = init()) {
            BackupInfo info;
            try (BackupWriter w = repo.beginBackup(new BackupSpec("vm1", "vda", size, 0, null, "full",
                Map.of("k", "v"), "first", Map.of("uri", "nbd://x")))) {
                assertEquals(11, w.chunkCount());
                List<CompletableFuture<Void>> fs = new ArrayList<>();
                fs.add(w.putChunk(0, Data.chunk(1, CS), CS));
                fs.add(w.putChunk(1, Data.chunk(2, CS), CS));
                fs.add(w.putChunk(2, Data.chunk(1, CS), CS)); // duplicate of 0
                fs.add(w.putChunk(3, new byte[CS], CS)); // zero data
                w.putZero(4);
                // 5..9 never put: zero in a full backup
                fs.add(w.putChunk(10, Data.chunk(3, 1000), 1000));
                CompletableFuture.allOf(fs.toArray(CompletableFuture[]::new)).join();
                info = w.commit();
            }
            assertEquals(BackupInfo.COMPLETE, info.state());
            BackupStats s = info.stats();
            assertEquals(6, s.chunksTotal());
            assertEquals(3, s.chunksNew());
            assertEquals(1, s.chunksDedup());
            assertEquals(2, s.chunksZero());
            assertEquals(2L * CS + 1000, s.bytesNew());
            assertEquals(CS, s.bytesDedup());
            assertTrue(s.bytesStored() > 0 && s.bytesStored() < s.bytesNew(), "compressed: " + s);
            assertEquals(Map.of("k", "v"), info.labels());

            try (BackupReader r = repo.openBackup(info.id())) {
                assertEquals(size, r.imageSize());
                assertArrayEquals(Data.chunk(1, CS), r.readChunk(0));
                assertArrayEquals(Data.chunk(2, CS), r.readChunk(1));
                assertArrayEquals(Data.chunk(1, CS), r.readChunk(2));
                assertArrayEquals(r.digest(0), r.digest(2));
                for (int i = 3; i < 10; i++) {
                    assertTrue(r.isZero(i), "position " + i);
                    assertArrayEquals(new byte[CS], r.readChunk(i));
                }
                assertFalse(r.isZero(10));
                assertArrayEquals(Data.chunk(3, 1000), r.readChunkAsync(10).join());
                assertArrayEquals(Data.sha256(Data.chunk(1, CS)), r.digest(0), "plain repo: chunk id is SHA-256");
            }
            BackupInfo listed = repo.listBackups().get(0);
            assertEquals(info, listed);
            assertEquals(info, repo.latestComplete("vm1", "vda").orElseThrow());
        }
    }

    @Test
    void zeroRunsLeaveHolesInTheIndex() throws Exception {
        long n = 200_000; // 6.4 MiB of entries: 7 blocks of 1 MiB, only the first holds a non-zero entry
        try (Repository repo = init()) {
            BackupInfo full;
            try (BackupWriter w = repo.beginBackup(BackupSpec.full(null, "sparse.img", n * CS))) {
                w.putZeros(0, 5);
                w.putChunk(5, Data.chunk(5, CS), CS).join();
                w.putZeros(6, n - 6);
                full = w.commit();
            }
            Path idx = tmp.resolve("repo").resolve("indexes").resolve(full.id() + ".idx");
            long allocated = Long.parseLong(new String(new ProcessBuilder("stat", "-c", "%b", idx.toString())
                .start().getInputStream().readAllBytes()).trim()) * 512;
            assertTrue(allocated <= 2L << 20, "zero runs stay holes: " + allocated + " of " + Files.size(idx)
                + " bytes allocated");
            assertEquals(n - 1, full.stats().chunksZero());
            try (BackupReader r = repo.openBackup(full.id())) {
                assertArrayEquals(Data.chunk(5, CS), r.readChunk(5));
                assertArrayEquals(new byte[CS], r.readChunk(4));
                assertArrayEquals(new byte[CS], r.readChunk(n - 1));
            }
        }
    }

    @Test
    void zeroRunsOverwriteLikePerChunkZerosAcrossIndexBlocks() throws Exception {
        // 70000 positions: the index's entries span three blocks of 1 MiB (32768 positions each)
        long n = 70_000;
        long size = n * CS - 1000;
        try (Repository repo = init()) {
            String parentId;
            try (BackupWriter w = repo.beginBackup(BackupSpec.full(null, "big.img", size))) {
                w.putChunk(5, Data.chunk(5, CS), CS).join();
                w.putChunk(40_000, Data.chunk(7, CS), CS).join();
                w.putChunk(40_001, Data.chunk(8, CS), CS).join();
                w.putChunk(n - 1, Data.chunk(9, CS - 1000), CS - 1000).join();
                w.putZeros(39_990, 11); // the last write wins: position 40000 becomes zero again
                w.putZeros(6, 30_000); // an untouched run and a partly touched block
                BackupInfo full = w.commit();
                parentId = full.id();
                assertEquals(4, full.stats().chunksNew());
                assertEquals(30_011, full.stats().chunksZero());
                assertEquals(30_011L * CS, full.stats().bytesZero());
            }
            try (BackupReader r = repo.openBackup(parentId)) {
                assertArrayEquals(Data.chunk(5, CS), r.readChunk(5));
                assertArrayEquals(new byte[CS], r.readChunk(40_000));
                assertArrayEquals(Data.chunk(8, CS), r.readChunk(40_001));
                assertArrayEquals(Data.chunk(9, CS - 1000), r.readChunk(n - 1));
                assertArrayEquals(new byte[CS], r.readChunk(66_000));
            }
            BackupInfo inc;
            try (BackupWriter w = repo.beginBackup(BackupSpec.incremental(null, "big.img", size, parentId))) {
                w.putZeros(0, 10); // zeroes the parent's position 5
                w.putZeros(n - 2, 2); // and the short last chunk
                inc = w.commit();
                assertEquals(12, inc.stats().chunksZero());
                assertEquals(12L * CS - 1000, inc.stats().bytesZero());
            }
            try (BackupReader r = repo.openBackup(inc.id())) {
                assertArrayEquals(new byte[CS], r.readChunk(5));
                assertArrayEquals(Data.chunk(8, CS), r.readChunk(40_001), "kept from the parent");
                assertArrayEquals(new byte[CS - 1000], r.readChunk(n - 1));
            }
        }
    }

    @Test
    void incrementalKeepsParentChunksAndReplacesOnlyPutPositions() throws Exception {
        long size = 8L * CS;
        try (Repository repo = init()) {
            String parentId;
            try (BackupWriter w = repo.beginBackup(BackupSpec.full(null, "disk.img", size))) {
                for (int i = 0; i < 8; i++) {
                    w.putChunk(i, Data.chunk(100 + i, CS), CS);
                }
                parentId = w.commit().id();
            }
            BackupInfo inc;
            try (BackupWriter w = repo.beginBackup(BackupSpec.incremental(null, "disk.img", size, parentId))) {
                w.putChunk(2, Data.chunk(999, CS), CS).join();
                w.putZero(5);
                inc = w.commit();
            }
            assertEquals(parentId, inc.parentId());
            assertEquals(1, inc.stats().chunksNew());
            try (BackupReader r = repo.openBackup(inc.id()); BackupReader p = repo.openBackup(parentId)) {
                for (int i = 0; i < 8; i++) {
                    byte[] expect = i == 2 ? Data.chunk(999, CS) : i == 5 ? new byte[CS] : Data.chunk(100 + i, CS);
                    assertArrayEquals(expect, r.readChunk(i), "incremental position " + i);
                    assertArrayEquals(Data.chunk(100 + i, CS), p.readChunk(i), "parent position " + i);
                }
            }
            assertEquals(inc.id(), repo.latestComplete(null, "disk.img").orElseThrow().id());
        }
    }

    @Test
    void dedupAcrossDisksAndVmsStoresNothingTwice() throws Exception {
        long size = 6L * CS;
        try (Repository repo = init()) {
            BackupInfo a;
            try (BackupWriter w = repo.beginBackup(BackupSpec.full("vmA", "vda", size))) {
                for (int i = 0; i < 6; i++) {
                    w.putChunk(i, Data.chunk(i, CS), CS);
                }
                a = w.commit();
            }
            BackupInfo b;
            try (BackupWriter w = repo.beginBackup(BackupSpec.full("vmB", "vdb", size))) {
                for (int i = 0; i < 6; i++) {
                    w.putChunk(i, Data.chunk(5 - i, CS), CS); // same chunks, other order
                }
                b = w.commit();
            }
            assertEquals(6, a.stats().chunksNew());
            assertEquals(0, b.stats().chunksNew());
            assertEquals(6, b.stats().chunksDedup());
            assertEquals(0, b.stats().bytesStored());
            assertEquals(6, repo.catalog().chunkCount());
            try (BackupReader r = repo.openBackup(b.id())) {
                for (int i = 0; i < 6; i++) {
                    assertArrayEquals(Data.chunk(5 - i, CS), r.readChunk(i));
                }
            }
        }
    }

    @Test
    void abortLeavesNothingVisibleButKeepsChunksForReuse() throws Exception {
        long size = 4L * CS;
        try (Repository repo = init()) {
            try (BackupWriter w = repo.beginBackup(BackupSpec.full("vm", "vda", size))) {
                for (int i = 0; i < 4; i++) {
                    w.putChunk(i, Data.chunk(i, CS), CS);
                }
                w.abort();
            }
            assertTrue(repo.listBackups().isEmpty());
            try (var s = Files.list(repo.dir().resolve("indexes"))) {
                assertEquals(0, s.count());
            }
            assertEquals(4, repo.catalog().chunkCount(), "sealed chunks stay registered");
            try (BackupWriter w = repo.beginBackup(BackupSpec.full("vm", "vda", size))) {
                for (int i = 0; i < 4; i++) {
                    w.putChunk(i, Data.chunk(i, CS), CS);
                }
                BackupInfo b = w.commit();
                assertEquals(4, b.stats().chunksDedup());
            }
        }
    }

    @Test
    void closingLeavesNoTemporaryFilesOrLockRecords() throws Exception {
        Path dir;
        try (Repository repo = init(); Repository second = Repository.open(repo.dir(), OpenOptions.defaults())) {
            dir = repo.dir();
            for (Repository r : List.of(repo, second)) {
                BackupWriter w = r.beginBackup(BackupSpec.full("vm", "vda", 2L * CS));
                w.putChunk(0, Data.chunk(r == repo ? 1 : 2, CS), CS).join();
                // left open: close() aborts it
            }
        }
        for (String sub : List.of("tmp", "locks")) {
            try (var s = Files.list(dir.resolve(sub))) {
                assertEquals(List.of(), s.toList(), sub);
            }
        }
        try (Repository repo = Repository.open(dir, OpenOptions.defaults())) {
            assertTrue(repo.listBackups().isEmpty());
            assertEquals(2, repo.catalog().chunkCount(), "the aborted backups' chunks were kept");
        }
    }

    @Test
    void specValidationNamesTheFix() throws Exception {
        try (Repository repo = init()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> repo.beginBackup(new BackupSpec(null, "d", CS, 3000, null, "full", null, null, null)));
            assertTrue(e.getMessage().contains("power of two"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                () -> repo.beginBackup(new BackupSpec(null, "d", CS, 0, null, "incremental", null, null, null)));
            assertTrue(e.getMessage().contains("needs a parent"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                () -> repo.beginBackup(new BackupSpec(null, "d", CS, 0, null, "differential", null, null, null)));
            assertTrue(e.getMessage().contains("full or incremental"), e.getMessage());
            RepositoryException re = assertThrows(RepositoryException.class,
                () -> repo.beginBackup(BackupSpec.incremental(null, "d", CS, "nope")));
            assertTrue(re.getMessage().contains("does not exist"), re.getMessage());
            String full;
            try (BackupWriter w = repo.beginBackup(BackupSpec.full(null, "d", 2L * CS))) {
                full = w.commit().id();
            }
            re = assertThrows(RepositoryException.class,
                () -> repo.beginBackup(BackupSpec.incremental(null, "d", 3L * CS, full)));
            assertTrue(re.getMessage().contains("changed size") && re.getMessage().contains("full backup"),
                re.getMessage());
            re = assertThrows(RepositoryException.class,
                () -> repo.beginBackup(BackupSpec.incremental(null, "other", 2L * CS, full)));
            assertTrue(re.getMessage().contains("is of d"), re.getMessage());
            repo.markBad(full, "test");
            re = assertThrows(RepositoryException.class,
                () -> repo.beginBackup(BackupSpec.incremental(null, "d", 2L * CS, full)));
            assertTrue(re.getMessage().contains("is bad (test)"), re.getMessage());
            assertTrue(repo.latestComplete(null, "d").isEmpty(), "a bad backup is not the latest");
            assertThrows(IllegalArgumentException.class, () -> new RepositoryOptions(3 << 20, Encryption.NONE, 1));
            assertThrows(IllegalArgumentException.class, () -> new RepositoryOptions(CS, Encryption.NONE, 23));
        }
    }

    @Test
    void writerRejectsWrongLengthsAndIndexes() throws Exception {
        try (Repository repo = init(); BackupWriter w = repo.beginBackup(BackupSpec.full(null, "d", CS + 10))) {
            assertThrows(IllegalArgumentException.class, () -> w.putChunk(0, new byte[CS], CS - 1));
            assertThrows(IllegalArgumentException.class, () -> w.putChunk(1, new byte[CS], CS));
            assertThrows(IndexOutOfBoundsException.class, () -> w.putChunk(2, new byte[10], 10));
            w.putChunk(1, Data.chunk(1, 10), 10).join();
            w.commit();
            assertThrows(IllegalStateException.class, () -> w.putZero(0));
        }
    }

    @Test
    void initRefusesANonEmptyDirectoryAndOpenNamesAMissingRepository() throws Exception {
        Files.writeString(tmp.resolve("x"), "x");
        RepositoryException e = assertThrows(RepositoryException.class,
            () -> Repository.init(tmp, RepositoryOptions.defaults(), null));
        assertTrue(e.getMessage().contains("not empty"), e.getMessage());
        e = assertThrows(RepositoryException.class, () -> Repository.open(tmp.resolve("none"), OpenOptions.defaults()));
        assertTrue(e.getMessage().contains("jbackup init"), e.getMessage());
    }
}
