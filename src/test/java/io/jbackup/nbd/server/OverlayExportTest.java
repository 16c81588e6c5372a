package io.jbackup.nbd.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jbackup.nbd.protocol.Extent;
import io.netty.buffer.Unpooled;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Applies random writes, zeroing and trims to an {@link OverlayExport} and to a byte-array model, and checks that
 * the merged image, block status and changed ranges agree with the model, survive reopening, and never touch the
 * base.
 */
class OverlayExportTest {
    private static final int BLOCK = 4096;
    private static final int SIZE = 1 << 20 | 1000; // not a multiple of the block size

    @TempDir
    Path dir;

    private static byte[] baseBytes() {
        byte[] b = new byte[SIZE];
        new Random(7).nextBytes(b);
        Arrays.fill(b, 200_000, 300_000, (byte) 0);
        return b;
    }

    private static byte[] readAll(NbdExport e) {
        byte[] out = new byte[(int) e.size()];
        for (int pos = 0; pos < out.length; pos += 65536) {
            int n = Math.min(65536, out.length - pos);
            ReadResult r = e.read(pos, n).join();
            assertEquals(n, r.length());
            int i = pos;
            for (ReadResult.Segment s : r.segments()) {
                if (s instanceof ReadResult.Data d) {
                    d.buf().getBytes(d.buf().readerIndex(), out, i, s.length());
                }
                i += s.length();
            }
            r.release();
        }
        return out;
    }

    @Test
    void randomOperationsMatchAModelAndSurviveReopening() throws IOException {
        byte[] baseData = baseBytes();
        byte[] baseCopy = baseData.clone();
        MemoryExport base = new MemoryExport("disk", "", baseData, true);
        byte[] model = baseData.clone();
        boolean[] changed = new boolean[(SIZE + BLOCK - 1) / BLOCK];
        Path file = dir.resolve("overlay");
        Random rnd = new Random(1);
        OverlayExport o = OverlayExport.open(base, file);
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < 60; i++) {
                int off = rnd.nextInt(SIZE);
                int len = 1 + rnd.nextInt(Math.min(3 * BLOCK + 100, SIZE - off));
                switch (rnd.nextInt(4)) {
                    case 0, 1 -> {
                        byte[] data = new byte[len];
                        rnd.nextBytes(data);
                        o.write(off, Unpooled.wrappedBuffer(data), rnd.nextBoolean()).join();
                        System.arraycopy(data, 0, model, off, len);
                        markChanged(changed, off, len);
                    }
                    case 2 -> {
                        o.writeZeroes(off, len, false).join();
                        Arrays.fill(model, off, off + len, (byte) 0);
                        markChanged(changed, off, len);
                    }
                    default -> {
                        o.trim(off, len).join();
                        // trim zeroes whole blocks only; partial blocks keep their content
                        long first = (off + BLOCK - 1) / BLOCK;
                        long endBlock = off + len == SIZE ? changed.length : (off + len) / BLOCK;
                        for (long b = first; b < endBlock; b++) {
                            int s = (int) (b * BLOCK);
                            Arrays.fill(model, s, Math.min(SIZE, s + BLOCK), (byte) 0);
                            changed[(int) b] = true;
                        }
                    }
                }
            }
            assertArrayEquals(model, readAll(o), "round " + round);
            checkAllocation(o, model);
            checkChanges(o, changed);
            if (round == 1) {
                o.close();
                o = OverlayExport.open(base, file); // reopen: state from the map
                assertArrayEquals(model, readAll(o), "after reopening");
            }
        }
        o.flush().join();
        // a crash after the flush: the map on disk is complete
        OverlayExport reopened = OverlayExport.open(base, file);
        assertArrayEquals(model, readAll(reopened));
        reopened.close();
        o.close();
        assertArrayEquals(baseCopy, baseData, "the base must not change");
        assertEquals(SIZE, Files.size(file), "the overlay file has the export's size");
    }

    private static void markChanged(boolean[] changed, int off, int len) {
        for (int b = off / BLOCK; b <= (off + len - 1) / BLOCK; b++) {
            changed[b] = true;
        }
    }

    private static void checkAllocation(OverlayExport o, byte[] model) {
        long pos = 0;
        while (pos < SIZE) {
            List<Extent> ext = o.allocation(pos, SIZE - pos).join();
            assertFalse(ext.isEmpty());
            for (Extent e : ext) {
                assertEquals(pos, e.offset(), "extents must be contiguous");
                if (e.flags() != 0) {
                    for (long i = e.offset(); i < e.end(); i++) {
                        if (model[(int) i] != 0) {
                            throw new AssertionError("extent " + e + " claims zero but byte " + i + " is " + model[(int) i]);
                        }
                    }
                }
                pos = e.end();
            }
        }
    }

    private static void checkChanges(OverlayExport o, boolean[] changed) {
        boolean[] got = new boolean[changed.length];
        for (OverlayExport.ChangedRange r : o.changes()) {
            assertEquals(0, r.offset() % BLOCK);
            for (long b = r.offset() / BLOCK; b * BLOCK < r.offset() + r.length(); b++) {
                got[(int) b] = true;
            }
        }
        assertArrayEquals(changed, got, "changed blocks");
    }

    @Test
    void partialWritesCopyOnlyTheEdgeBlocks() throws IOException {
        byte[] baseData = baseBytes();
        OverlayExport o = OverlayExport.open(new MemoryExport("d", "", baseData, true), dir.resolve("ov"));
        o.write(BLOCK + 10, Unpooled.wrappedBuffer(new byte[3 * BLOCK]), false).join();
        List<OverlayExport.ChangedRange> ch = o.changes();
        assertEquals(List.of(new OverlayExport.ChangedRange(BLOCK, 4L * BLOCK, OverlayExport.ChangeKind.DATA)), ch);
        o.writeZeroes(8L * BLOCK, 2L * BLOCK, false).join();
        assertEquals(new OverlayExport.ChangedRange(8L * BLOCK, 2L * BLOCK, OverlayExport.ChangeKind.ZERO),
            o.changes().get(1));
        assertEquals(6L * BLOCK, o.changedBytes());
        o.close();
    }

    @Test
    void largeExportsKeepSmallMapsAndFastScans() throws IOException {
        long size = 256L << 30;
        NbdExport huge = new NbdExport() {
            @Override
            public String name() {
                return "huge";
            }

            @Override
            public long size() {
                return size;
            }

            @Override
            public boolean readOnly() {
                return true;
            }

            @Override
            public java.util.concurrent.CompletableFuture<ReadResult> read(long offset, int length) {
                return java.util.concurrent.CompletableFuture.completedFuture(ReadResult.zeroes(length));
            }
        };
        Path file = dir.resolve("huge.ov");
        OverlayExport o = OverlayExport.open(huge, file);
        o.write(size - 10, Unpooled.wrappedBuffer(new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}), false).join();
        o.write(5L << 30, Unpooled.wrappedBuffer(new byte[8192]), false).join();
        o.writeZeroes(100L << 30, 1L << 30, true).join();
        assertEquals(List.of(new OverlayExport.ChangedRange(5L << 30, 8192, OverlayExport.ChangeKind.DATA),
            new OverlayExport.ChangedRange(100L << 30, 1L << 30, OverlayExport.ChangeKind.ZERO),
            new OverlayExport.ChangedRange(size - BLOCK, BLOCK, OverlayExport.ChangeKind.DATA)), o.changes());
        assertTrue(Files.size(OverlayExport.mapFileOf(file)) < 100, "three runs in the map");
        List<Extent> ext = o.allocation(0, size).join();
        // the base reports data everywhere, so data runs merge around the written blocks
        assertEquals(new Extent(0, 100L << 30, 0), ext.get(0));
        assertEquals(new Extent(100L << 30, 1L << 30, 3), ext.get(1));
        o.close();
        OverlayExport again = OverlayExport.open(huge, file);
        assertEquals(3, again.changes().size());
        ReadResult r = again.read(size - 10, 10).join();
        byte[] tail = new byte[10];
        ReadResult.Data d = (ReadResult.Data) r.segments().get(0);
        d.buf().getBytes(d.buf().readerIndex(), tail);
        r.release();
        assertArrayEquals(new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, tail);
        again.discard();
    }

    @Test
    void reopeningChecksTheMap() throws IOException {
        MemoryExport base = new MemoryExport("d", "", baseBytes(), true);
        Path file = dir.resolve("ov");
        OverlayExport o = OverlayExport.open(base, file);
        o.write(0, Unpooled.wrappedBuffer(new byte[] {1, 2, 3}), true).join();
        o.close();
        Path map = OverlayExport.mapFileOf(file);
        IOException other = assertThrows(IOException.class,
            () -> OverlayExport.open(new MemoryExport("d", "", new byte[SIZE + 4096], true), file));
        assertTrue(other.getMessage().contains("another image"), other.getMessage());
        byte[] m = Files.readAllBytes(map);
        m[m.length - 10] ^= 1;
        Files.write(map, m);
        IOException corrupt = assertThrows(IOException.class, () -> OverlayExport.open(base, file));
        assertTrue(corrupt.getMessage().contains("checksum"), corrupt.getMessage());
        try (FileChannel ch = FileChannel.open(map, StandardOpenOption.WRITE)) {
            ch.truncate(0);
            ch.write(ByteBuffer.allocate(3));
        }
        assertThrows(IOException.class, () -> OverlayExport.open(base, file));
    }

    @Test
    void discardDeletesTheFilesAndCloseRefusesLaterWrites() throws IOException {
        MemoryExport base = new MemoryExport("d", "", baseBytes(), true);
        Path file = dir.resolve("ov");
        OverlayExport o = OverlayExport.open(base, file);
        o.write(0, Unpooled.wrappedBuffer(new byte[100]), false).join();
        o.discard();
        assertFalse(Files.exists(file));
        assertFalse(Files.exists(OverlayExport.mapFileOf(file)));
        OverlayExport fresh = OverlayExport.open(base, file);
        assertTrue(fresh.changes().isEmpty());
        fresh.close();
        assertThrows(Exception.class, () -> fresh.write(0, Unpooled.wrappedBuffer(new byte[1]), false).join());
    }
}
