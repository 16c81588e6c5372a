package io.jbackup.nbd.server;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The block states of an {@link OverlayExport} and their sidecar map file: which blocks of the export are BASE (read
 * from the base), DATA (read from the overlay file) or ZERO (read as zeroes). In memory the states are two bit sets
 * (DATA, ZERO; neither = BASE), changed a 64-bit word at a time; every method that reads or changes them holds this
 * object's monitor.
 *
 * <p><b>Map file.</b> {@code overlayFile + ".map"} ({@link #fileOf}) records the states as runs of blocks that are
 * not BASE. It is replaced atomically by {@link #persist()}: written to {@code .map.tmp}, fsynced, renamed over the
 * map, and the directory fsynced (best effort). The caller syncs the overlay data file before, so a map never refers
 * to data that is not on disk. Format (big-endian):
 * <pre>
 *   offset  size  field
 *   0       8     magic      "JBOVLMAP"
 *   8       4     version    1
 *   12      4     blockSize  bytes per block (power of two, 512..1048576)
 *   16      8     size       export size in bytes
 *   24      4     runs       number of runs that follow (n)
 *   28      17*n  runs x { firstBlock 8, blockCount 8, state 1 (1 = DATA, 2 = ZERO) }
 *   28+17n  4     crc32c     of every byte before it
 * </pre>
 * Invariants checked by {@link #load()} (each failure is an {@link IOException} naming the map file and the values):
 * the file is at least 32 bytes; the checksum matches; magic and version are as above; block size and size are the
 * overlay's (else the map belongs to another image); the length is exactly {@code 32 + 17 * runs}; runs are sorted
 * and non-overlapping, each of at least one block, within {@code ceil(size / blockSize)} blocks, in state DATA or
 * ZERO. BASE blocks are not stored.
 */
final class OverlayBlockMap {
    private static final Logger log = LoggerFactory.getLogger(OverlayBlockMap.class);

    static final byte BASE = 0;
    static final byte DATA = 1;
    static final byte ZERO = 2;
    private static final byte[] MAGIC = {'J', 'B', 'O', 'V', 'L', 'M', 'A', 'P'};
    private static final int VERSION = 1;
    /** Bytes of magic, version, blockSize, size, runs and crc32c. */
    private static final int FIXED_BYTES = 32;
    private static final int RUN_BYTES = 17;

    /** A run of blocks in one state, in bytes (clipped to the export size). */
    record Run(long offset, long length, byte state) {
        long end() {
            return offset + length;
        }
    }

    private final Path file;
    private final int blockSize;
    private final int blockShift;
    private final long size;
    private final long blocks;
    /** Bit set: block holds data in the overlay file. Guarded by {@code this}. */
    private final long[] dataBits;
    /** Bit set: block reads as zero. Guarded by {@code this}. */
    private final long[] zeroBits;
    /** Guarded by {@code this}. */
    private boolean dirty;

    /** An all-BASE map of an export of {@code size} bytes in blocks of {@code blockSize} (a power of two). */
    OverlayBlockMap(Path file, int blockSize, long size) {
        this.file = file;
        this.blockSize = blockSize;
        this.blockShift = Integer.numberOfTrailingZeros(blockSize);
        this.size = size;
        this.blocks = (size + blockSize - 1) >>> blockShift;
        if (blocks > (long) Integer.MAX_VALUE * 64) {
            throw new IllegalArgumentException("export of " + size + " bytes has too many blocks of " + blockSize);
        }
        int words = (int) ((blocks + 63) >>> 6);
        this.dataBits = new long[words];
        this.zeroBits = new long[words];
    }

    /** The sidecar map file of an overlay file. */
    static Path fileOf(Path overlayFile) {
        return overlayFile.resolveSibling(overlayFile.getFileName() + ".map");
    }

    Path file() {
        return file;
    }

    int blockShift() {
        return blockShift;
    }

    /** Number of blocks, the last one possibly short. */
    long blocks() {
        return blocks;
    }

    synchronized byte state(long block) {
        int w = (int) (block >>> 6);
        long bit = 1L << (block & 63);
        return (dataBits[w] & bit) != 0 ? DATA : (zeroBits[w] & bit) != 0 ? ZERO : BASE;
    }

    /** Sets blocks {@code [firstBlock, firstBlock+count)} to {@code state}, a 64-bit word at a time. */
    synchronized void mark(long firstBlock, long count, byte state) {
        long b = firstBlock;
        long end = firstBlock + count;
        while (b < end) {
            int w = (int) (b >>> 6);
            int from = (int) (b & 63);
            int to = (int) Math.min(64, from + (end - b));
            long mask = (to == 64 ? -1L : (1L << to) - 1) & (-1L << from);
            dataBits[w] = state == DATA ? dataBits[w] | mask : dataBits[w] & ~mask;
            zeroBits[w] = state == ZERO ? zeroBits[w] | mask : zeroBits[w] & ~mask;
            b += to - from;
        }
        dirty = true;
    }

    /** Marks the map as changed, so that the next {@link #persist()} writes it (a new overlay). */
    synchronized void markDirty() {
        dirty = true;
    }

    /** Drops unpersisted changes from the next {@link #persist()}: the overlay is being discarded. */
    synchronized void markClean() {
        dirty = false;
    }

    /** Bits of word {@code w} whose block is in {@code state}. */
    private long inState(int w, byte state) {
        return switch (state) {
            case DATA -> dataBits[w];
            case ZERO -> zeroBits[w];
            default -> ~(dataBits[w] | zeroBits[w]);
        };
    }

    /** The first block at or after {@code b} not in {@code state}, or {@code limit}. */
    private synchronized long runEnd(long b, byte state, long limit) {
        int w = (int) (b >>> 6);
        long other = ~inState(w, state) & (-1L << (b & 63));
        while (other == 0) {
            w++;
            if (((long) w << 6) >= limit) {
                return limit;
            }
            other = ~inState(w, state);
        }
        return Math.min(limit, ((long) w << 6) + Long.numberOfTrailingZeros(other));
    }

    /** The block-state runs overlapping {@code [offset, offset+length)}, clipped to it. */
    synchronized List<Run> runs(long offset, long length) {
        List<Run> out = new ArrayList<>();
        long end = offset + length;
        long lastBlock = (end - 1) >>> blockShift;
        long b = offset >>> blockShift;
        long pos = offset;
        while (pos < end) {
            byte st = state(b);
            long b2 = runEnd(b, st, lastBlock + 1);
            long stop = Math.min(end, b2 << blockShift);
            out.add(new Run(pos, stop - pos, st));
            pos = stop;
            b = b2;
        }
        return out;
    }

    /** Replaces the map file atomically with the current states, if they changed since the last persist or load. */
    void persist() throws IOException {
        byte[] bytes;
        synchronized (this) {
            if (!dirty) {
                return;
            }
            bytes = encode();
            dirty = false;
        }
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try (FileChannel out = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
            StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer b = ByteBuffer.wrap(bytes);
            while (b.hasRemaining()) {
                out.write(b);
            }
            out.force(true);
        } catch (IOException e) {
            synchronized (this) {
                dirty = true;
            }
            throw e;
        }
        try {
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
        }
        Path dir = file.toAbsolutePath().getParent();
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException e) {
            log.debug("cannot fsync directory {}: {}", dir, e.toString());
        }
    }

    private synchronized byte[] encode() throws IOException {
        List<long[]> runs = new ArrayList<>();
        long b = 0;
        while (b < blocks) {
            byte st = state(b);
            long b2 = runEnd(b, st, blocks);
            if (st != BASE) {
                runs.add(new long[] {b, b2 - b, st});
            }
            b = b2;
        }
        ByteArrayOutputStream bos = new ByteArrayOutputStream(FIXED_BYTES + RUN_BYTES * runs.size());
        DataOutputStream out = new DataOutputStream(bos);
        out.write(MAGIC);
        out.writeInt(VERSION);
        out.writeInt(blockSize);
        out.writeLong(size);
        out.writeInt(runs.size());
        for (long[] r : runs) {
            out.writeLong(r[0]);
            out.writeLong(r[1]);
            out.writeByte((int) r[2]);
        }
        CRC32C crc = new CRC32C();
        crc.update(bos.toByteArray());
        out.writeInt((int) crc.getValue());
        out.flush();
        return bos.toByteArray();
    }

    /** Reads the map file into this (all-BASE) map, checking every invariant of the format. */
    void load() throws IOException {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new IOException("overlay map " + file + " is missing", e);
        }
        String where = "overlay map " + file;
        if (bytes.length < FIXED_BYTES) {
            throw new IOException(where + " is truncated (" + bytes.length + " bytes)");
        }
        CRC32C crc = new CRC32C();
        crc.update(bytes, 0, bytes.length - 4);
        int stored = ByteBuffer.wrap(bytes, bytes.length - 4, 4).getInt();
        if ((int) crc.getValue() != stored) {
            throw new IOException(where + " is corrupt (checksum mismatch); discard the overlay to start over");
        }
        DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes, 0, bytes.length - 4));
        byte[] magic = in.readNBytes(8);
        if (!Arrays.equals(magic, MAGIC)) {
            throw new IOException(where + " is not an overlay map (bad magic)");
        }
        int version = in.readInt();
        if (version != VERSION) {
            throw new IOException(where + " has version " + version + " (expected " + VERSION + ")");
        }
        int bs = in.readInt();
        long sz = in.readLong();
        if (bs != blockSize || sz != size) {
            throw new IOException(where + " is for block size " + bs + " and size " + sz + ", but the export has size "
                + size + " and the overlay block size is " + blockSize + "; it belongs to another image");
        }
        int count = in.readInt();
        if (count < 0 || (long) count * RUN_BYTES != bytes.length - FIXED_BYTES) {
            throw new IOException(where + ": " + count + " runs do not match its length " + bytes.length);
        }
        long prevEnd = 0;
        for (int i = 0; i < count; i++) {
            long first = in.readLong();
            long n = in.readLong();
            byte st = in.readByte();
            if (first < prevEnd || n <= 0 || first + n > blocks || (st != DATA && st != ZERO)) {
                throw new IOException(where + ": run " + i + " (block " + first + ", " + n + " blocks, state " + st
                    + ") is out of order or beyond " + blocks + " blocks");
            }
            mark(first, n, st);
            prevEnd = first + n;
        }
        markClean();
    }
}
