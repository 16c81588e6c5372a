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
 * stay holes. An existing regular file ({@code --force}) is restored like a new one into a temporary file beside it
 * ({@code .NAME.jbackup-PID.tmp}), which replaces it (with its permissions and owner) once the restore is complete
 * and flushed: a restore that fails or is stopped leaves the old file as it was, at the cost of room for a second
 * copy. {@code --in-place} empties the file and restores into it instead (a failure leaves it half-written); with
 * {@code --zero} it is written in place (its blocks stay allocated) and its zero chunks are written as zeros. A block
 * device is written in place; its zero chunks are written only with {@code --zero}, since a device may hold old data
 * there. Temporary files of runs that died are removed by the next restore to the same file.
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

    private final Path path; // the file written: the target itself, or the temporary file that replaces it
    private final Path replaces; // the existing file path replaces once flushed, or null
    private final FileChannel ch;
    private final FileChannel direct; // the same file opened with O_DIRECT, or null
    private final int align; // the block size O_DIRECT writes align to
    private volatile boolean directFailed;
    private final boolean fresh;
    private final boolean writeZeroes;
    private boolean flushed;

    private FileTarget(Path path, Path replaces, FileChannel ch, boolean fresh, boolean writeZeroes) {
        this.path = path;
        this.replaces = replaces;
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
        return open(path, size, overwrite, zero, false);
    }

    /**
     * Opens {@code path} for a restore of {@code size} bytes.
     *
     * @param overwrite  allow replacing an existing regular file
     * @param zero       write zero chunks into an existing file (in place) or device
     * @param inPlace    empty an existing regular file and restore into it, rather than into a temporary file that
     *                   replaces it at the end
     */
    /** How a restore writes a file target: {@link #how}. */
    public enum Write {
        /** A new (or empty) file, created sparse; removed if the restore does not complete. */
        NEW,
        /** An existing file, restored into a temporary file that replaces it once complete: a failure keeps it. */
        REPLACED,
        /** An existing file ({@code --in-place}, {@code --zero}) or a device: a failure leaves it half-written. */
        IN_PLACE
    }

    /** How {@link #open} writes {@code path} with these options (when it accepts it). */
    public static Write how(Path path, boolean zero, boolean inPlace) throws IOException {
        if (!Files.exists(path)) {
            return Write.NEW;
        }
        if (!Files.isRegularFile(path)) {
            return Write.IN_PLACE;
        }
        if (Files.size(path) == 0) {
            return Write.NEW;
        }
        return zero || inPlace ? Write.IN_PLACE : Write.REPLACED;
    }

    public static FileTarget open(Path path, long size, boolean overwrite, boolean zero, boolean inPlace)
            throws IOException {
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
        Write how = how(path, zero, inPlace);
        if (how == Write.NEW) {
            requireDirectoryOf(path);
            try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(path.toFile(), "rw")) {
                raf.setLength(size); // sparse: every chunk reads as zero until written
            }
            return new FileTarget(path, null, FileChannel.open(path, StandardOpenOption.WRITE), true, true);
        }
        if (how == Write.REPLACED) {
            // restored beside it, and put in its place at the end: a failed restore leaves it as it was
            removeDeadTemporaries(path);
            Path temp = temporaryOf(path, ProcessHandle.current().pid());
            try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(temp.toFile(), "rw")) {
                raf.setLength(size);
            } catch (IOException e) {
                Files.deleteIfExists(temp);
                throw new RestoreTargetException(path.toString(), e);
            }
            return new FileTarget(temp, path, FileChannel.open(temp, StandardOpenOption.WRITE), true, true);
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
        return new FileTarget(path, null, ch, false, zero);
    }

    private static final String TEMP_SUFFIX = ".tmp";

    /** The temporary file beside {@code target} that a restore by process {@code pid} writes. */
    static Path temporaryOf(Path target, long pid) {
        return target.resolveSibling("." + target.getFileName() + ".jbackup-" + pid + TEMP_SUFFIX);
    }

    /** Removes the temporary files of {@code target} left by restores whose process is gone (killed). */
    private static void removeDeadTemporaries(Path target) {
        String prefix = "." + target.getFileName() + ".jbackup-";
        Path dir = target.toAbsolutePath().getParent();
        try (java.util.stream.Stream<Path> files = Files.list(dir)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                String n = f.getFileName().toString();
                if (!n.startsWith(prefix) || !n.endsWith(TEMP_SUFFIX)) {
                    continue;
                }
                String pid = n.substring(prefix.length(), n.length() - TEMP_SUFFIX.length());
                if (pid.matches("\\d{1,18}") && ProcessHandle.of(Long.parseLong(pid)).isEmpty()) {
                    Files.deleteIfExists(f);
                    LOG.info("removed {}, left by a restore that did not finish", f);
                }
            }
        } catch (IOException | RuntimeException e) {
            LOG.debug("cannot look for old temporary files beside {}: {}", target, e.toString());
        }
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
            throw new RestoreTargetException(shown().toString(), e);
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
            throw new RestoreTargetException(shown().toString(), e);
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
            throw new RestoreTargetException(shown().toString(), e);
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
            throw new RestoreTargetException(shown().toString(), e);
        }
        flushed = true;
    }

    /**
     * Closes; a file this target created is removed unless the restore got to its final flush, and a flushed
     * temporary file takes the place of the file it replaces.
     */
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
        if (replaces != null && flushed) {
            try {
                keepAttributes(replaces, path);
                Files.move(path, replaces, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                    java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            } catch (IOException e) {
                Files.deleteIfExists(path);
                throw new RestoreTargetException(shown().toString(), e);
            }
        }
    }

    /** Gives {@code copy} the permissions, owner and group of {@code original}, as far as this user may. */
    private static void keepAttributes(Path original, Path copy) {
        try {
            var from = Files.readAttributes(original, java.nio.file.attribute.PosixFileAttributes.class);
            var to = Files.getFileAttributeView(copy, java.nio.file.attribute.PosixFileAttributeView.class);
            to.setPermissions(from.permissions());
            if (!from.owner().equals(Files.getOwner(copy))) {
                to.setOwner(from.owner());
            }
            to.setGroup(from.group());
        } catch (IOException | RuntimeException e) {
            LOG.debug("{}: cannot keep the permissions or owner of {}: {}", copy, original, e.toString());
        }
    }

    /** The target as the user named it. */
    private Path shown() {
        return replaces != null ? replaces : path;
    }

    @Override
    public String description() {
        return shown().toString();
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
