package io.jbackup.store;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link BackupWriter#newHasher()} computes the ids the writer computes itself (SHA-256, or the keyed HMAC of an
 * encrypted repository), so a chunk put with a precomputed id is stored, deduplicated and read back exactly as one put
 * without; {@code verify} finds nothing wrong.
 */
class ChunkHasherTest {
    static final int CS = 64 * 1024;

    @TempDir
    Path tmp;

    @ParameterizedTest
    @EnumSource(Encryption.class)
    void aPrecomputedIdIsTheIdTheWriterComputes(Encryption enc) throws Exception {
        Path dir = tmp.resolve("repo");
        char[] pass = enc == Encryption.NONE ? null : "pass phrase".toCharArray();
        byte[] a = Data.chunk(1, CS);
        byte[] b = Data.chunk(2, CS);
        String id;
        try (Repository repo = Repository.init(dir, new RepositoryOptions(CS, enc, 1), pass)) {
            try (BackupWriter w = repo.beginBackup(BackupSpec.full("vm", "vda", 3L * CS))) {
                ChunkHasher h = w.newHasher();
                // fed in two pieces, as a backup feeds the pieces of a read
                h.update(a, 0, 1000);
                h.update(a, 1000, CS - 1000);
                w.putChunk(0, a, CS, h.finish()).get();
                w.putChunk(1, a.clone(), CS).get(); // the same data, hashed by the writer: deduplicated
                h.update(b, 0, CS);
                w.putChunk(2, b, CS, h.finish()).get();
                id = w.commit().id();
            }
            try (BackupReader r = repo.openBackup(id)) {
                assertArrayEquals(r.digest(0), r.digest(1), "the precomputed id and the writer's differ");
                assertArrayEquals(a, r.readChunk(0));
                assertArrayEquals(b, r.readChunk(2));
            }
            assertEquals(2, repo.catalog().chunkCount());
            VerifyReport v = repo.verify(VerifyOptions.all());
            assertTrue(v.ok(), v.toString());
            assertEquals(2, v.chunksChecked(), v.toString()); // unique chunks
        }
    }
}
