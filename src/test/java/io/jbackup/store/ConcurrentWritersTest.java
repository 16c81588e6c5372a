package io.jbackup.store;

import io.jbackup.model.BackupInfo;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Tag("reliability")
class ConcurrentWritersTest {
    static final int CS = 64 * 1024;

    @TempDir
    Path tmp;

    @Test
    void severalDisksAtOnceInOneProcessDeduplicateAgainstEachOthersOpenPacks() throws Exception {
        int disks = 4;
        int chunks = 48;
        // disk d, position i holds seed (i * 7 + d) % 40: the disks share most chunks, in other orders
        try (Repository repo = Repository.init(tmp.resolve("repo"), new RepositoryOptions(CS, Encryption.NONE, 1,
            1 << 20), null)) {
            ExecutorService ex = Executors.newFixedThreadPool(disks);
            List<Future<BackupInfo>> fs = new ArrayList<>();
            for (int d = 0; d < disks; d++) {
                int disk = d;
                fs.add(ex.submit((Callable<BackupInfo>) () -> {
                    try (BackupWriter w = repo.beginBackup(BackupSpec.full("vm" + disk, "vda", (long) chunks * CS))) {
                        List<CompletableFuture<Void>> puts = new ArrayList<>();
                        for (int i = 0; i < chunks; i++) {
                            puts.add(w.putChunk(i, Data.chunk((i * 7L + disk) % 40, CS), CS));
                        }
                        CompletableFuture.allOf(puts.toArray(CompletableFuture[]::new)).join();
                        return w.commit();
                    }
                }));
            }
            long newChunks = 0;
            for (Future<BackupInfo> f : fs) {
                newChunks += f.get().stats().chunksNew();
            }
            ex.shutdown();
            assertEquals(40, newChunks, "each distinct chunk stored once, whichever writer got it first");
            assertEquals(40, repo.catalog().chunkCount());
            for (Future<BackupInfo> f : fs) {
                BackupInfo b = f.get();
                int disk = Integer.parseInt(b.vm().substring(2));
                try (BackupReader r = repo.openBackup(b.id())) {
                    for (int i = 0; i < chunks; i++) {
                        assertArrayEquals(Data.chunk((i * 7L + disk) % 40, CS), r.readChunk(i), b.id() + " @" + i);
                    }
                }
            }
            assertTrue(repo.verify(VerifyOptions.all()).ok());
        }
    }

    @Test
    void twoProcessesWriteTheSameRepositoryAtOnce() throws Exception {
        Path dir = tmp.resolve("repo");
        long size = 60L * CS + 5;
        Repository.init(dir, new RepositoryOptions(CS, Encryption.NONE, 1, 1 << 20), null).close();
        List<Child> children = new ArrayList<>();
        try {
            for (int p = 0; p < 2; p++) {
                children.add(Child.start(tmp.resolve("logs"), List.of("-XX:TieredStopAtLevel=1"), "write",
                    dir.toString(), "p" + p, Integer.toString(p + 1), Long.toString(size), Integer.toString(CS), "2"));
            }
            // and this process writes a third disk meanwhile
            try (Repository repo = Repository.open(dir, OpenOptions.defaults())) {
                ImageModel m = new ImageModel(size, CS, 3, 16);
                try (BackupWriter w = repo.beginBackup(new BackupSpec(null, "p2", size, CS, null, "full",
                    java.util.Map.of("version", "3"), null, null))) {
                    for (long i = 0; i < m.chunkCount(); i++) {
                        w.putChunk(i, m.chunk(i), m.length(i));
                        Thread.sleep(2);
                    }
                    w.commit();
                }
            }
            for (Child c : children) {
                assertEquals(0, c.await(60), c.describe());
            }
        } finally {
            for (Child c : children) {
                c.close();
            }
        }
        try (Repository repo = Repository.open(dir, OpenOptions.defaults())) {
            Set<String> disks = new HashSet<>();
            for (BackupInfo b : repo.listBackups()) {
                disks.add(b.disk());
                ImageModel m = new ImageModel(size, CS, Long.parseLong(b.labels().get("version")), 16);
                try (BackupReader r = repo.openBackup(b.id())) {
                    assertArrayEquals(m.sha256(), ImageModel.restoredSha256(r), b.id());
                }
            }
            assertEquals(Set.of("p0", "p1", "p2"), disks);
            assertTrue(repo.verify(VerifyOptions.all()).ok());
        }
    }
}
