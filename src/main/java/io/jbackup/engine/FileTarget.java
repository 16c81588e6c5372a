package io.jbackup.engine;

import io.jbackup.error.UsageException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A raw file or block device as restore target. A new file is created sparse with the image size and zero chunks
 * stay holes. An existing regular file ({@code --force}) is emptied first and then restored like a new one, so that
 * it equals the backup byte for byte; with {@code --zero} it is written in place instead (its blocks stay
 * allocated) and its zero chunks are written as zeros. A block device is written in place; its zero chunks are
 * written only with {@code --zero}, since a device may hold old data there.
 *
 * <p>Whole chunks are written with O_DIRECT from the block-aligned buffers {@link #allocate} hands out: a restore
 * writes each byte once and does not read it back, and copying gigabytes into the page cache only to flush them at
 * the end costs more CPU (and, under memory pressure, more time) than the device writes themselves. Where O_DIRECT
 * is not available (tmpfs, some network file systems) or a direct write fails, writes are buffered as before; an
 * unaligned piece (the tail of an image whose size is not a multiple of the block size) is always buffered. The
 * final {@link #flush} makes both durable. {@code -Djbackup.restore.directIo=false} turns O_DIRECT off.
 */
public final class FileTarget implements RestoreTarget {
    private static final int ZERO_BLOCK = 1 << 20;
    private static final byte[] ZEROS = new byte[ZERO_BLOCK];

    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(FileTarget.class);

    private final Path path;
    private final FileChannel ch;
    private final FileChannel direct; // the same file opened with O_DIRECT, or null
    private final int align; // the block size O_DIRECT writes align to
    private volatile boolean directFailed;
    private final boolean fresh;
    private final boolean writeZeroes;
    private boolean flushed;

    private FileTarget(Path path, FileChannel ch, boolean fresh, boolean writeZeroes) {
        this.path = path;
        this.ch = ch;
        int a = 0;
        FileChannel d = null;
        if (!"false".equals(System.getProperty("jbackup.restore.directIo"))) {
            try {
                long bs = Files.getFileStore(path).getBlockSize();
                if (bs >= 512 && bs <= (1 << 16) && Long.bitCount(bs) == 1) {
                    d = FileChannel.open(path, StandardOpenOption.WRITE, com.sun.nio.file.ExtendedOpenOption.DIRECT);
                    a = (int) bs;
                }
            } catch (IOException | RuntimeException e) {
                LOG.debug("{}: no O_DIRECT ({}); buffered writes", path, e.toString());
            }
        }
        this.direct = d;
        this.align = d == null ? 0 : a;
        this.fresh = fresh;
        this.writeZeroes = writeZeroes;
    }

    /**
     * Opens {@code path} for a restore of {@code size} bytes.
     *
     * @param overwrite  allow writing into an existing regular file
     * @param zero       write zero chunks into an existing file or device (an existing file is otherwise emptied
     *                   first, and its zero chunks are holes)
     */
    public static FileTarget open(Path path, long size, boolean overwrite, boolean zero) throws IOException {
        if (Files.isDirectory(path)) {
            throw new UsageException("restore target " + path + " is a directory; name a file in it (e.g. "
                + path.resolve("DISK.raw") + "), or restore a whole VM with --vm NAME --to " + path);
        }
        boolean exists = Files.exists(path);
        boolean device = exists && !Files.isRegularFile(path);
        if (device && !isBlockDevice(path)) {
            throw new UsageException("restore target " + path + " is " + kind(path) + "; restore to a file name, a "
                + "block device or an NBD URI (to check that a backup reads back without writing it anywhere, use: "
                + "jbackup verify --backup ID)");
        }
        if (exists && !device && !overwrite && Files.size(path) > 0) {
            throw new UsageException("restore target " + path + " exists; pass --force to overwrite it, "
                + "or choose a new file name");
        }
        if (!exists || (!device && Files.size(path) == 0)) {
            requireDirectoryOf(path);
            try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(path.toFile(), "rw")) {
                raf.setLength(size); // sparse: every chunk reads as zero until written
            }
            return new FileTarget(path, FileChannel.open(path, StandardOpenOption.WRITE), true, true);
        }
        if (!device) {
            try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(path.toFile(), "rw")) {
                if (!zero) {
                    // its old data goes: the chunks not written (zero chunks) then read as zeros, as in the backup
                    raf.setLength(0);
                }
                raf.setLength(size);
            }
        }
        FileChannel ch = FileChannel.open(path, StandardOpenOption.WRITE, StandardOpenOption.READ);
        if (device) {
            long devSize = ch.size();
            if (devSize > 0 && devSize < size) {
                ch.close();
                throw new UsageException("restore target " + path + " has " + devSize
                    + " bytes, the image needs " + size + "; restore to a device of at least " + size
                    + " bytes (grow this one, e.g. lvextend), or to a file");
            }
        }
        return new FileTarget(path, ch, false, zero);
    }

    /** Refuses a target whose directory does not exist (a file or qcow2 image is created in it). */
    public static void requireDirectoryOf(Path target) {
        Path parent = target.toAbsolutePath().getParent();
        if (parent != null && !Files.isDirectory(parent)) {
            throw new UsageException("restore target directory " + parent + " does not exist; create it first "
                + "(mkdir -p " + parent + ") or restore to another place");
        }
    }

    /** The file type bits of {@code stat}'s mode: block device, character device, directory, FIFO, socket. */
    private static final int S_IFMT = 0170000;
    private static final int S_IFBLK = 0060000;

    private static int mode(Path path) throws IOException {
        try {
            return (Integer) Files.getAttribute(path, "unix:mode");
        } catch (UnsupportedOperationException e) {
            return 0; // no unix attributes: treat every non-regular file as a device, as before
        }
    }

    /** Whether {@code path} is a block device (or, without unix attributes, any non-regular file). */
    public static boolean isBlockDevice(Path path) throws IOException {
        int m = mode(path);
        return m == 0 || (m & S_IFMT) == S_IFBLK;
    }

    private static String kind(Path path) throws IOException {
        return switch (mode(path) & S_IFMT) {
            case 0020000 -> "a character device";
            case 0040000 -> "a directory";
            case 0010000 -> "a FIFO";
            case 0140000 -> "a socket";
            default -> "not a regular file or block device";
        };
    }

    @Override
    public void write(long offset, byte[] data, int length) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(data, 0, length);
        long pos = offset;
        try {
            while (b.hasRemaining()) {
                pos += ch.write(b, pos);
            }
        } catch (java.nio.channels.ClosedByInterruptException e) {
            throw e;
        } catch (IOException e) {
            throw new RestoreTargetException(path.toString(), e);
        }
    }

    /** Direct and block-aligned when this target writes with O_DIRECT. */
    @Override
    public ByteBuffer allocate(int size) {
        if (direct == null) {
            return ByteBuffer.allocateDirect(size);
        }
        int rounded = (size + align - 1) & -align;
        return ByteBuffer.allocateDirect(rounded + align).alignedSlice(align).limit(size);
    }

    /** Writes straight from {@code data} (a direct buffer is written without a copy); synchronous. */
    @Override
    public void write(long offset, ByteBuffer data) throws IOException {
        if (direct != null && !directFailed && data.isDirect() && (offset & (align - 1)) == 0
            && (data.remaining() & (align - 1)) == 0 && data.alignmentOffset(data.position(), align) == 0) {
            int start = data.position();
            long pos = offset;
            try {
                while (data.hasRemaining()) {
                    pos += direct.write(data, pos);
                }
                return;
            } catch (java.nio.channels.ClosedByInterruptException e) {
                throw e;
            } catch (IOException e) {
                directFailed = true; // write it, and the rest, buffered (which reports a real I/O error again)
                LOG.debug("{}: O_DIRECT write at {} failed ({}); buffered writes from now on", path, offset,
                    e.toString());
                data.position(start);
            }
        }
        long pos = offset;
        try {
            while (data.hasRemaining()) {
                pos += ch.write(data, pos);
            }
        } catch (java.nio.channels.ClosedByInterruptException e) {
            throw e;
        } catch (IOException e) {
            throw new RestoreTargetException(path.toString(), e);
        }
    }

    @Override
    public void writeZeroes(long offset, long length) throws IOException {
        long pos = offset;
        long end = offset + length;
        try {
            while (pos < end) {
                int n = (int) Math.min(ZERO_BLOCK, end - pos);
                ByteBuffer b = ByteBuffer.wrap(ZEROS, 0, n);
                while (b.hasRemaining()) {
                    pos += ch.write(b, pos);
                }
            }
        } catch (java.nio.channels.ClosedByInterruptException e) {
            throw e;
        } catch (IOException e) {
            throw new RestoreTargetException(path.toString(), e);
        }
    }

    @Override
    public boolean needsZeroes() {
        return !fresh && writeZeroes;
    }

    @Override
    public void flush() throws IOException {
        try {
            ch.force(false);
        } catch (IOException e) {
            throw new RestoreTargetException(path.toString(), e);
        }
        flushed = true;
    }

    /** Closes; a file this target created is removed unless the restore got to its final flush. */
    @Override
    public void close() throws IOException {
        try {
            if (direct != null) {
                direct.close();
            }
            ch.close();
        } finally {
            if (fresh && !flushed) {
                Files.deleteIfExists(path);
            }
        }
    }

    @Override
    public String description() {
        return path.toString();
    }

    @Override
    public String format() {
        return "raw";
    }

    @Override
    public String toString() {
        return description();
    }
}
