package io.jbackup.store;

import io.jbackup.catalog.ChunkLocation;
import io.jbackup.model.BackupInfo;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Tag("reliability")
class VerifyTest {
    static final int CS = 64 * 1024;

    @TempDir
    Path tmp;

    record Setup(Path dir, String a, String b, byte[] digest, ChunkLocation loc) {
    }

    /** Two disks share chunk seed 7 at positions 1 (disk a) and 3 (disk b). */
    private Setup setup(Encryption enc) throws Exception {
        Path dir = tmp.resolve("repo");
        String a;
        String b;
        try (Repository repo = Repository.init(dir, new RepositoryOptions(CS, enc, 1), enc == Encryption.NONE ? null
            : "pw".toCharArray())) {
            try (BackupWriter w = repo.beginBackup(BackupSpec.full("vm1", "vda", 4L * CS))) {
                for (int i = 0; i < 4; i++) {
                    w.putChunk(i, Data.chunk(i == 1 ? 7 : 10 + i, CS), CS);
                }
                a = w.commit().id();
            }
            try (BackupWriter w = repo.beginBackup(BackupSpec.full("vm2", "vdb", 4L * CS))) {
                for (int i = 0; i < 4; i++) {
                    w.putChunk(i, Data.chunk(i == 3 ? 7 : 20 + i, CS), CS);
                }
                b = w.commit().id();
            }
            byte[] digest;
            try (BackupReader r = repo.openBackup(a)) {
                digest = r.digest(1);
            }
            return new Setup(dir, a, b, digest, repo.catalog().findChunk(digest));
        }
    }

    private static void flipByte(Path file, long pos) throws Exception {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer one = ByteBuffer.allocate(1);
            ch.read(one, pos);
            one.put(0, (byte) (one.get(0) ^ 0x40)).rewind();
            ch.write(one, pos);
        }
    }

    @Test
    void flippedByteIsNamedWithEveryBackupAndDiskOffsetThatUsesIt() throws Exception {
        Setup s = setup(Encryption.NONE);
        Path pack = PackFormat.path(s.dir, s.loc.pack());
        try (Repository repo = Repository.open(s.dir, OpenOptions.defaults())) {
            assertTrue(repo.verify(VerifyOptions.all()).ok());
        }
        flipByte(pack, s.loc.offset() + PackFormat.RECORD_HEADER_SIZE + 100);
        try (Repository repo = Repository.open(s.dir, OpenOptions.defaults())) {
            VerifyReport v = repo.verify(VerifyOptions.all());
            assertEquals(1, v.damagedChunks().size(), v.toString());
            VerifyReport.DamagedChunk d = v.damagedChunks().get(0);
            assertEquals(ChunkId.hex(s.digest), d.digest());
            assertEquals(pack.toString(), d.pack());
            assertEquals(s.loc.offset(), d.packOffset());
            assertTrue(d.problem().contains("checksum"), d.problem());
            assertEquals(Set.of(new VerifyReport.Use(s.a, "vm1/vda", CS), new VerifyReport.Use(s.b, "vm2/vdb", 3L * CS)),
                Set.copyOf(d.uses()));
            assertEquals(2, d.useCount());
            assertEquals(7, v.chunksChecked(), "7 distinct chunks");

            // the first verify took it out of deduplication; verifying only backup b still names it, where it lies
            // and both users (3 chunks read: the damaged one is not read again)
            assertNull(repo.catalog().findChunk(s.digest));
            assertTrue(repo.catalog().damagedChunk(s.digest).isPresent());
            VerifyReport vb = repo.verify(new VerifyOptions(List.of(s.b), 100, false));
            assertEquals(3, vb.chunksChecked());
            assertEquals(2, vb.damagedChunks().get(0).useCount());
            assertEquals(pack.toString(), vb.damagedChunks().get(0).pack());
            assertEquals(s.loc.offset(), vb.damagedChunks().get(0).packOffset());

            try (BackupReader r = repo.openBackup(s.b)) {
                ChunkCorruptException e = assertThrows(ChunkCorruptException.class, () -> r.readChunk(3));
                assertTrue(e.getMessage().contains(pack.toString()) && e.getMessage().contains("offset " + s.loc.offset())
                    && e.getMessage().contains(s.b) && e.getMessage().contains("disk offset " + 3L * CS)
                    && e.getMessage().contains(ChunkId.hex(s.digest)), e.getMessage());
                assertArrayEquals(Data.chunk(20, CS), r.readChunk(0));
            }
        }
    }

    @Test
    void repairMarksUsersBadAndTheNextBackupHealsTheChunk() throws Exception {
        Setup s = setup(Encryption.AES_256_GCM);
        flipByte(PackFormat.path(s.dir, s.loc.pack()), s.loc.offset() + 8); // inside the record's chunk id
        OpenOptions o = OpenOptions.defaults().withPassphrase("pw");
        try (Repository repo = Repository.open(s.dir, o.withLockMode(LockMode.EXCLUSIVE))) {
            VerifyReport v = repo.verify(new VerifyOptions(List.of(), 100, true));
            assertEquals(1, v.damagedChunks().size());
            assertEquals(Set.of(s.a, s.b), Set.copyOf(v.backupsMarkedBad()));
            assertEquals(1, v.chunksForgotten());
            assertEquals(Set.of(BackupInfo.BAD), repo.listBackups().stream().map(BackupInfo::state)
                .collect(Collectors.toSet()));
            assertNull(repo.catalog().findChunk(s.digest));
            assertTrue(repo.badReason(s.a).contains("disk offset " + CS), repo.badReason(s.a));
        }
        try (Repository repo = Repository.open(s.dir, o)) {
            // the source still has the data: the next backup stores the chunk again
            try (BackupWriter w = repo.beginBackup(BackupSpec.full("vm1", "vda", CS))) {
                w.putChunk(0, Data.chunk(7, CS), CS);
                assertEquals(1, w.commit().stats().chunksNew());
            }
            try (BackupReader r = repo.openBackup(s.b)) {
                assertArrayEquals(Data.chunk(7, CS), r.readChunk(3), "the old backup reads the healed chunk");
            }
            assertTrue(repo.verify(VerifyOptions.all()).ok());
        }
    }

    @Test
    void aChunkFoundDamagedIsUsedAgainOnceItsRecordReadsIntact() throws Exception {
        Setup s = setup(Encryption.NONE);
        Path pack = PackFormat.path(s.dir, s.loc.pack());
        long at = s.loc.offset() + PackFormat.RECORD_HEADER_SIZE + 5;
        flipByte(pack, at);
        try (Repository repo = Repository.open(s.dir, OpenOptions.defaults())) {
            assertEquals(1, repo.verify(VerifyOptions.all()).chunksForgotten());
            assertTrue(!repo.catalog().hasChunk(s.digest), "no longer offered for deduplication");
        }
        flipByte(pack, at); // the pack put back as it was (e.g. from a copy)
        try (Repository repo = Repository.open(s.dir, OpenOptions.defaults())) {
            assertTrue(repo.verify(VerifyOptions.all()).ok());
            assertEquals(s.loc, repo.catalog().findChunk(s.digest));
            assertTrue(repo.catalog().damagedChunk(s.digest).isEmpty());
            try (BackupReader r = repo.openBackup(s.a)) {
                assertArrayEquals(Data.chunk(7, CS), r.readChunk(1));
            }
        }
    }

    @Test
    void missingPackAndSampling() throws Exception {
        Setup s = setup(Encryption.NONE);
        try (Repository repo = Repository.open(s.dir, OpenOptions.defaults())) {
            VerifyReport sample = repo.verify(new VerifyOptions(List.of(), 1, false));
            assertTrue(sample.ok());
            assertTrue(sample.chunksChecked() < 7, "sampled " + sample.chunksChecked());
        }
        Files.delete(PackFormat.path(s.dir, s.loc.pack()));
        try (Repository repo = Repository.open(s.dir, OpenOptions.defaults())) {
            VerifyReport v = repo.verify(VerifyOptions.all());
            assertEquals(4, v.damagedChunks().size(), "the 4 chunks first stored by backup a");
            assertTrue(v.damagedChunks().get(0).problem().contains("missing"), v.toString());
        }
    }
}
