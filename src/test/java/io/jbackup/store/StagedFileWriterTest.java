package io.jbackup.store;

import io.jbackup.testutil.Proc;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Packs written in whole blocks with O_DIRECT hold exactly the bytes appended; buffered where O_DIRECT is refused. */
class StagedFileWriterTest {
    @TempDir
    Path dir;

    /** Appends of every size (a few bytes to several stages at once), flushed twice over; returns what was written. */
    private static byte[] writeAll(StagedFileWriter w, long seed) throws Exception {
        Random r = new Random(seed);
        ByteArrayOutputStream want = new ByteArrayOutputStream();
        int[] sizes = {52, 1, 4095, 4096, 4097, StagedFileWriter.STAGE_SIZE - 7, 3 * StagedFileWriter.STAGE_SIZE + 11,
            511, 1 << 20, 77};
        for (int size : sizes) {
            byte[] b = new byte[size + 10];
            r.nextBytes(b);
            if (size % 2 == 0) {
                w.write(b, 5, size);
            } else {
                w.write(ByteBuffer.allocateDirect(size).put(b, 5, size).flip());
            }
            want.write(b, 5, size);
            assertEquals(want.size(), w.size());
        }
        return want.toByteArray();
    }

    @Test
    void directWritesHoldExactlyTheBytesAppended() throws Exception {
        Path f = dir.resolve("p.pack");
        byte[] want;
        try (StagedFileWriter w = new StagedFileWriter(f, true)) {
            assertTrue(w.directIo(), "O_DIRECT on the test's file system (" + Files.getFileStore(dir).type() + ")");
            want = writeAll(w, 1);
            w.flush();
            w.force();
        }
        assertEquals(want.length, Files.size(f), "cut to its exact size after the padded last block");
        assertArrayEquals(want, Files.readAllBytes(f));
    }

    @Test
    void withoutDirectIoTheBytesAreTheSame() throws Exception {
        System.setProperty("jbackup.pack.directIo", "false");
        try (StagedFileWriter w = new StagedFileWriter(dir.resolve("b.pack"), true)) {
            assertFalse(w.directIo());
            byte[] want = writeAll(w, 2);
            w.flush();
            assertArrayEquals(want, Files.readAllBytes(dir.resolve("b.pack")));
        } finally {
            System.clearProperty("jbackup.pack.directIo");
        }
        try (StagedFileWriter w = new StagedFileWriter(dir.resolve("c.pack"), false)) {
            assertFalse(w.directIo(), "asked for buffered writes (a pack for an object store)");
            byte[] want = writeAll(w, 4);
            w.flush();
            assertArrayEquals(want, Files.readAllBytes(dir.resolve("c.pack")));
        }
    }

    private interface InDir {
        void run(Path dir) throws Exception;
    }

    /** Runs {@code body} in a tmpfs of {@code size} mounted for it (skipped where mounting needs root). */
    private void inTmpfs(String name, String size, InDir body) throws Exception {
        Path mnt = Files.createDirectories(dir.resolve(name));
        Proc.Result m = Proc.exec(Duration.ofSeconds(30), "mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs",
            mnt.toString());
        Assumptions.assumeTrue(m.exitCode() == 0, "needs root to mount a tmpfs: " + m.stderr().trim());
        try {
            body.run(mnt);
        } finally {
            Proc.exec(Duration.ofSeconds(30), "umount", mnt.toString());
        }
    }

    /** tmpfs (O_DIRECT accepted by recent kernels, refused by older ones): the same bytes either way. */
    @Test
    void onTmpfsTheBytesAreTheSame() throws Exception {
        inTmpfs("tmpfs", "64m", mnt -> {
            try (StagedFileWriter w = new StagedFileWriter(mnt.resolve("t.pack"), true)) {
                byte[] want = writeAll(w, 3);
                w.flush();
                assertArrayEquals(want, Files.readAllBytes(mnt.resolve("t.pack")));
            }
        });
    }

    /** A full disk under a stage being written in the background: the next write, flush or close says so. */
    @Test
    void aBackgroundWriteFailureIsThrownByTheNextCall() throws Exception {
        inTmpfs("small", "2m", mnt -> {
            IOException e = assertThrows(IOException.class, () -> {
                try (StagedFileWriter w = new StagedFileWriter(mnt.resolve("full.pack"), true)) {
                    byte[] b = new byte[StagedFileWriter.STAGE_SIZE];
                    for (int i = 0; i < 8; i++) {
                        w.write(b, 0, b.length);
                    }
                    w.flush();
                }
            });
            assertTrue(String.valueOf(e.getMessage()).contains("No space left on device"), e.toString());
        });
    }
}
