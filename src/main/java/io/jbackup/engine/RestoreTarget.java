package io.jbackup.engine;

import java.io.IOException;

/**
 * Where a restore writes: a file, a block device or an NBD export. Methods may be called from several threads.
 * {@link #description()} and {@link #format()} are what users see in the summary and in {@code --json}.
 */
public interface RestoreTarget extends AutoCloseable {
    /** The target as the user named it: a path or an NBD URI (never an object identity). */
    String description();

    /** The image format written: {@code raw}, {@code qcow2}, or {@code nbd} (whatever the NBD server stores). */
    String format();

    /** Writes {@code length} bytes of {@code data} at {@code offset}. */
    void write(long offset, byte[] data, int length) throws IOException;

    /**
     * Writes {@code data}'s remaining bytes at {@code offset}. Unless the target {@link #takesBuffers() takes its
     * buffers}, the caller reuses {@code data} once this returns, so an asynchronous target must copy it (the default
     * does: it hands a new array to {@link #write(long, byte[], int)}). The position of {@code data} is left
     * unspecified.
     */
    default void write(long offset, java.nio.ByteBuffer data) throws IOException {
        byte[] copy = new byte[data.remaining()];
        data.get(copy);
        write(offset, copy, copy.length);
    }

    /**
     * A buffer of {@code size} bytes to restore chunks into and hand to {@link #write(long, java.nio.ByteBuffer)}:
     * direct, and aligned as the target writes best from (a file written with O_DIRECT needs block alignment).
     */
    default java.nio.ByteBuffer allocate(int size) {
        return java.nio.ByteBuffer.allocateDirect(size);
    }

    /**
     * Whether {@link #write(long, java.nio.ByteBuffer)} takes over a buffer from {@link #allocate}: the write goes
     * out from it asynchronously (no copy) and the target frees it when done, so the caller allocates a new buffer
     * for each chunk and hands one it does not write to {@link #discard}. False by default: the caller reuses its
     * buffers.
     */
    default boolean takesBuffers() {
        return false;
    }

    /** Frees a buffer from {@link #allocate} that is not written (a failed chunk), when the target takes buffers. */
    default void discard(java.nio.ByteBuffer buffer) {
    }

    /** Makes [offset, offset+length) read as zeros (a hole, WRITE_ZEROES, TRIM or written zeros). */
    void writeZeroes(long offset, long length) throws IOException;

    /** Whether zero chunks must be written: false for a freshly created sparse file that already reads as zero. */
    boolean needsZeroes();

    /** Flushes to stable storage. */
    void flush() throws IOException;

    @Override
    void close() throws IOException;
}
