package io.jbackup.engine;

import io.jbackup.catalog.ChunkLocation;
import io.jbackup.store.BackupReader;
import io.jbackup.store.BackupSpec;
import io.jbackup.store.BackupWriter;
import io.jbackup.store.Encryption;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.store.RepositoryOptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The restore pipeline ({@link DiskRestore} decoding into reused direct buffers on several workers, one writer) on
 * a repository written through the API: bit-exact with every worker count and read-ahead, sparse where the backup
 * has zero chunks, encrypted or not, and a damaged chunk reported at its own disk offset however many decoders run.
 */
class RestorePipelineTest {
    private static final int CS = 64 << 10;
    private static final int CHUNKS = 96;
    private static final String PASS = "pipeline-test";

    @TempDir
    Path dir;

    /** The image: random (incompressible, stored) chunks, compressible ones, duplicates and zero runs; last is short. */
    private static byte[] image() {
        long size = (long) CHUNKS * CS - 12345;
        byte[] img = new byte[(int) size];
        Random rnd = new Random(15);
        for (int i = 0; i < CHUNKS; i++) {
            int off = i * CS;
            int len = Math.min(CS, img.length - off);
            switch (i % 6) {
                case 0, 1 -> { } // zero chunks: runs of two
                case 2 -> {
                    byte[] r = new byte[len];
                    rnd.nextBytes(r);
                    System.arraycopy(r, 0, img, off, len);
                }
                case 3 -> Arrays.fill(img, off, off + len, (byte) (i / 6 % 3 + 1)); // repeats: deduplicated
                default -> {
                    for (int k = 0; k < len; k++) {
                        img[off + k] = (byte) ("jbackup restore pipeline " + i).charAt(k % 26);
                    }
                }
            }
        }
        return img;
    }

    private String backup(Path repo, Encryption enc, byte[] img) throws IOException {
        try (Repository r = Repository.init(repo, new RepositoryOptions(CS, enc, 1),
                enc == Encryption.NONE ? null : PASS.toCharArray());
             BackupWriter w = r.beginBackup(BackupSpec.full("vm", "vda", img.length))) {
            for (int i = 0; i < CHUNKS; i++) {
                int off = i * CS;
                int len = Math.min(CS, img.length - off);
                boolean zero = true;
                for (int k = off; k < off + len && zero; k++) {
                    zero = img[k] == 0;
                }
                if (!zero) {
                    w.putChunk(i, Arrays.copyOfRange(img, off, off + len), len).join();
                }
            }
            return w.commit().id();
        }
    }

    private static OpenOptions open(Encryption enc, int workers) {
        OpenOptions o = OpenOptions.defaults().withWorkerThreads(workers);
        return enc == Encryption.NONE ? o : o.withPassphrase(PASS);
    }

    private static RestoreResult restore(Path repo, Encryption enc, String id, Path out, int workers, int readAhead,
                                         boolean ignoreErrors) throws Exception {
        try (Repository r = Repository.open(repo, open(enc, workers)); BackupReader reader = r.openBackup(id);
             FileTarget t = FileTarget.open(out, reader.imageSize(), false, false)) {
            return new DiskRestore(reader, t, ignoreErrors, readAhead, ProgressListener.NONE, new Cancellation()).run();
        }
    }

    private static long allocatedBytes(Path f) throws Exception {
        Process p = new ProcessBuilder("stat", "-c", "%b %B", f.toString()).start();
        String[] s = new String(p.getInputStream().readAllBytes()).trim().split(" ");
        assertEquals(0, p.waitFor());
        return Long.parseLong(s[0]) * Long.parseLong(s[1]);
    }

    @Test
    void bitExactAndSparseWithAnyWorkerCountAndReadAhead() throws Exception {
        byte[] img = image();
        long dataBytes = 0;
        for (int i = 0; i < CHUNKS; i++) {
            dataBytes += i % 6 < 2 ? 0 : Math.min(CS, img.length - (long) i * CS);
        }
        for (Encryption enc : List.of(Encryption.NONE, Encryption.AES_256_GCM)) {
            Path repo = dir.resolve("repo-" + enc);
            String id = backup(repo, enc, img);
            for (int workers : new int[] {1, 2, 4}) {
                for (int readAhead : new int[] {1, 3, 32}) {
                    Path out = dir.resolve("out-" + enc + "-" + workers + "-" + readAhead + ".raw");
                    RestoreResult res = restore(repo, enc, id, out, workers, readAhead, false);
                    String what = enc + ", " + workers + " workers, read-ahead " + readAhead;
                    assertArrayEquals(img, Files.readAllBytes(out), what);
                    assertEquals(dataBytes, res.bytesWritten(), what);
                    assertTrue(res.damaged().isEmpty(), what);
                    assertTrue(allocatedBytes(out) <= dataBytes + (1 << 20),
                        what + ": zero chunks stay holes (" + allocatedBytes(out) + " allocated, " + dataBytes
                            + " data)");
                    Files.delete(out);
                }
            }
        }
    }

    @Test
    void bufferedWritesWhenDirectIoIsOff() throws Exception {
        byte[] img = image();
        Path repo = dir.resolve("repo");
        String id = backup(repo, Encryption.NONE, img);
        Path out = dir.resolve("buffered.raw");
        System.setProperty("jbackup.restore.directIo", "false");
        try {
            restore(repo, Encryption.NONE, id, out, 2, 4, false);
        } finally {
            System.clearProperty("jbackup.restore.directIo");
        }
        assertArrayEquals(img, Files.readAllBytes(out));
        // into an existing file full of old data: replaced by a temporary file (no --zero) or written in place with
        // zeros (--zero);
        // either way the backup, byte for byte
        byte[] old = new byte[img.length];
        Arrays.fill(old, (byte) 0x7e);
        for (boolean zero : new boolean[] {false, true}) {
            Files.write(out, old);
            try (Repository r = Repository.open(repo, OpenOptions.defaults()); BackupReader reader = r.openBackup(id);
                 FileTarget t = FileTarget.open(out, reader.imageSize(), true, zero)) {
                new DiskRestore(reader, t, false, 5, ProgressListener.NONE, new Cancellation()).run();
            }
            assertArrayEquals(img, Files.readAllBytes(out), "--zero " + zero);
        }
    }

    @Test
    void damagedChunkIsReportedAtItsOffsetWithSeveralDecoders() throws Exception {
        byte[] img = image();
        Path repo = dir.resolve("repo");
        String id = backup(repo, Encryption.NONE, img);
        int index = 20; // i % 6 == 2: a random chunk nothing else shares
        try (Repository r = Repository.open(repo, OpenOptions.defaults()); BackupReader reader = r.openBackup(id)) {
            ChunkLocation loc = r.chunkLocation(reader.digest(index));
            try (RandomAccessFile pack = new RandomAccessFile(r.packFile(loc.pack()).toFile(), "rw")) {
                long at = loc.offset() + loc.length() - 100;
                pack.seek(at);
                int v = pack.read();
                pack.seek(at);
                pack.write(v ^ 0x10);
            }
        }
        for (int workers : new int[] {1, 4}) {
            Path out = dir.resolve("stop-" + workers + ".raw");
            IOException e = assertThrows(IOException.class, () -> restore(repo, Encryption.NONE, id, out, workers, 8,
                false));
            assertTrue(e.getMessage().contains("chunk " + index + " (disk offset " + (long) index * CS + ", " + CS
                + " bytes) of backup " + id) && e.getMessage().contains("checksum mismatch")
                && e.getMessage().contains("--ignore-errors"), e.getMessage());
            assertTrue(Files.notExists(out), "a failed restore removes the file it created");

            RestoreResult res = restore(repo, Encryption.NONE, id, out, workers, 8, true);
            assertEquals(List.of((long) index * CS), res.damaged().stream().map(RestoreResult.DamagedRange::offset)
                .toList());
            assertEquals(CS, res.damaged().get(0).length());
            byte[] expected = img.clone();
            Arrays.fill(expected, index * CS, (index + 1) * CS, (byte) 0);
            assertArrayEquals(expected, Files.readAllBytes(out), "zeros where damaged, the backup elsewhere");
            Files.delete(out);
        }
    }

    @Test
    void targetsWithoutABufferWriteGetTheirOwnCopy() throws Exception {
        byte[] img = image();
        Path repo = dir.resolve("repo");
        String id = backup(repo, Encryption.NONE, img);
        List<byte[]> held = new ArrayList<>();
        List<Long> offsets = new ArrayList<>();
        RestoreTarget keeping = new RestoreTarget() { // keeps the arrays, as an asynchronous target would
            @Override
            public String description() {
                return "memory";
            }

            @Override
            public String format() {
                return "raw";
            }

            @Override
            public synchronized void write(long offset, byte[] data, int length) {
                held.add(data);
                offsets.add(offset);
                assertEquals(data.length, length);
            }

            @Override
            public void writeZeroes(long offset, long length) {
            }

            @Override
            public boolean needsZeroes() {
                return false;
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        };
        try (Repository r = Repository.open(repo, OpenOptions.defaults().withWorkerThreads(3));
             BackupReader reader = r.openBackup(id)) {
            new DiskRestore(reader, keeping, false, 2, ProgressListener.NONE, new Cancellation()).run();
        }
        byte[] got = new byte[img.length];
        for (int k = 0; k < held.size(); k++) {
            System.arraycopy(held.get(k), 0, got, (int) (long) offsets.get(k), held.get(k).length);
        }
        assertArrayEquals(img, got, "no array handed to a target is reused");
    }
}
