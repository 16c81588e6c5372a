package io.jbackup.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A raw file or block device as restore target. A new file is created sparse with the image size and zero chunks
 * stay holes; an existing file or device is overwritten in place, and its zero chunks are written as zeros only
 * when asked ({@code --zero}), since they may hold old data.
 */
public final class FileTarget implements RestoreTarget {
    private static final int ZERO_BLOCK = 1 << 20;
    private static final byte[] ZEROS = new byte[ZERO_BLOCK];

    private final Path path;
    private final FileChannel ch;
    private final boolean fresh;
    private final boolean writeZeroes;

    private FileTarget(Path path, FileChannel ch, boolean fresh, boolean writeZeroes) {
        this.path = path;
        this.ch = ch;
        this.fresh = fresh;
        this.writeZeroes = writeZeroes;
    }

    /**
     * Opens {@code path} for a restore of {@code size} bytes.
     *
     * @param overwrite  allow writing into an existing regular file
     * @param zero       write zero chunks into an existing file or device
     */
    public static FileTarget open(Path path, long size, boolean overwrite, boolean zero) throws IOException {
        if (Files.isDirectory(path)) {
            throw new IllegalArgumentException("restore target " + path + " is a directory; name a file in it (e.g. "
                + path.resolve("DISK.raw") + "), or restore a whole VM with --vm NAME --to " + path);
        }
        boolean exists = Files.exists(path);
        boolean device = exists && !Files.isRegularFile(path);
        if (exists && !device && !overwrite && Files.size(path) > 0) {
            throw new IllegalArgumentException("restore target " + path + " exists; pass --force to overwrite it, "
                + "or choose a new file name");
        }
        if (!exists || (!device && Files.size(path) == 0)) {
            Path parent = path.toAbsolutePath().getParent();
            if (parent != null && !Files.isDirectory(parent)) {
                throw new IllegalArgumentException("restore target directory " + parent + " does not exist");
            }
            try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(path.toFile(), "rw")) {
                raf.setLength(size); // sparse: every chunk reads as zero until written
            }
            return new FileTarget(path, FileChannel.open(path, StandardOpenOption.WRITE), true, true);
        }
        if (!device) {
            try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(path.toFile(), "rw")) {
                raf.setLength(size);
            }
        }
        FileChannel ch = FileChannel.open(path, StandardOpenOption.WRITE, StandardOpenOption.READ);
        if (device) {
            long devSize = ch.size();
            if (devSize > 0 && devSize < size) {
                ch.close();
                throw new IllegalArgumentException("restore target " + path + " has " + devSize
                    + " bytes, the image needs " + size);
            }
        }
        return new FileTarget(path, ch, false, zero);
    }

    @Override
    public void write(long offset, byte[] data, int length) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(data, 0, length);
        long pos = offset;
        while (b.hasRemaining()) {
            pos += ch.write(b, pos);
        }
    }

    @Override
    public void writeZeroes(long offset, long length) throws IOException {
        long pos = offset;
        long end = offset + length;
        while (pos < end) {
            int n = (int) Math.min(ZERO_BLOCK, end - pos);
            ByteBuffer b = ByteBuffer.wrap(ZEROS, 0, n);
            while (b.hasRemaining()) {
                pos += ch.write(b, pos);
            }
        }
    }

    @Override
    public boolean needsZeroes() {
        return !fresh && writeZeroes;
    }

    @Override
    public void flush() throws IOException {
        ch.force(false);
    }

    @Override
    public void close() throws IOException {
        ch.close();
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
