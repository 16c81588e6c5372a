package io.jbackup.store;

import io.jbackup.model.RepositoryException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The on-disk formats: layouts as documented, and every bound checked on read. */
class FormatTest {
    static final int CS = 64 * 1024;

    @TempDir
    Path tmp;

    @Test
    void recordLayoutAndBounds() throws Exception {
        try (ChunkCodec codec = new ChunkCodec(1, null, 2)) {
            ChunkCodec.Scratch s = codec.borrow();
            byte[] data = Data.chunk(1, CS);
            byte[] id = codec.chunkId(s, data, CS);
            assertArrayEquals(Data.sha256(data), id);
            int len = codec.encode(s, id, data, CS);
            byte[] rec = Arrays.copyOf(s.record(), len);
            ByteBuffer b = ByteBuffer.wrap(rec);
            assertEquals(0x4A424352, b.getInt(0));
            assertEquals(PackFormat.CODEC_ZSTD, rec[5]);
            assertArrayEquals(id, Arrays.copyOfRange(rec, 8, 40));
            assertEquals(CS, b.getInt(40));
            assertEquals(len - 52, b.getInt(44));
            assertArrayEquals(data, codec.decode(s, rec, len, id, CS));

            byte[] bad = rec.clone();
            ByteBuffer.wrap(bad).putInt(44, CS + 1); // payload longer than raw: never valid unencrypted
            ChunkCodec.RecordException e = assertThrows(ChunkCodec.RecordException.class,
                () -> codec.decode(s, bad, len, id, CS));
            assertTrue(e.getMessage().contains("payload length"), e.getMessage());
            byte[] bad2 = rec.clone();
            ByteBuffer.wrap(bad2).putInt(40, 5 << 20);
            e = assertThrows(ChunkCodec.RecordException.class, () -> codec.decode(s, bad2, len, id, CS));
            assertTrue(e.getMessage().contains("raw length"), e.getMessage());
            e = assertThrows(ChunkCodec.RecordException.class, () -> codec.decode(s, rec, len, new byte[32], CS));
            assertTrue(e.getMessage().contains("instead"), e.getMessage());
            // incompressible data is stored as is
            byte[] random = new byte[CS];
            new java.util.Random(1).nextBytes(random);
            int rl = codec.encode(s, codec.chunkId(s, random, CS), random, CS);
            assertEquals(PackFormat.CODEC_STORED, s.record()[5]);
            assertEquals(52 + CS, rl);
            codec.release(s);
        }
    }

    /**
     * {@code encodeParts} leaves a stored payload in the caller's array instead of copying it behind the header
     * (the pack writer copies both parts into its staging buffer); header plus payload are the very bytes that
     * {@code encode} writes, CRC included. A compressed or an encrypted record is whole in {@code record()}.
     */
    @Test
    void aStoredPayloadStaysInPlaceAndMakesTheSameRecord() throws Exception {
        byte[] random = new byte[CS];
        new java.util.Random(7).nextBytes(random);
        byte[] text = Data.chunk(3, CS);
        try (ChunkCodec codec = new ChunkCodec(1, null, 2)) {
            ChunkCodec.Scratch s = codec.borrow();
            byte[] id = codec.chunkId(s, random, CS);
            int wholeLen = codec.encode(s, id, random, CS); // first: encode may grow record()
            byte[] whole = Arrays.copyOf(s.record(), wholeLen);
            assertEquals(null, s.body());
            int len = codec.encodeParts(s, id, random, CS);
            assertTrue(s.body() == random, "the payload was copied");
            byte[] parts = new byte[len];
            System.arraycopy(s.record(), 0, parts, 0, PackFormat.RECORD_HEADER_SIZE);
            System.arraycopy(s.body(), 0, parts, PackFormat.RECORD_HEADER_SIZE, len - PackFormat.RECORD_HEADER_SIZE);
            assertArrayEquals(whole, parts);
            assertArrayEquals(random, codec.decode(s, parts, len, id, CS));

            byte[] tid = codec.chunkId(s, text, CS);
            int compressedLen = codec.encode(s, tid, text, CS);
            byte[] compressed = Arrays.copyOf(s.record(), compressedLen);
            int clen = codec.encodeParts(s, tid, text, CS);
            assertEquals(null, s.body());
            assertArrayEquals(compressed, Arrays.copyOf(s.record(), clen));
            codec.release(s);
        }
        RepositoryKeys keys = RepositoryKeys.derive(new byte[32], "repo-id");
        try (ChunkCodec codec = new ChunkCodec(1, keys, 2)) {
            ChunkCodec.Scratch s = codec.borrow();
            byte[] id = codec.chunkId(s, random, CS);
            int len = codec.encodeParts(s, id, random, CS);
            assertEquals(null, s.body());
            assertArrayEquals(random, codec.decode(s, Arrays.copyOf(s.record(), len), len, id, CS));
            codec.release(s);
        }
    }

    /**
     * Chunks of 128 KiB and more are probed at their start, middle and end before compression: only when all three
     * samples are incompressible is the chunk stored without trying (so a chunk made to look random there is stored
     * as is, though it would compress); any compressible sample and the chunk is compressed.
     */
    @Test
    void incompressibleChunksAreDetectedByAProbe() throws Exception {
        int len = 1 << 20;
        int mid = (len - ChunkCodec.PROBE_SAMPLE) / 2;
        byte[] looksRandom = new byte[len];
        new java.util.Random(5).nextBytes(looksRandom);
        Arrays.fill(looksRandom, 8192, mid - 8192, (byte) 0); // zeros between the samples: compressible
        Arrays.fill(looksRandom, mid + 8192, len - 8192, (byte) 0);
        byte[] middleCompressible = looksRandom.clone();
        Arrays.fill(middleCompressible, mid, mid + ChunkCodec.PROBE_SAMPLE, (byte) 0x41);
        byte[] random = new byte[len];
        new java.util.Random(6).nextBytes(random);
        try (ChunkCodec codec = new ChunkCodec(1, null, 2)) {
            ChunkCodec.Scratch s = codec.borrow();
            for (byte[] data : List.of(looksRandom, middleCompressible, random)) {
                byte[] id = codec.chunkId(s, data, len);
                int rl = codec.encode(s, id, data, len);
                byte[] rec = Arrays.copyOf(s.record(), rl);
                if (data == middleCompressible) {
                    assertEquals(PackFormat.CODEC_ZSTD, rec[5], "one compressible sample: compressed");
                    assertTrue(rl < len / 2, "compressed to " + rl);
                } else {
                    assertEquals(PackFormat.CODEC_STORED, rec[5], "every sample incompressible: stored");
                    assertEquals(52 + len, rl);
                }
                assertArrayEquals(data, codec.decode(s, rec, rl, id, len));
            }
            codec.release(s);
        }
    }

    /** decodeInto gives what decode gives, into a heap or direct buffer at its position, and fails the same way. */
    @Test
    void decodeIntoMatchesDecode() throws Exception {
        RepositoryKeys keys = RepositoryKeys.derive(new byte[32], "repo-id");
        for (RepositoryKeys k : Arrays.asList(null, keys)) {
            try (ChunkCodec codec = new ChunkCodec(1, k, 2)) {
                ChunkCodec.Scratch s = codec.borrow();
                byte[] random = new byte[CS - 7];
                new java.util.Random(2).nextBytes(random);
                for (byte[] data : List.of(Data.chunk(3, CS), random)) {
                    byte[] id = codec.chunkId(s, data, data.length);
                    int len = codec.encode(s, id, data, data.length);
                    byte[] rec = Arrays.copyOf(s.record(), len);
                    for (ByteBuffer dst : List.of(ByteBuffer.allocate(CS + 10), ByteBuffer.allocateDirect(CS + 10))) {
                        dst.position(10);
                        codec.decodeInto(s, rec, len, id, data.length, dst);
                        assertEquals(10 + data.length, dst.position());
                        byte[] got = new byte[data.length];
                        dst.get(10, got);
                        assertArrayEquals(data, got);
                        assertArrayEquals(codec.decode(s, rec, len, id, data.length), got);

                        byte[] bad = rec.clone();
                        bad[len - 5] ^= 1;
                        dst.position(3);
                        String want = assertThrows(ChunkCodec.RecordException.class,
                            () -> codec.decode(s, bad, len, id, data.length)).getMessage();
                        String e = assertThrows(ChunkCodec.RecordException.class,
                            () -> codec.decodeInto(s, bad, len, id, data.length, dst)).getMessage();
                        assertEquals(want, e);
                        assertTrue(e.contains("checksum"), e);
                        assertEquals(3, dst.position(), "position unchanged on failure");
                    }
                }
                codec.release(s);
            }
        }
    }

    @Test
    void indexFileLayoutAndDamageDetection() throws Exception {
        Path dir = tmp.resolve("repo");
        String id;
        try (Repository repo = Repository.init(dir, new RepositoryOptions(CS, Encryption.NONE, 1), null)) {
            try (BackupWriter w = repo.beginBackup(BackupSpec.full("vm", "vda", 3L * CS))) {
                w.putChunk(1, Data.chunk(9, CS), CS);
                id = w.commit().id();
            }
        }
        Path idx = IndexFile.path(dir, id);
        byte[] f = Files.readAllBytes(idx);
        ByteBuffer b = ByteBuffer.wrap(f);
        assertEquals(0x4A424B4944583031L, b.getLong(0));
        assertEquals(3, b.getLong(16));
        assertEquals(CS, b.getInt(24));
        int m = b.getInt(28);
        assertEquals(64 + 3 * 32 + m + 32, f.length);
        assertArrayEquals(new byte[32], Arrays.copyOfRange(f, 64, 96), "position 0 is the zero digest");
        assertArrayEquals(Data.sha256(Data.chunk(9, CS)), Arrays.copyOfRange(f, 96, 128));
        String meta = new String(f, 160, m, java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(meta.contains("\"disk\" : \"vda\"") && meta.contains("\"uuid\""), meta);
        byte[] expectedEntriesMac = Data.sha256(Arrays.copyOfRange(f, 64, 160));
        assertArrayEquals(expectedEntriesMac, Arrays.copyOfRange(f, 32, 64));

        try (Repository repo = Repository.open(dir, OpenOptions.defaults())) {
            byte[] entryFlip = f.clone();
            entryFlip[100] ^= 1;
            Files.write(idx, entryFlip);
            RepositoryException e = assertThrows(RepositoryException.class, () -> repo.openBackup(id));
            assertTrue(e.getMessage().contains("entries checksum") && e.getMessage().contains(idx.toString()),
                e.getMessage());
            Files.write(idx, Arrays.copyOf(f, f.length - 1));
            e = assertThrows(RepositoryException.class, () -> repo.openBackup(id));
            assertTrue(e.getMessage().contains("its header says"), e.getMessage());
            byte[] huge = f.clone();
            ByteBuffer.wrap(huge).putLong(16, 1L << 40);
            Files.write(idx, huge);
            e = assertThrows(RepositoryException.class, () -> repo.openBackup(id));
            assertTrue(e.getMessage().contains("out-of-range"), e.getMessage());
            Files.write(idx, f);
            try (BackupReader r = repo.openBackup(id)) {
                assertArrayEquals(Data.chunk(9, CS), r.readChunk(1));
            }
        }
    }

    @Test
    void packFooterIsCheckedBeforeUse() throws Exception {
        Path dir = tmp.resolve("repo");
        try (Repository repo = Repository.init(dir, new RepositoryOptions(CS, Encryption.NONE, 1), null)) {
            try (BackupWriter w = repo.beginBackup(BackupSpec.full("vm", "vda", 2L * CS))) {
                w.putChunk(0, Data.chunk(1, CS), CS);
                w.putChunk(1, Data.chunk(2, CS), CS);
                w.commit();
            }
            Path pack = repo.listPackFiles().get(0);
            String name = Repository.packName(pack);
            PackReader.Contents c = PackReader.readFooter(pack, name, repo::metaMac, false);
            assertEquals(2, c.entries().size());
            assertEquals(32, c.entries().get(0).offset());
            byte[] f = Files.readAllBytes(pack);
            assertEquals(Files.size(pack), c.fileSize());
            long footer = ByteBuffer.wrap(f).getLong(f.length - 64);
            assertEquals(f.length, footer + 2 * 48 + 64);

            byte[] shifted = f.clone();
            ByteBuffer.wrap(shifted).putLong((int) footer + 32, 33); // first entry's offset
            Files.write(pack, shifted);
            RepositoryException e = assertThrows(RepositoryException.class,
                () -> PackReader.readFooter(pack, name, repo::metaMac, false));
            assertTrue(e.getMessage().contains("footer checksum"), e.getMessage());
            byte[] count = f.clone();
            ByteBuffer.wrap(count).putInt(f.length - 56, 1 << 30);
            Files.write(pack, count);
            e = assertThrows(RepositoryException.class, () -> PackReader.readFooter(pack, name, repo::metaMac, false));
            assertTrue(e.getMessage().contains("inconsistent trailer"), e.getMessage());
            e = assertThrows(RepositoryException.class,
                () -> PackReader.readFooter(pack, "00".repeat(16), repo::metaMac, false));
            assertTrue(e.getMessage().contains("pack id"), e.getMessage());
        }
    }
}
